"""The device config (/config.json), validated at construction: every bad field is named.

    {"wifi_ssid": "hall-iot", "wifi_password": "...",
     "broker": "10.0.0.2", "port": 1883,
     "hall": "H01", "terminal": "T07", "username": "T07", "password": "...",
     "key": "<64 hex digits: the terminal's HMAC key>",
     "board": {<board profile, hardware/profiles/*.json schema>}}

"broker" is an IPv4 address: resolving a name on MicroPython blocks every task, the keys too.
Pins must exist on the chip and suit their use (flash pins, input-only pins, touch channels).
Optional: "keepalive" (s, 60), "journal" ("/journal.log"), "journal_max" (bytes, 32768, at most
131072: the journal's index of pending records lives in RAM),
"tls_ca" and "tls_name": TLS to the broker (`hcp broker config --tls`; `hcp device provision`
writes both): the hall CA's certificate, DER in base64, and the host name the broker's certificate
must carry (checked by name, not by the IPv4 address: mbedtls before 3.5 cannot match an address
in a certificate). Without them the link is plain MQTT.
"seq_start" (1): the lowest sequence number to use. When a terminal's flash is wiped and it is
provisioned again, set it above the last seq the daemon holds for this terminal, or the daemon
would take the new ratings for duplicates of old ones.
"update_key" (none): the hall update key's RSA-2048 modulus, 512 hex digits; without it the
terminal takes no update over the air (update.py).
Unknown keys are refused, not ignored (a typo must not silently fall back to a default).
"""
import binascii

from haochaping.protocol import fields, topics
from haochaping.protocol.compat import const

DEFAULTS = {
    "wifi_ssid": None,
    "wifi_password": "",
    "broker": None,
    "port": 1883,
    "hall": None,
    "terminal": None,
    "username": None,
    "password": None,
    "key": None,
    "board": None,
    "keepalive": 60,
    "journal": "/journal.log",
    "journal_max": 32768,
    "seq_start": 1,
    "update_key": None,
    "tls_ca": None,
    "tls_name": None,
}

_BOARD_KEYS = ("name", "chip", "description", "input", "keys", "leds", "ws2812", "buzzer",
               "status_led")
JOURNAL_MAX = const(131072)


# what the terminal needs to reach the broker and say what is wrong with the rest
LINK_FIELDS = ("wifi_ssid", "wifi_password", "broker", "port", "hall", "terminal", "username",
               "password", "keepalive", "tls_ca", "tls_name")


def link_only(raw, errors):
    """When only fields the link does not need are wrong, the link part of the config (with
    defaults), so the terminal can still report the errors in its status; else None."""
    if type(raw) is not dict:
        return None
    for e in errors:
        if e.split(":")[0] in LINK_FIELDS or e.startswith("config"):
            return None
    cfg = {}
    for k in LINK_FIELDS:
        cfg[k] = raw.get(k, DEFAULTS[k])
    if cfg["tls_ca"] is not None:
        cfg["tls_ca"] = der(cfg["tls_ca"])  # valid: it is not among the errors
    return cfg


class ConfigError(ValueError):
    """args[0]: the list of errors, one line per bad field."""


def _gpio(v):
    return type(v) is int and 0 <= v <= 48


# The chips' GPIOs (hardware/pins.py has the sources): what exists, what is wired to the
# module's flash, what is input-only, which pads touch-sense.
_ESP32_TOUCH = (0, 2, 4, 12, 13, 14, 15, 27, 32, 33)


def _pin_error(chip, p, use):
    """Why GPIO `p` cannot serve `use` ("key", "touch", "button", "out") on `chip`, or None."""
    if not _gpio(p):
        return "not a GPIO number"
    if chip == "esp32":
        if p == 20 or p == 24 or 28 <= p <= 31 or p > 39:
            return "the ESP32 has no GPIO %d" % p
        if 6 <= p <= 11:
            return "GPIO %d is wired to the flash" % p
        if use == "touch" and p not in _ESP32_TOUCH:
            return "GPIO %d cannot touch-sense" % p
        if p >= 34 and use == "button":
            return "GPIO %d has no pull-up" % p
        if p >= 34 and use == "out":
            return "GPIO %d is input-only" % p
    elif chip == "esp32s3":
        if 22 <= p <= 25 or p > 48:
            return "the ESP32-S3 has no GPIO %d" % p
        if 26 <= p <= 32:
            return "GPIO %d is wired to the flash" % p
        if use == "touch" and not 1 <= p <= 14:
            return "GPIO %d cannot touch-sense" % p
    return None


