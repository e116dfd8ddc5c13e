# Simulated terminals: THIS firmware, many terminals in one process, driven over stdin/stdout.
# Runs under MicroPython (unix port) or CPython, with the machine/network/neopixel stand-ins of
# this folder on the path. Host side: haochaping.tools.sim.firmware_host (FirmwareHost).
#
# Usage: micropython terminals.py [--board [--flash <root>]] <scale> <config.json> [...]
#   <scale>   divides the firmware's waiting times (3 s correction, 2.5 s thank-you, 10 s reason,
#             60 s resend, 60 s backoff cap) so that a scripted day runs faster; 1 = real time.
#   --board   one terminal booted as on the ESP32 (main.serve: config file, watchdog, board,
#             debounced key pins, WiFi task); presses pull the stand-in key pin low for 60 ms.
#             Without it, one App + Link per config (docs/firmware.md), and a press goes to
#             app.press, the call main's keys task makes after debouncing a pin.
#   --flash   with --board: <root> stands for the terminal's flash (<root>/lib/hcpboot.py,
#             <root>/lib/haochaping/..., <root>/config.json), and the terminal boots as
#             /main.py does (firmware/hcpboot.py): an interrupted update switch or rollback is
#             finished before the app is imported, and an app on trial that fails to start is
#             rolled back and the "chip" reset (FirmwareHost starts the process again).
#
# Commands (stdin, one per line):
#   press <T> <key>     a citizen presses key 1..5 on terminal T
#   wifi down|up        the access point goes away (every socket dropped) / comes back
#   quit
# Events (stdout, one per line):
#   ready <T> <next seq> <backlog>          terminal booted (journal recovered)
#   link <T> online|down                    MQTT link state
#   mode <T> <mode> <token or ->            what the citizen sees: idle prompt chosen thanks
#                                           reason full; the token of the open prompt
#   confirmed <T> <seq> <level> <token|-> <pending>
#                                           the rating is in the journal: thank-you shown
#   reason <T> <seq> <ref> <reason> <pending>
#                                           a bad-review reason is in the journal
#   refused <T>                             journal full: nothing stored, nothing promised
#   pending <T> <n>                         unacked records in the journal (n changed)
#   version <T> <version>                   the app version running (after "ready")
#   update <T> <state ...>                  an update's state changed (firmware/update.py)
#   boot <update.state line or ->           --flash: what hcpboot found and did at boot
#   error <text>                            a bad command or config
import json
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import machine  # the stand-ins of this folder
import network

ROOT = None
BOOT = None
if "--flash" in sys.argv:  # as /main.py: hcpboot first, the app's folder whole before an import
    import hcpboot
    ROOT = sys.argv[sys.argv.index("--flash") + 1]
    BOOT = hcpboot.recover(ROOT)
    print("boot", " ".join(BOOT) if BOOT else "-")


def boot_failed(e):
    """The app raised while it runs on trial: roll back at the next boot, and reset."""
    if ROOT is not None and hcpboot.failed(ROOT, BOOT, "boot: %s %s" % (type(e).__name__, e)):
        machine.reset()


try:
    from haochaping.firmware import app as app_mod
    from haochaping.firmware import clock, config, main
    from haochaping.firmware import link as link_mod
    from haochaping.firmware import statemachine as sm
except Exception as e:
    boot_failed(e)
    raise

MPY = sys.implementation.name == "micropython"
MODES = ("idle", "prompt", "chosen", "thanks", "reason", "full")  # statemachine.IDLE .. FULL
TERMS = {}      # terminal id -> Sim
ORDER = []


def say(*words):
    print(" ".join([str(w) for w in words]))
    if not MPY:
        sys.stdout.flush()


def scale_times(scale):
    if ROOT is not None:
        from haochaping.firmware import update
        update.ASK_MS = update.ASK_MS // scale
        update.QUIET_MS = update.QUIET_MS // scale
        update.TRIAL_MS = update.TRIAL_MS // scale
    sm.CORRECT_MS = sm.CORRECT_MS // scale
    sm.THANKS_MS = sm.THANKS_MS // scale
    sm.QUIET_MS = sm.QUIET_MS // scale
    sm.REASON_MS = sm.REASON_MS // scale
    sm.GUARD_MS = sm.GUARD_MS // scale


