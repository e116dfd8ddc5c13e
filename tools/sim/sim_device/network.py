# Stand-in for the ESP32 `network` module, for the unix port of MicroPython (tests, simulation).
# The WiFi is "up" unless a harness calls wifi_down(), which also drops every connection opened
# through open_connection() (pass it to firmware.main.serve): the terminal sees what it would see
# when the access point goes away, a dead socket.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

STA_IF = 0
AP_IF = 1
_UP = [True]
CONNECTIONS = []
RSSI = [-58]


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False

    def active(self, v=None):
        if v is None:
            return self._active
        self._active = bool(v)

    def connect(self, ssid=None, key=None):
        pass

    def disconnect(self):
        pass

    def isconnected(self):
        return _UP[0]

    def status(self, param=None):
        if param == "rssi":
            return RSSI[0]
        return 1010 if _UP[0] else 1001

    def ifconfig(self):
        return ("10.0.0.9", "255.255.255.0", "10.0.0.1", "10.0.0.1")


async def open_connection(host, port):
    if not _UP[0]:
        raise OSError("no network")
    r, w = await asyncio.open_connection(host, port)
    CONNECTIONS.append(w)
    return r, w


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
