# Stand-in for the ESP32 `machine` module, for the unix port of MicroPython (tests, simulation).
# Never installed on a terminal. A harness presses keys by setting input levels in LEVEL (GPIO ->
# 0/1; a button with pull-up reads 0 while pressed) and touch readings in TOUCH; outputs (LEDs,
# status LED) are recorded in LEVEL too, the buzzer in TONES.
LEVEL = {}
TOUCH = {}
TONES = []
WDT_FED = [0]


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

    def read(self):
        return TOUCH[self.id]

    def config(self, value):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        WDT_FED[0] += 1


class SoftI2C:
    def __init__(self, scl=None, sda=None, freq=400000):
        raise OSError("no I2C bus in the stand-in")


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset():
    raise SystemExit("machine.reset()")


def press(gpio):
    LEVEL[gpio] = 0


def release(gpio):
    LEVEL[gpio] = 1
