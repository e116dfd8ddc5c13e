"""Boot: config, watchdog, board, WiFi, app and link, then the tasks. The device's /main.py is

    from haochaping.firmware import main
    main.run()

Order at boot: read and validate /config.json (every bad field printed on the USB console and
a distinct light pattern on the keys; the terminal then waits, it cannot report what it cannot
reach), board, journal recovered (however long a large journal takes), then the watchdog, WiFi
started, heap collected after the imports, then three tasks: keys (every 10 ms: scan, state
machine, a compaction step now and then, lights, feeds the watchdog), WiFi (associates; never
restarts an association in progress), and the MQTT link (status published on connect with
firmware version, board, free heap, journal backlog, RSSI and faults).

`serve()` is the coroutine, so that a test harness can run the whole firmware under MicroPython
with stand-ins for `machine`/`network` and an `open_connection` of its own.
"""
import gc
import json

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio  # type: ignore

import machine
import network

from haochaping.protocol import messages, topics
from haochaping.protocol.compat import const

from . import app as app_mod
from . import board as board_mod
from . import config
from . import link as link_mod
from . import statemachine as sm
from .clock import ticks_diff, ticks_ms
from .link import sleep_ms

CONFIG = "/config.json"
RING_LABEL = "hcpjournal"  # the raw data partition of the journal ring, when the table has one
_WDT_MS = const(8000)
_WIFI_RETRY_MS = const(10000)
_WIFI_CHECK_MS = const(1000)
_STATUS_REFRESH_MS = const(10000)
_ERROR_BLINK_MS = const(100)


def _mem_free():
    f = getattr(gc, "mem_free", None)  # MicroPython only
    return f() if f is not None else 0


def journal_partition():
    """The `hcpjournal` data partition (esp32.Partition), or None: the stock partition table
    has none, and the journal is then a file on littlefs (docs/firmware.md)."""
    try:
        import esp32
        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=RING_LABEL)
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    return found[0] if found else None


