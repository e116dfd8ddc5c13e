"""The thin hardware shell: keys, lights, buzzer, display, from the board profile. No logic.

Every pin comes from the profile (hardware/profiles/*.json schema); nothing here knows a board
by name. Keys are read by polling (`scan`, every SCAN_MS from a task) through the Debounce
filter of the core: buttons are inputs with pull-ups, pressed = 0; touch pads are calibrated at
boot (a baseline per pad; touched = the reading moved by _TOUCH_PCT from it, down on the ESP32,
up on the ESP32-S3, whose touch sensor counts the other way).

What the lights say (mode and choice come from statemachine.Panel):
  idle: dark. prompt: all keys lit. chosen: the chosen key lit.
  thanks: all keys blink fast, a two-tone beep. reason: keys 1-4 lit (the reason categories),
  key 5 blinks slowly (skip). full: keys 1 and 5 blink fast, a low beep (journal full: staff).
  config error: keys alternate odd/even (see main.py).
The status LED is for staff: steady = online, slow blink = offline (ratings kept, not lost).
"""
import machine

from haochaping.protocol.compat import const

from . import statemachine as sm
from .clock import ticks_add, ticks_diff

SCAN_MS = const(10)
_TOUCH_PCT = const(15)
_TOUCH_FALLS = {"esp32": True, "esp32s3": False}
# WS2812 colours for the five levels (green .. red) and the signs
_LEVEL_RGB = ((0, 60, 0), (30, 60, 0), (60, 60, 0), (60, 25, 0), (60, 0, 0))
_WHITE = (50, 50, 50)
_BLUE = (0, 0, 60)
_OFF = (0, 0, 0)


class Board:
    def __init__(self, profile):
        self.name = profile["name"]
        self.touch = profile["input"] == "touch"
        self.keys = []  # type: list
        self._base = []  # type: list
        self._falls = _TOUCH_FALLS.get(profile["chip"], True)
        for n in profile["keys"]:
            if self.touch:
                self.keys.append(machine.TouchPad(machine.Pin(n)))
            else:
                self.keys.append(machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP))
        self._pressed = [False] * 5
        self.debounce = sm.Debounce()
        self.leds = None
        if profile.get("leds"):
            self.leds = [machine.Pin(n, machine.Pin.OUT, value=0) for n in profile["leds"]]
        self.np = None
        ws = profile.get("ws2812")
        if ws:
            import neopixel
            self.np = neopixel.NeoPixel(machine.Pin(ws["pin"], machine.Pin.OUT), ws["count"])
        self.buzzer = None
        if profile.get("buzzer") is not None:
            self.buzzer = machine.PWM(machine.Pin(profile["buzzer"]), freq=2000, duty_u16=0)
        self.status_led = None
        if profile.get("status_led") is not None:
            self.status_led = machine.Pin(profile["status_led"], machine.Pin.OUT, value=0)
        self.display = None
        d = profile.get("display")
        if d:
            try:
                import ssd1306  # micropython-lib driver, optional on the device
                i2c = machine.SoftI2C(scl=machine.Pin(d["scl"]), sda=machine.Pin(d["sda"]))
                self.display = ssd1306.SSD1306_I2C(128, 64, i2c)
            except (ImportError, OSError):
                self.display = None  # no driver installed or no display answering: lights only
        self._tone_end = 0       # ticks when the current tone ends (while sounding)
        self._sounding = False
        self._tones = []
        if self.touch:
            self.calibrate()

    # ------------------------------------------------------------ keys

    def calibrate(self, samples=16):
        """Touch boards: read each pad untouched at boot and keep the mean as its baseline."""
        self._base = []
        for pad in self.keys:
            total = 0
            for _ in range(samples):
                total += pad.read()
            self._base.append(total // samples)

    def _is_pressed(self, i):
        k = self.keys[i]
        if not self.touch:
            return k.value() == 0
        try:
            v = k.read()
        except ValueError:  # a touch read can fail transiently
            return self._pressed[i]
        base = self._base[i]
        if self._falls:
            return v * 100 < base * (100 - _TOUCH_PCT)
        return v * 100 > base * (100 + _TOUCH_PCT)

    def scan(self):
        """Sample the keys once; return the mask of keys that went down (bit 0 = key 1)."""
        p = self._pressed
        for i in range(5):
            p[i] = self._is_pressed(i)
        return self.debounce.feed(p)

    # ------------------------------------------------------------ lights

    def _pattern(self, mode, choice, now):
        """Which keys are lit (5 booleans) for a mode at time now (ms)."""
        fast = (now // 200) % 2 == 0
        slow = (now // 600) % 2 == 0
        if mode == sm.PROMPT:
            return (True, True, True, True, True)
        if mode == sm.CHOSEN:
            return tuple(i + 1 == choice for i in range(5))
        if mode == sm.THANKS:
            return (fast,) * 5
        if mode == sm.REASON:
            return (True, True, True, True, slow)
        if mode == sm.FULL:
            return (fast, False, False, False, fast)
        return (False,) * 5

    def show(self, mode, choice, now):
        lit = self._pattern(mode, choice, now)
        if self.leds:
            for i in range(5):
                self.leds[i].value(1 if lit[i] else 0)
        if self.np is not None:
            for i in range(5):
                if not lit[i]:
                    c = _OFF
                elif mode == sm.REASON:
                    c = _BLUE
                elif mode == sm.THANKS:
                    c = _WHITE
                else:
                    c = _LEVEL_RGB[i]
                self.np[i] = c
            self.np.write()

    def show_error(self, now):
        """Config error: keys alternate odd/even, distinct from every other sign."""
        phase = (now // 400) % 2
        lit = tuple((i % 2) == phase for i in range(5))
        if self.leds:
            for i in range(5):
                self.leds[i].value(1 if lit[i] else 0)
        if self.np is not None:
            for i in range(5):
                self.np[i] = (60, 0, 60) if lit[i] else _OFF
            self.np.write()

    def status(self, online, now):
        if self.status_led is not None:
            self.status_led.value(1 if online or (now // 1000) % 2 else 0)

    def text(self, line1, line2):
        if self.display is not None:
            self.display.fill(0)
            self.display.text(line1, 0, 16)
            self.display.text(line2, 0, 32)
            self.display.show()

    # ------------------------------------------------------------ sound

    def beep(self, tones, now):
        """Play [(freq_hz, ms), ...] without blocking: `tick` moves on to the next tone."""
        if self.buzzer is None:
            return
        self._tones = list(tones)
        self._tone_end = now
        self._sounding = True
        self.tick(now)

    def tick(self, now):
        if self.buzzer is None or not self._sounding or ticks_diff(now, self._tone_end) < 0:
            return
        if self._tones:
            f, ms = self._tones.pop(0)
            self.buzzer.freq(f)
            self.buzzer.duty_u16(32768)
            self._tone_end = ticks_add(now, ms)
        else:
            self.buzzer.duty_u16(0)
            self._sounding = False


PRESS_TONE = ((2400, 30),)
THANKS_TONE = ((1800, 90), (2600, 140))
FULL_TONE = ((400, 600),)