def board_errors(b):
    """Errors in a board profile dict (pins only; the host validator checks more)."""
    if type(b) is not dict:
        return ["board: not an object"]
    errs = []
    for k in b:
        if k == "display":
            errs.append("board.display: not supported (no driver)")
        elif k not in _BOARD_KEYS:
            errs.append("board.%s: unknown field" % k)
    if type(b.get("name")) is not str or not b.get("name"):
        errs.append("board.name: missing")
    chip = b.get("chip")
    if chip not in ("esp32", "esp32s3"):
        errs.append("board.chip: must be esp32 or esp32s3")
    if b.get("input") not in ("buttons", "touch"):
        errs.append("board.input: must be buttons or touch")
    keys = b.get("keys")
    if type(keys) is not list or len(keys) != 5 or not all(_gpio(p) for p in keys):
        errs.append("board.keys: must be 5 GPIO numbers, level 1..5 order")
        keys = None
    leds = b.get("leds")
    if leds is not None and (type(leds) is not list or len(leds) != 5
                             or not all(_gpio(p) for p in leds)):
        errs.append("board.leds: must be 5 GPIO numbers")
        leds = None
    ws = b.get("ws2812")
    if ws is not None and (type(ws) is not dict or not _gpio(ws.get("pin"))
                           or type(ws.get("count")) is not int or ws.get("count", 0) < 5):
        errs.append("board.ws2812: needs pin and count >= 5")
        ws = None
    for k in ("buzzer", "status_led"):
        if b.get(k) is not None and not _gpio(b.get(k)):
            errs.append("board.%s: not a GPIO number" % k)
    if chip in ("esp32", "esp32s3"):
        uses = []
        kuse = "touch" if b.get("input") == "touch" else "button"
        for p in keys or []:
            uses.append(("keys", p, kuse))
        for p in leds or []:
            uses.append(("leds", p, "out"))
        if ws:
            uses.append(("ws2812", ws["pin"], "out"))
        for k in ("buzzer", "status_led"):
            if _gpio(b.get(k)):
                uses.append((k, b[k], "out"))
        for k, p, use in uses:
            why = _pin_error(chip, p, use)
            if why:
                errs.append("board.%s: %s" % (k, why))
    used = []
    for p in (keys or []) + (leds or []):
        if p in used:
            errs.append("board: GPIO %s used twice" % p)
        used.append(p)
    return errs


def der(b64):
    """The bytes of a certificate given as DER in base64, or None when it is not one."""
    if type(b64) is not str or len(b64) < 64:
        return None
    try:
        raw = binascii.a2b_base64(b64)
    except ValueError:
        return None
    return raw if raw and raw[0] == 0x30 else None  # a DER SEQUENCE


def _host_name(s):
    parts = s.split(".") if type(s) is str and len(s) <= 253 else []
    for p in parts:
        if not p or len(p) > 63 or p[0] == "-" or p[-1] == "-":
            return False
        for c in p:
            if not (c.isalpha() or c.isdigit() or c == "-") or ord(c) > 127:
                return False
    return bool(parts) and not _ipv4(s)


def _ipv4(s):
    parts = s.split(".") if type(s) is str else []
    if len(parts) != 4:
        return False
    return all(x and len(x) <= 3 and x.isdigit() and int(x) <= 255 for x in parts)


def validate(raw):
    """Return the config dict with defaults filled in; raise ConfigError naming every bad field."""
    if type(raw) is not dict:
        raise ConfigError(["config: not a JSON object"])
    errs = []
    cfg = {}  # type: dict
    for k in DEFAULTS:
        cfg[k] = DEFAULTS[k]
    for k in raw:
        if k not in DEFAULTS:
            errs.append("%s: unknown field" % k)
        else:
            cfg[k] = raw[k]
    for k in ("wifi_ssid", "broker", "username", "password"):
        if type(cfg[k]) is not str or not cfg[k]:
            errs.append("%s: missing" % k)
    if type(cfg["broker"]) is str and cfg["broker"] and not _ipv4(cfg["broker"]):
        errs.append("broker: an IPv4 address like 10.0.0.2 (a name would block the keys)")
    if type(cfg["wifi_password"]) is not str:
        errs.append("wifi_password: not text")
    for k in ("hall", "terminal"):
        if not topics.valid_id(cfg[k]):
            errs.append("%s: 1-32 of A-Z a-z 0-9 _ -" % k)
    p = cfg["port"]
    if type(p) is not int or not 0 < p < 65536:
        errs.append("port: not a TCP port")
    ka = cfg["keepalive"]
    if type(ka) is not int or not 10 <= ka <= 600:
        errs.append("keepalive: 10..600 seconds")
    if type(cfg["journal"]) is not str or not cfg["journal"].startswith("/"):
        errs.append("journal: absolute path")
    jm = cfg["journal_max"]
    if type(jm) is not int or not 4096 <= jm <= JOURNAL_MAX:
        errs.append("journal_max: 4096..%d bytes" % JOURNAL_MAX)
    ss = cfg["seq_start"]
    if type(ss) is not int or not 1 <= ss <= fields.MAX_INT:  # the hall refuses more
        errs.append("seq_start: a whole number 1..%d" % fields.MAX_INT)
    key = cfg["key"]
    try:
        if type(key) is not str or len(key) < 32 or len(key) % 2:
            raise ValueError
        cfg["key"] = binascii.unhexlify(key)
    except ValueError:
        errs.append("key: hex, at least 16 bytes")
    uk = cfg["update_key"]
    try:
        if uk is not None:
            if type(uk) is not str or len(uk) != 512:
                raise ValueError
            cfg["update_key"] = binascii.unhexlify(uk)
    except ValueError:
        errs.append("update_key: 512 hex digits (the hall update key's RSA-2048 modulus)")
    if cfg["tls_ca"] is not None:
        ca = der(cfg["tls_ca"])
        if ca is None:
            errs.append("tls_ca: the hall CA's certificate, DER in base64")
        cfg["tls_ca"] = ca
        if not _host_name(cfg["tls_name"]):
            errs.append("tls_name: the host name in the broker's certificate, like hall-srv")
    elif cfg["tls_name"] is not None:
        errs.append("tls_name: only with tls_ca")
    errs += board_errors(cfg["board"])
    if errs:
        raise ConfigError(errs)
    return cfg