def load(path):
    """Read and validate the device config. Raises config.ConfigError naming every bad field."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise config.ConfigError(["%s: cannot read" % path]) from None
    except ValueError:
        raise config.ConfigError(["%s: not valid JSON" % path]) from None
    return config.validate(raw)


class _Broken:
    """Just enough of an App for the link to log in and name the bad config fields in the
    retained status (hall IT sees them in `hcp terminals`). It never takes a rating."""

    def __init__(self, cfg, errors, ms):
        self.cfg = cfg
        self.term = cfg["terminal"]
        self.ms = ms
        self.wake = None
        self.errors = errors
        self.t_status = topics.topic(cfg["hall"], self.term, topics.STATUS)
        self.t_rating = topics.topic(cfg["hall"], self.term, topics.RATING)
        self.t_config = topics.topic(cfg["hall"], self.term, topics.CONFIG)
        self.journal = self  # the link reads journal.pending
        self.pending = []

    def subscriptions(self):
        return [(self.t_config, 0)]

    def will(self):
        return (self.t_status, messages.encode_status(self.term, False), 1, True)

    def status(self):
        return messages.encode_status(self.term, True, app_mod.VERSION, "", _mem_free(), 0, 0,
                                      self.errors)

    def on_message(self, topic, payload, retained=False):
        pass

    def notes(self):
        return []

    def outbox(self, after, limit):
        return []


async def _config_failed(path, err, ms, open_connection=None):
    for e in err.args[0]:
        print("config error:", e)
    b = None
    raw = None
    try:
        with open(path) as f:
            raw = json.load(f)
        profile = raw.get("board")
        if not config.board_errors(profile):
            b = board_mod.Board(profile)
    except (OSError, ValueError, AttributeError):
        b = None
    cfg = config.link_only(raw, err.args[0])
    if cfg is not None:  # reachable: say in the status what is wrong
        wlan = network.WLAN(network.STA_IF)
        wlan.active(True)
        try:
            wlan.connect(cfg["wifi_ssid"], cfg["wifi_password"])
        except OSError:
            pass
        link = link_mod.Link(_Broken(cfg, err.args[0], ms), cfg["broker"], cfg["port"],
                             cfg["username"], cfg["password"], cfg["keepalive"], wlan.isconnected,
                             open_connection, tls_ca=cfg["tls_ca"], tls_name=cfg["tls_name"])
        asyncio.create_task(link.run())
    while True:
        if b is not None:
            b.show_error(ms())
        await sleep_ms(_ERROR_BLINK_MS)


class Terminal:
    """The running terminal: the board, the app and the link, and the tasks that join them."""

    def __init__(self, cfg, ms, open_connection=None, wdt=None, root="", flash=None):
        self.ms = ms
        self.cfg = cfg
        self.wdt = wdt
        self.board = board_mod.Board(cfg["board"])
        self.wlan = network.WLAN(network.STA_IF)
        journal = None
        if flash is None:
            flash = journal_partition()
        if flash is not None:  # the ring: no erase in the key loop (ring.py)
            from . import ring
            journal = ring.Ring(flash, cfg["journal_max"], cfg["seq_start"])
        self.app = app_mod.App(cfg, ms, journal)
        self.app.board = self.board.name
        self.app.board_faults = self.board.faults
        self.link = link_mod.Link(self.app, cfg["broker"], cfg["port"], cfg["username"],
                                  cfg["password"], cfg["keepalive"], self.wlan.isconnected,
                                  open_connection, tls_ca=cfg["tls_ca"], tls_name=cfg["tls_name"])
        self.tasks = []
        self.said = ""  # the link error last printed on the console
        self.wifi_connects = 0
        self._seen = -1        # the key loop's state (step): panel changes drawn, mode, ...
        self._mode = sm.IDLE
        self._refresh = ms()   # ... when the status was last refreshed
        if cfg["update_key"] is not None:  # over-the-air updates (update.py)
            from . import update
            self.app.update = update.Updater(self.app, cfg["update_key"], root, self.link)

    def _refresh_status(self):
        err = self.link.last_error
        if err and err != self.said:  # on the USB console (`hcp device log`): a terminal that
            print("link:", err)        # cannot reach the broker can report it nowhere else
        self.said = err
        gc.collect()
        self.app.heap = _mem_free()
        try:
            self.app.rssi = self.wlan.status("rssi") if self.wlan.isconnected() else 0
        except (OSError, ValueError):
            self.app.rssi = 0

    def step(self, now):
        """One pass of the key loop at ticks `now`: scan, presses, the app's tick (no flash
        erase while a key is down: app.quiet), lights and sound. A test drives it with a clock
        of its own."""
        app = self.app
        b = self.board
        panel = app.panel
        mask = b.scan(now)
        if mask & sm.PALM:
            app.cancel()              # a palm or a wipe: nobody chose anything
        elif mask:
            for k in range(1, 6):
                if mask & (1 << (k - 1)):
                    app.press(k)
                    b.beep(board_mod.PRESS_TONE, now)
        app.tick(b.active())
        mode = panel.mode
        if mode != self._mode:
            self._mode = mode
            if mode == sm.THANKS or mode == sm.REASON:
                b.beep(board_mod.THANKS_TONE, now)
            elif mode == sm.FULL:
                b.beep(board_mod.FULL_TONE, now)
        if panel.changes != self._seen or mode in (sm.THANKS, sm.REASON, sm.FULL):
            self._seen = panel.changes
            b.show(mode, panel.choice, now)
        b.tick(now)
        b.status(self.link.state == link_mod.UP, now)
        if ticks_diff(now, self._refresh) >= _STATUS_REFRESH_MS:
            self._refresh = now
            self._refresh_status()

    async def keys(self):
        self._refresh = self.ms()  # serve() has just refreshed the status
        while True:
            self.step(self.ms())
            if self.wdt is not None:
                self.wdt.feed()
            await sleep_ms(board_mod.SCAN_MS)

    async def wifi(self):
        """Associate, and again only when the radio has given up: MicroPython (>= 1.23) retries
        a lost association itself, and connect() during one in progress restarts it. Modem
        sleep off: it would add up to a DTIM interval to every prompt's arrival."""
        w = self.wlan
        w.active(True)
        try:
            w.config(pm=w.PM_NONE)
        except (AttributeError, ValueError, OSError):
            pass  # a port without power management
        tried = None
        while True:
            now = self.ms()
            st = w.status()
            if w.isconnected() or st == network.STAT_CONNECTING:
                pass
            elif tried is None or ticks_diff(now, tried) >= _WIFI_RETRY_MS:
                tried = now
                self.wifi_connects += 1
                try:
                    w.connect(self.cfg["wifi_ssid"], self.cfg["wifi_password"])
                except OSError:
                    pass  # the link shows "no network"; retried later
            await sleep_ms(_WIFI_CHECK_MS)

    async def serve(self):
        self._refresh_status()
        self.tasks = [asyncio.create_task(self.keys()), asyncio.create_task(self.wifi()),
                      asyncio.create_task(self.link.run())]
        await asyncio.gather(*self.tasks)


async def serve(path=CONFIG, open_connection=None, watchdog=True, on_start=None, root="",
                flash=None):
    """Boot and run the terminal. A harness may pass `open_connection` (socket-level stand-in),
    `on_start` (called with the Terminal once it is built), `root`, the folder that stands
    for the flash's / (hcpboot.py), and `flash`, a raw partition stand-in for the journal ring
    (norflash.NorFlash)."""
    ms = ticks_ms
    try:
        cfg = load(path)
    except config.ConfigError as e:
        await _config_failed(path, e, ms, open_connection)
        return
    # the watchdog starts after the journal is recovered: a large journal on slow flash takes
    # seconds to read, and nothing would feed the watchdog meanwhile (a reboot loop)
    t = Terminal(cfg, ms, open_connection, root=root, flash=flash)
    if watchdog:
        t.wdt = machine.WDT(timeout=_WDT_MS)
    gc.collect()
    print("haochaping %s: %s on %s, heap free %d, backlog %d, journal %s" % (
        app_mod.VERSION, cfg["terminal"], t.board.name, _mem_free(),
        len(t.app.journal.pending), "ring" if hasattr(t.app.journal, "sectors") else "file"))
    if on_start is not None:
        on_start(t)
    await t.serve()


def run(path=CONFIG):
    asyncio.run(serve(path))
