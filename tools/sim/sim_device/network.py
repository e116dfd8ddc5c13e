# Stand-in for the ESP32 `network` module, for the unix port of MicroPython (tests, simulation).
# The WiFi is "up" unless a harness calls wifi_down(), which also drops every connection opened
# through open_connection() (pass it to firmware.main.serve): the terminal sees what it would see
# when the access point goes away, a dead socket.
#
# As hostile as the chip:
# - association takes ASSOC_MS; connect() while one is in progress restarts it (counted in
#   RESTARTS); the radio re-associates by itself when the access point comes back (MicroPython
#   >= 1.23 does). `power_on()` makes a radio that has not associated yet (status IDLE until
#   connect()); without it the radio is already associated (hosts of many terminals skip main).
# - `half_open()`: every open connection stops answering; what is written vanishes (the peer is
#   gone, the socket does not know). `block_sends()`: drain() never returns (a full send buffer
#   on a dead link). `hostile(open_connection)` adds both to any open_connection (a broker
#   stand-in's too).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
_UP = [True]
CONNECTIONS = []
RSSI = [-58]
ASSOC_MS = [300]
RESTARTS = [0]
CONNECTS = [0]
PM = [None]
_RADIO = {"wanted": True, "start": None}   # start: ticks of the association in progress
_HALF_OPEN = [False]
_BLOCKED = [False]


def power_on():
    """Stand-in only: a radio fresh from reset, not associated."""
    _RADIO["wanted"] = False
    _RADIO["start"] = None
    RESTARTS[0] = 0
    CONNECTS[0] = 0
    PM[0] = None


def _associated():
    start = _RADIO["start"]
    if not _RADIO["wanted"] or not _UP[0]:
        return False
    if start is None:
        return True
    if ticks_diff(ticks_ms(), start) >= ASSOC_MS[0]:
        _RADIO["start"] = None
        return True
    return False


class WLAN:
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False

    def active(self, v=None):
        if v is None:
            return self._active
        self._active = bool(v)

    def config(self, *args, **kw):
        if "pm" in kw:
            PM[0] = kw["pm"]
        return None

    def connect(self, ssid=None, key=None):
        CONNECTS[0] += 1
        if _RADIO["wanted"] and not _associated() and _RADIO["start"] is not None:
            RESTARTS[0] += 1          # an association in progress starts over
        _RADIO["wanted"] = True
        _RADIO["start"] = ticks_ms()

    def disconnect(self):
        _RADIO["wanted"] = False

    def isconnected(self):
        return _associated()

    def status(self, param=None):
        if param == "rssi":
            return RSSI[0]
        if _associated():
            return STAT_GOT_IP
        if not _RADIO["wanted"]:
            return STAT_IDLE
        return STAT_CONNECTING

    def ifconfig(self):
        return ("10.0.0.9", "255.255.255.0", "10.0.0.1", "10.0.0.1")


class _Reader:
    def __init__(self, r):
        self.r = r

    async def readexactly(self, n):
        while _HALF_OPEN[0]:
            await asyncio.sleep(0.05)   # nothing ever arrives
        return await self.r.readexactly(n)


class _Writer:
    def __init__(self, w):
        self.w = w

    def write(self, b):
        if not _HALF_OPEN[0]:
            self.w.write(b)

    async def drain(self):
        while _BLOCKED[0]:
            await asyncio.sleep(0.05)   # the send buffer never empties
        await self.w.drain()

    def close(self):
        self.w.close()

    async def wait_closed(self):
        await self.w.wait_closed()


def hostile(opener):
    """An open_connection whose connections can go half-open and whose sends can block (TLS
    arguments, when given, are passed on)."""
    async def open_connection(host, port, **tls):
        r, w = await opener(host, port, **tls)
        return _Reader(r), _Writer(w)
    return open_connection


def half_open(on=True):
    _HALF_OPEN[0] = on


def block_sends(on=True):
    _BLOCKED[0] = on


async def _open(host, port, **tls):
    if not _associated():
        raise OSError("no network")
    r, w = await asyncio.open_connection(host, port, **tls)
    CONNECTIONS.append(w)
    return r, w

open_connection = hostile(_open)


def wifi_down():
    _UP[0] = False
    while CONNECTIONS:
        w = CONNECTIONS.pop()
        try:
            w.close()
        except OSError:
            pass


def wifi_up():
    _UP[0] = True
    if _RADIO["wanted"]:
        _RADIO["start"] = ticks_ms()   # the radio re-associates by itself
