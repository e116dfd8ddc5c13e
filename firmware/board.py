"""The thin hardware shell: keys, lights, buzzer, from the board profile. No logic.

Every pin comes from the profile (hardware/profiles/*.json schema); nothing here knows a board
by name. Keys are read by polling (`scan`, every SCAN_MS from a task) through the Debounce
filter of the core: buttons are inputs with pull-ups, pressed = 0.

Touch pads (machine.TouchPad): the ESP32's driver measures a pad on a timer, about every 30 ms,
and a read returns the last measurement; the ESP32 counts fall on touch, the ESP32-S3's rise.
- Calibration takes CAL_MS of real time (a dozen measurements) from the first scan, not 16 reads
  in a row (one measurement); no key counts meanwhile.
- The baseline follows slow drift (temperature, humidity): while a pad is untouched it moves
  1/64 of the way to the reading every 16 scans (a time constant of about 10 s).
- A reading on the untouched side of the baseline pulls it there at once (1/4 per scan): a hand
  on a pad at boot makes a touched baseline, which comes right as soon as the hand goes.
- A pad "touched" for STUCK_MS is re-baselined (water, a sticker): the key comes back by itself.
- A pad that reads 0 (broken trace, no pad) through calibration, or for ZERO_MS later, is
  disabled: it never counts as pressed, and `faults` says so for the status. A single 0 read (or
  a ValueError) keeps the pad's previous state.

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
CAL_MS = const(400)        # touch calibration: about 13 measurements of the ESP32 driver
STUCK_MS = const(60000)    # a pad touched this long is re-baselined
ZERO_MS = const(5000)      # a pad reading 0 this long (after calibration) is disabled
_TOUCH_PCT = const(15)
_FAST = const(2)           # baseline step towards an untouched reading: 1/4
_SLOW = const(6)           # drift tracking: 1/64 ...
_SLOW_EVERY = const(15)    # ... every 16 scans
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
        self.faults = []  # type: list
        self._rises = not _TOUCH_FALLS.get(profile["chip"], True)
        for n in profile["keys"]:
            if self.touch:
                self.keys.append(machine.TouchPad(machine.Pin(n)))
            else:
                self.keys.append(machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP))
        self._pressed = [False] * 5
        # touch state per pad: baseline * 16, calibration sums, when touched / reading 0 began
        self._base = [0] * 5
        self._sum = [0] * 5
        self._count = [0] * 5
        self._since = [0] * 5
        self._zero_since = [0] * 5
        self._zero = [False] * 5
        self.disabled = [False] * 5
        self._cal_until = 0
        self.calibrating = self.touch
        self._started = False
        self._scans = 0
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
        self._tone_end = 0       # ticks when the current tone ends (while sounding)
        self._sounding = False
        self._tones = []

    # ------------------------------------------------------------ keys

    def _read(self, i):
        """A touch reading, or 0 when the driver gives none (ValueError)."""
        try:
            return self.keys[i].read()
        except (ValueError, OSError):
            return 0

    def _calibrate(self, now):
        if not self._started:
            self._started = True
            self._cal_until = ticks_add(now, CAL_MS)
        for i in range(5):
            v = self._read(i)
            if v:
                self._sum[i] += v
                self._count[i] += 1
        if ticks_diff(now, self._cal_until) < 0:
            return
        self.calibrating = False
        for i in range(5):
            if self._count[i]:
                self._base[i] = (self._sum[i] << 4) // self._count[i]
            else:
                self._disable(i)

    def _disable(self, i):
        self.disabled[i] = True
        self._pressed[i] = False
        self.faults.append("key %d: touch pad reads 0, disabled" % (i + 1))

    def _touched(self, i, now, track):
        if self.disabled[i]:
            return False
        v = self._read(i)
        was = self._pressed[i]
        if not v:
            if not self._zero[i]:
                self._zero[i] = True
                self._zero_since[i] = now
            elif ticks_diff(now, self._zero_since[i]) >= ZERO_MS:
                self._disable(i)
                return False
            return was
        self._zero[i] = False
        base = self._base[i]
        v16 = v << 4
        d = v16 - base if self._rises else base - v16   # > 0: more touched than the baseline
        if d < 0:
            self._base[i] = base + ((v16 - base) >> _FAST)
            return False
        if d * 100 > base * _TOUCH_PCT:
            if not was:
                self._since[i] = now
            elif ticks_diff(now, self._since[i]) >= STUCK_MS:
                self._base[i] = v16        # not a finger: the pad's surroundings changed
                return False
            return True
        if track:
            self._base[i] = base + ((v16 - base) >> _SLOW)
        return False

    def scan(self, now=0):
        """Sample the keys once; return the mask of keys that went down (bit 0 = key 1), with
        statemachine.PALM when several keys are down at once. `now`: ticks (touch boards)."""
        p = self._pressed
        if self.touch:
            if self.calibrating:
                self._calibrate(now)
                return 0
            self._scans += 1
            track = not self._scans & _SLOW_EVERY
            for i in range(5):
                p[i] = self._touched(i, now, track)
        else:
            for i in range(5):
                p[i] = self.keys[i].value() == 0
        return self.debounce.feed(p)

    def active(self):
        """A key is down or bouncing in the last scan (raw or debounced): the app starts no
        flash erase then (a press shorter than an erase's stall could be missed)."""
        d = self.debounce.down
        p = self._pressed
        for i in range(5):  # noqa: SIM110 (any() of a generator: heap per scan)
            if p[i] or d[i]:
                return True
        return False

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
