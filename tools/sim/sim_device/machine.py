# Stand-in for the ESP32 `machine` module, for the unix port of MicroPython (tests, simulation).
# Never installed on a terminal. A harness presses keys by setting input levels in LEVEL (GPIO ->
# 0/1; a button with pull-up reads 0 while pressed) and touch readings in TOUCH; outputs (LEDs,
# status LED) are recorded in LEVEL too, the buzzer in TONES.
#
# As hostile as the chip:
# - TouchPad: the driver measures a pad every TOUCH_PERIOD_MS (a read in between returns the
#   last measurement), with TOUCH_NOISE percent of noise, TOUCH_DRIFT percent of drift per minute
#   since boot, every TOUCH_GLITCH-th measurement 0; pads in TOUCH_ZERO always read 0 and pads in
#   TOUCH_FAIL raise ValueError ("Touch pad error", as the ESP32 port does).
# - WDT: not fed for its timeout, it really ends the process (a thread kills it, as the chip
#   resets), after printing "reset watchdog"; `soft_reset()` stops it (a harness's reboot).
# - reset(): ends the process at once after printing "reset machine" (an update's switch).
# NOW: set NOW[0] to drive the stand-ins' clock by hand (None: the real ticks_ms).
import sys
import time

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

LEVEL = {}
TOUCH = {}
TONES = []
WDT_FED = [0]
NOW = [None]
TOUCH_PERIOD_MS = [30]
TOUCH_NOISE = [2]
TOUCH_DRIFT = [0]
TOUCH_GLITCH = [50]
TOUCH_ZERO = set()
TOUCH_FAIL = set()
WDTS = []
_SEED = [12345]


def now_ms():
    return ticks_ms() if NOW[0] is None else NOW[0]


def _rand(n):
    """0 .. n-1, a fixed pseudo-random sequence (repeatable runs)."""
    _SEED[0] = (_SEED[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return (_SEED[0] >> 8) % n


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if pull == Pin.PULL_UP and id not in LEVEL:
            LEVEL[id] = 1
        if value is not None:
            LEVEL[id] = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return LEVEL.get(self.id, 0)
        LEVEL[self.id] = 1 if v else 0

    def on(self):
        LEVEL[self.id] = 1

    def off(self):
        LEVEL[self.id] = 0


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        if d and not self._duty:
            TONES.append(self._freq)
        self._duty = d

    def deinit(self):
        self._duty = 0


class TouchPad:
    def __init__(self, pin):
        self.id = pin.id
        if self.id not in TOUCH:
            TOUCH[self.id] = 600
        self._boot = now_ms()
        self._at = None
        self._value = 0
        self._n = 0

    def read(self):
        if self.id in TOUCH_FAIL:
            raise ValueError("Touch pad error")
        now = now_ms()
        if self._at is None or ticks_diff(now, self._at) >= TOUCH_PERIOD_MS[0]:
            self._at = now
            self._n += 1
            v = TOUCH[self.id]
            minutes_x1000 = ticks_diff(now, self._boot) // 60
            v = v + v * TOUCH_DRIFT[0] * minutes_x1000 // 100000
            if TOUCH_NOISE[0]:
                amp = v * TOUCH_NOISE[0] // 100
                v += _rand(2 * amp + 1) - amp
            if self.id in TOUCH_ZERO or (TOUCH_GLITCH[0] and self._n % TOUCH_GLITCH[0] == 0):
                v = 0
            self._value = max(0, v)
        return self._value

    def config(self, value):
        pass


def _kill(why):
    print("reset " + why)
    if sys.implementation.name == "micropython":
        import os
        os.system("kill -9 $PPID")   # the shell's parent: this process
    else:
        import os
        sys.stdout.flush()
        os._exit(137)


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.fed = now_ms()
        self.on = True
        WDTS.append(self)
        if sys.implementation.name == "micropython":
            import _thread
            _thread.start_new_thread(self._watch, ())
        else:
            import threading
            threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        while self.on:
            time.sleep(0.05)
            if self.on and ticks_diff(now_ms(), self.fed) > self.timeout:
                _kill("watchdog")

    def feed(self):
        WDT_FED[0] += 1
        self.fed = now_ms()


def soft_reset():
    """Stand-in only: stop every watchdog (a harness reboots the 'chip' between scenarios)."""
    while WDTS:
        WDTS.pop().on = False


class SoftI2C:
    def __init__(self, scl=None, sda=None, freq=400000):
        raise OSError("no I2C bus in the stand-in")


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset():
    """As the chip does: everything stops at once (prints "reset machine"); the harness
    (FirmwareHost with reboot=True) starts the process again, as the chip boots again."""
    _kill("machine")


def press(gpio):
    LEVEL[gpio] = 0


def release(gpio):
    LEVEL[gpio] = 1