class Sim:
    """One terminal: reports what its citizen would see and what its journal holds."""

    def __init__(self, term, scale):
        self.term = term
        self.scale = scale
        self.app = None
        self.link = None
        self.keys = None       # key GPIOs in --board mode
        self.mode = -1
        self.token = None
        self.pending = -1
        self.state = -1
        self.update = None

    def attach(self, app, link):
        self.app = app
        self.link = link
        link.resend_ms = link.resend_ms // self.scale
        link.backoff_max = max(2, link.backoff_max // self.scale)
        rating = app.rating
        reason = app.reason

        def rated(level, token, delay=None):
            seq = rating(level, token, delay)
            if seq is None:
                say("refused", self.term)
            else:
                # the backlog goes with it, so the host never sees a stale one
                self.pending = len(self.app.journal.pending)
                say("confirmed", self.term, seq, level, token or "-", self.pending)
            return seq

        def reasoned(ref, why):
            seq = reason(ref, why)
            if seq is None:
                say("refused", self.term)
            else:
                self.pending = len(self.app.journal.pending)
                say("reason", self.term, seq, ref, why, self.pending)
            return seq
        # the panel calls its store (the app) for every commit: report each one as it returns
        app.rating = rated
        app.reason = reasoned
        say("ready", self.term, app.journal.next_seq, len(app.journal.pending))
        say("version", self.term, app.version)

    def poll(self):
        app = self.app
        if app is None:
            return
        p = app.panel
        token = p.token if p.mode == sm.PROMPT else ""
        if p.mode != self.mode or token != self.token:
            self.mode = p.mode
            self.token = token
            say("mode", self.term, MODES[p.mode], token or "-")
        self.report_pending()
        u = app.update.text() if app.update is not None else ""
        if u != self.update:
            self.update = u
            say("update", self.term, u or "-")
        up = self.link.state == link_mod.UP
        if up != self.state:
            self.state = up
            say("link", self.term, "online" if up else "down")

    def report_pending(self):
        n = len(self.app.journal.pending)
        if n != self.pending:
            self.pending = n
            say("pending", self.term, n)

    async def press(self, key):
        if self.keys is None:
            self.app.press(key)
            return
        machine.press(self.keys[key - 1])
        await asyncio.sleep(0.06)     # held for 6 scans: the debounce needs 3
        machine.release(self.keys[key - 1])


class Stdin:
    """Lines from stdin without blocking the event loop, on both runtimes (MicroPython has no
    async generators)."""

    def __init__(self):
        self.r = None

    async def readline(self):
        if self.r is None:
            if MPY:
                self.r = asyncio.StreamReader(sys.stdin)
            else:
                loop = asyncio.get_running_loop()
                self.r = asyncio.StreamReader()
                await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self.r),
                                             sys.stdin)
        line = await self.r.readline()
        return line.decode() if line else None


async def commands():
    stdin = Stdin()
    while True:
        line = await stdin.readline()
        if line is None:
            return
        w = line.split()
        if not w:
            continue
        if w[0] == "quit":
            return
        if w[0] == "wifi" and len(w) == 2:
            if w[1] == "down":
                network.wifi_down()
            else:
                network.wifi_up()
        elif (w[0] == "press" and len(w) == 3 and w[1] in TERMS and len(w[2]) == 1
              and w[2] in "12345"):
            await TERMS[w[1]].press(int(w[2]))
        else:
            say("error", "bad command: " + line.strip())


async def watch():
    while True:
        for t in ORDER:
            t.poll()
        await asyncio.sleep(0.01)


def load(path):
    try:
        return main.load(path)
    except config.ConfigError as e:
        for err in e.args[0]:
            say("error", "%s: %s" % (path, err))
        raise SystemExit(2) from None


async def ticker(apps):
    while True:
        for a in apps:
            a.tick()
        await asyncio.sleep(0.01)


async def guarded(coro):
    try:
        await coro
    except Exception as e:
        boot_failed(e)
        raise


async def run(args):
    board = args[0] == "--board"
    if board:
        args = args[1:]
    if args[0] == "--flash":
        args = args[2:]
    scale = int(args[0])
    scale_times(scale)
    tasks = [asyncio.create_task(watch())]
    if board:
        with open(args[1]) as f:
            cfg = json.load(f)  # as read by main.serve, which validates it (and reports errors)
        sim = Sim(cfg["terminal"], scale)
        sim.keys = cfg["board"]["keys"]
        TERMS[sim.term] = sim
        ORDER.append(sim)

        def started(t):
            sim.attach(t.app, t.link)
        tasks.append(asyncio.create_task(guarded(main.serve(
            args[1], network.open_connection, True, started, ROOT or ""))))
    else:
        ms = clock.ticks_ms
        apps = []
        for path in args[1:]:
            cfg = load(path)
            a = app_mod.App(cfg, ms)
            a.board = cfg["board"]["name"]
            lk = link_mod.Link(a, cfg["broker"], cfg["port"], cfg["username"], cfg["password"],
                               cfg["keepalive"], network.WLAN(network.STA_IF).isconnected,
                               network.open_connection)
            sim = Sim(cfg["terminal"], scale)
            sim.attach(a, lk)
            TERMS[sim.term] = sim
            ORDER.append(sim)
            apps.append(a)
            tasks.append(asyncio.create_task(lk.run()))
        tasks.append(asyncio.create_task(ticker(apps)))
    await commands()
    for t in tasks:
        t.cancel()
    say("bye")


asyncio.run(run(sys.argv[1:]))
