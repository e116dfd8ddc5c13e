"""The hall's and the city's services as real processes of our own, for the demo, benchmarks and
tests: a broker, a hall daemon, a store. Each can be started, SIGKILLed and started again, so
that fault tests exercise the real thing. They share one start-and-wait helper."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall.api_client import WindowApi
from haochaping.daemon.hall.settings import HallConfig
from haochaping.daemon.hall.store_client import StoreClient
from haochaping.tools.device.mosquitto_setup import mosquitto_binary

# How long start() waits for a service to come up before it says so. A bound on failure, never a
# speed expectation (a service that exits is reported at once): on a loaded machine (the test
# suite runs in parallel workers on two cores) a store with its worker processes took over 20 s.
START_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str,
                  timeout: float, log_hint: str, log_path: str | None = None) -> None:
    """Poll `ready` until it answers True; raise HcpError if `proc` exits first or `timeout`
    seconds pass. `ready` may raise OSError or HcpError while the service is still starting.
    A process that exits is reported with the last lines of `log_path` (why it stopped)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise HcpError("%s exited at start (code %s); %s%s" % (
                what, proc.returncode, log_hint, _last_lines(log_path)))
        try:
            if ready():
                return
        except (OSError, HcpError):
            pass
        time.sleep(0.05)
    raise HcpError("%s did not come up within %s s; %s" % (what, timeout, log_hint))


def _last_lines(path: str | None, n: int = 3) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [ln.rstrip() for ln in f.readlines()[-50:] if ln.strip()]
    return "".join("\n  " + ln for ln in lines[-n:])


class Service:
    """One child process: start() (in subclasses), kill(), terminate(), log_text()."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        return self.proc

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait: the clean stop a service manager does. Returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def log_text(self) -> str:
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


class Mosquitto(Service):
    """A broker of our own on `port`, with the config at `conf`. Stop, kill and restart at will."""

    def __init__(self, conf: str, port: int, log_path: str | None = None) -> None:
        super().__init__(log_path or os.path.join(os.path.dirname(conf), "mosquitto.out"))
        self.conf = conf
        self.port = port

    def start(self, timeout: float = START_S) -> Mosquitto:
        proc = self._spawn([mosquitto_binary(), "-c", self.conf])

        def listening() -> bool:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        wait_until_up(proc, listening, "mosquitto on port %d" % self.port, timeout,
                      "see %s" % self.log_path, self.log_path)
        return self

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), SIGKILL if it hangs."""
        try:
            self.terminate(10)
        except subprocess.TimeoutExpired:
            self.kill()


class DaemonProcess(Service):
    """`hcp daemon run` on a hall's config; start() waits until it is connected to its broker."""

    def __init__(self, cfg: HallConfig, log_path: str | None = None) -> None:
        super().__init__(log_path or os.path.join(os.path.dirname(cfg.path), "daemon.log"))
        self.cfg = cfg

    def start(self, timeout: float = START_S) -> DaemonProcess:
        proc = self._spawn([sys.executable, "-m", "haochaping.tools.cli", "-v", "daemon", "run",
                            "--config", self.cfg.path])
        api = WindowApi(self.cfg)
        wait_until_up(proc, lambda: bool(api.health().get("broker")), "the daemon", timeout,
                      "see %s" % self.log_path, self.log_path)
        return self


class StoreProcess(Service):
    """`hcp store serve` on `db`; start() waits until all its workers serve and it answers over
    HTTPS."""

    def __init__(self, db: str, port: int, cert: str, key: str, ca: str, log_path: str,
                 identity_key: str | None = None, extra: Iterable[object] = ()) -> None:
        super().__init__(log_path)
        self.db, self.port, self.cert, self.key, self.ca = db, port, cert, key, ca
        self.identity_key, self.extra = identity_key, [str(e) for e in extra]
        self.url = "https://127.0.0.1:%d" % port

    def start(self, timeout: float = START_S) -> StoreProcess:
        args = [sys.executable, "-m", "haochaping.tools.cli", "-v", "store", "serve",
                "--db", self.db, "--cert", self.cert, "--key", self.key,
                "--listen", "127.0.0.1:%d" % self.port] + self.extra
        if self.identity_key:
            args += ["--identity-key", self.identity_key]
        started = self.log_text().count("listening on")   # the log goes on across restarts
        proc = self._spawn(args)
        probe = StoreClient(self.url, "", b"", ca=self.ca, timeout=2)

        def answers() -> bool:
            # every worker serving (the store says "listening on" then), and one answers
            if self.log_text().count("listening on") == started:
                return False
            probe.health()
            return True
        try:
            wait_until_up(proc, answers, "the store", timeout, "see %s" % self.log_path,
                          self.log_path)
        finally:
            probe.close()
        return self

    def workers(self) -> list[int]:
        """The pids of the store's worker processes (uvicorn's, spawned by `hcp store serve`)."""
        if not self.proc or self.proc.poll() is not None:
            return []
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                return [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return []

    def kill(self) -> None:
        """SIGKILL the store and its worker processes at once, as a power cut would (a worker
        left alone would stop by itself within a second, but hold the port until then)."""
        kids = self.workers()
        super().kill()
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
