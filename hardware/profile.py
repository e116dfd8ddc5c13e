"""Board profiles: finding and loading them, and listing their pins by role.

A profile is a JSON object (see docs/hardware.md for the schema). The committed ones live in
hardware/profiles/<name>.json; a user may also give a path to their own.
"""
import json
import os
from pathlib import Path
from typing import Any, Literal

from haochaping.daemon.errors import HcpError
from haochaping.protocol.levels import LEVELS

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

# A profile as read from its JSON file, before or after validation (docs/hardware.md).
Profile = dict[str, Any]
PinKind = Literal["button", "touch", "output", "i2c"]
# (role, label, pin, kind); pin is the profile's value as written, an int once validated.
PinUse = tuple[str, str, Any, PinKind]

# English names of the five levels, for labels that a fitter reads next to the Chinese ones.
LEVEL_EN = ("Very satisfied", "Satisfied", "Basically satisfied", "Dissatisfied",
            "Very dissatisfied")


def level_label(index: int) -> str:
    """'1 非常满意' for the key or LED at position `index` (0-based) of a profile."""
    return "%d %s" % (LEVELS[index][0], LEVELS[index][1])


def committed_names() -> list[str]:
    """Names of the profiles committed in hardware/profiles, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The file a user meant: a path to a JSON file, or the name of a committed profile."""
    arg = str(name_or_path)
    path = Path(arg)
    if path.is_file():
        return path
    if arg.endswith(".json") or "/" in arg or "\\" in arg:
        raise HcpError("no profile file %s" % arg)
    candidate = PROFILE_DIR / (arg + ".json")
    if candidate.is_file():
        return candidate
    raise HcpError("no profile named %r; committed profiles: %s (or give a path to a .json file)"
                   % (arg, ", ".join(committed_names())))


def load(name_or_path: str | os.PathLike[str]) -> tuple[Path, Profile]:
    """(path, profile dict) for a profile name or path; a file that is not a JSON object is an
    HcpError that names the file and the line."""
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HcpError("cannot read %s: %s" % (path, e)) from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise HcpError("%s is not valid JSON: %s" % (path, e)) from None
    if not isinstance(data, dict):
        raise HcpError("%s is not a board profile: expected a JSON object" % path)
    return path, data


def pin_uses(profile: Profile) -> list[PinUse]:
    """Every pin a profile uses, as (role, label, pin, kind) in a fixed order.

    role: where it is in the profile, e.g. "keys[0]"; label: what a fitter calls it, e.g.
    "key 1 非常满意"; kind: "button", "touch", "output" or "i2c". Entries whose value is not
    where it belongs (not a list, a missing key) are skipped: the schema check reports those.
    """
    uses: list[PinUse] = []
    key_kind: PinKind = "touch" if profile.get("input") == "touch" else "button"
    keys = profile.get("keys")
    if isinstance(keys, list):
        for i, pin in enumerate(keys[:len(LEVELS)]):
            uses.append(("keys[%d]" % i, "key " + level_label(i), pin, key_kind))
    leds = profile.get("leds")
    if isinstance(leds, list):
        for i, pin in enumerate(leds[:len(LEVELS)]):
            uses.append(("leds[%d]" % i, "LED " + level_label(i), pin, "output"))
    strip = profile.get("ws2812")
    if isinstance(strip, dict) and "pin" in strip:
        uses.append(("ws2812.pin", "WS2812 data", strip["pin"], "output"))
    if "buzzer" in profile:
        uses.append(("buzzer", "buzzer", profile["buzzer"], "output"))
    if "status_led" in profile:
        uses.append(("status_led", "status LED", profile["status_led"], "output"))
    display = profile.get("display")
    if isinstance(display, dict):
        for line in ("sda", "scl"):
            if line in display:
                uses.append(("display." + line, "display " + line.upper(), display[line], "i2c"))
    return uses
