"""Check a board profile against the schema and its chip's GPIO rules (hardware/pins.py).

Every problem is found at once, each naming the pin, what it is for and why it is wrong. A
problem is either fatal (the profile is refused) or a warning (it works, with a side effect a
fitter should know about).
"""
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TypeGuard

from haochaping.daemon.errors import HcpError
from haochaping.hardware import pins
from haochaping.hardware.profile import Profile, load, pin_uses
from haochaping.protocol.levels import LEVELS

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_FIELDS = ("name", "chip", "description", "input", "keys", "leds", "ws2812", "buzzer",
           "status_led", "display")
_REQUIRED = ("name", "chip", "description", "input", "keys")
_INPUTS = ("buttons", "touch")
_MAX_STRIP = 256


class Problem:
    """One thing wrong with a profile. `pin` is None for problems that are not about a pin."""

    def __init__(self, where: str, reason: str, pin: int | None = None,
                 fatal: bool = True) -> None:
        self.where: str = where
        self.reason: str = reason
        self.pin: int | None = pin
        self.fatal: bool = fatal

    def __str__(self) -> str:
        if self.pin is None:
            return "%s: %s" % (self.where, self.reason)
        return "GPIO%d (%s): %s" % (self.pin, self.where, self.reason)

    def __repr__(self) -> str:
        return "Problem(%r)" % str(self)


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int


def _schema(profile: Profile) -> list[Problem]:
    found: list[Problem] = []

    def bad(where: str, reason: str) -> None:
        found.append(Problem(where, reason))

    for field in profile:
        if field not in _FIELDS:
            bad(field, "unknown field (known fields: %s)" % ", ".join(_FIELDS))
    for field in _REQUIRED:
        if field not in profile:
            bad(field, "missing; every profile needs %s" % ", ".join(_REQUIRED))
    name = profile.get("name")
    if "name" in profile and not (isinstance(name, str) and _NAME.match(name)):
        bad("name", "must be lower-case letters, digits and '-', at most 48 characters")
    chip = profile.get("chip")
    if "chip" in profile and not (isinstance(chip, str) and chip in pins.CHIPS):
        bad("chip", "unknown chip %r (known: %s)" % (chip, ", ".join(sorted(pins.CHIPS))))
    desc = profile.get("description")
    if "description" in profile and not (isinstance(desc, str) and desc.strip()):
        bad("description", "must be a non-empty text")
    if "input" in profile and profile["input"] not in _INPUTS:
        bad("input", "must be one of %s, not %r" % (", ".join(_INPUTS), profile["input"]))
    levels = " ... ".join("%d %s" % (lv[0], lv[1]) for lv in (LEVELS[0], LEVELS[-1]))
    for field in ("keys", "leds"):
        if field not in profile:
            continue
        value = profile[field]
        if not isinstance(value, list):
            bad(field, "must be a list of %d GPIO numbers in level order (%s)"
                % (len(LEVELS), levels))
        elif len(value) != len(LEVELS):
            bad(field, "needs exactly %d GPIO numbers, one per level (%s); found %d"
                % (len(LEVELS), levels, len(value)))
    strip = profile.get("ws2812")
    if "ws2812" in profile:
        if not isinstance(strip, dict):
            bad("ws2812", 'must be an object like {"pin": 23, "count": 5}')
        else:
            for key in strip:
                if key not in ("pin", "count"):
                    bad("ws2812." + key, "unknown field (known: pin, count)")
            if "pin" not in strip:
                bad("ws2812.pin", "missing")
            count = strip.get("count")
            if not (_is_int(count) and len(LEVELS) <= count <= _MAX_STRIP):
                bad("ws2812.count", "must be the number of LEDs on the strip, %d (one per "
                    "level) to %d" % (len(LEVELS), _MAX_STRIP))
    if "display" in profile:
        bad("display", "not supported: the firmware has no display driver on a stock install "
                       "and cannot draw Chinese; show the rating with leds or ws2812")
    if not any(f in profile for f in ("leds", "ws2812")):
        bad("feedback", "a terminal must show the citizen that the rating was recorded: give it "
                        "leds or ws2812")
    return found


def _pin_rules(profile: Profile) -> list[Problem]:
    found: list[Problem] = []
    chip = profile.get("chip")
    if not isinstance(chip, str):
        chip = ""                        # not a chip name (the schema check says so)
    rules = pins.CHIPS.get(chip)
    seen: dict[int, str] = {}
    for role, label, pin, kind in pin_uses(profile):
        where = "%s, %s" % (label, role)
        if not _is_int(pin):
            found.append(Problem(where, "must be a GPIO number, not %r" % (pin,)))
            continue
        if pin in seen:
            found.append(Problem(where, "used twice: already %s" % seen[pin], pin))
            continue
        seen[pin] = label
        if rules is None:
            continue
        if pin not in rules["gpios"]:
            found.append(Problem(where, "does not exist on the %s (GPIOs: %s)"
                                 % (rules["label"], rules["gpio_ranges"]), pin))
            continue
        if pin in rules["refused"]:
            found.append(Problem(where, rules["refused"][pin], pin))
            continue
        if kind in ("output", "i2c") and pin in rules["input_only"]:
            found.append(Problem(where, "input-only pin: it cannot drive an output", pin))
            continue
        if kind == "button" and pin in rules["no_pull_up"]:
            found.append(Problem(where, "has no internal pull-up, which the firmware uses for "
                                        "push buttons: the key would float", pin))
            continue
        if kind == "touch" and pin not in rules["touch"]:
            found.append(Problem(where, "cannot sense touch; touch pins on the %s: %s"
                                 % (rules["label"], ", ".join(
                                     str(p) for p in pins.usable_touch_pins(chip))), pin))
            continue
        if pin in rules["warned"]:
            found.append(Problem(where, rules["warned"][pin], pin, fatal=False))
    return found


def validate(profile: object) -> list[Problem]:
    """Every problem with a profile (a dict), fatal ones and warnings, schema first."""
    if not isinstance(profile, dict):
        return [Problem("profile", "must be a JSON object")]
    return _schema(profile) + _pin_rules(profile)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.fatal]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if not p.fatal]


def check(name_or_path: str | os.PathLike[str]) -> tuple[Path, Profile, list[Problem]]:
    """Load and validate one profile: (path, profile, problems). Unreadable files raise HcpError."""
    path, profile = load(name_or_path)
    return path, profile, validate(profile)


def require_valid(profile: object, source: str = "profile") -> list[Problem]:
    """Raise HcpError listing every fatal problem, if there is one; return the warnings."""
    problems = validate(profile)
    fatal = errors(problems)
    if fatal:
        raise HcpError("%s is refused: %s" % (source, "; ".join(str(p) for p in fatal)))
    return warnings(problems)
