"""hall.toml: the hall daemon's configuration, validated at start with every error listed at once.

Example (also written by `hcp demo` into its folder):

    [hall]
    id = "H01"                       # [A-Za-z0-9_-], at most 32
    database = "hall.sqlite"         # relative to this file

    [mqtt]
    host = "127.0.0.1"
    port = 1883
    username = "hall-daemon"
    password = "..."
    tls = false                      # true: TLS to the broker (`hcp broker config --tls`),
    ca = ""                          # checked against this CA (PEM; relative to this file),
                                     # e.g. "broker/tls/hall-ca.pem", port 8883; the broker's
                                     # certificate must name `host`

    [sessions]
    timeout_s = 120                  # a rating prompt stays open this long at most

    [api]
    listen = "127.0.0.1:8780"        # the window-system HTTP API; localhost by default
    max_connections = 500            # open connections at once; more are closed at once
                                     # (the last one answered 503): keep it under `ulimit -n`
    worker_threads = 40              # requests worked on at once (the rest wait their turn)
    keepalive_s = 5                  # an idle connection is closed after this long
    read_timeout_s = 10              # a request's head and body must arrive within this, in
                                     # total: a client sending a byte at a time is cut off
    max_body_bytes = 4096            # a larger request body is answered 413
    [api.tokens]                     # one bearer token per caller
    queue-system = "..."

    [console]                        # the hall web console (served on the [api] listen port)
    enabled = true                   # false: no /window/<W> or /hall pages
    session_idle_s = 1800            # a staff session ends after this long without a click
    session_max_s = 43200            # ... and at the latest this long after sign-in
    pin_failures = 5                 # wrong PINs in a row (per staff number and per PC) ...
    lockout_s = 300                  # ... before sign-in is refused for this long
    pin_checks = 1                   # PINs checked at once (16 MiB and a core's tens of ms of
                                     # scrypt each); a sign-in beyond that is answered 429
                                     # at once, not queued
    max_streams = 100                # live pages (event streams) at once; more get 503
    language = "zh-CN"               # the pages' texts, in
                                     # daemon/hall/console/static/labels.<language>.json
    demo_keypad = false              # true (`hcp demo --keep` sets it): the index page shows
                                     # a "simulated terminal" panel that presses keys through
                                     # the demo's keypad (keypad.sock beside hall.toml)

    [mobile]                         # 评价二维码: the phone page (daemon/hall/mobile.py); off
    listen = "0.0.0.0:8781"          # while listen is empty. Serves ONLY the phone routes.
    public_url = "https://pj.hall.example/"  # what the QR codes encode: the hall gateway's
                                     # address for this listener (default http://<listen>/)
    identity_key_file = "identity.key"  # 64 hex: seals a phone rater's name and phone
                                     # (第六条); empty: no real-name part on the page
    max_connections = 200            # as [api]: open connections, threads, idle and read
    worker_threads = 10              # time, body size
    keepalive_s = 5
    read_timeout_s = 10
    max_body_bytes = 2048
    per_address_per_minute = 30      # requests from one address (more: 429 and a kind page)
    per_token_per_minute = 10        # submissions for one QR token or desk card
    trusted_proxy = ""               # the gateway's address: its X-Forwarded-For is believed
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from typing import Any

from haochaping.daemon.errors import ConfigError
from haochaping.protocol import topics

# One frozen dataclass per [section]: the fields, their types and defaults are the schema that
# validate() checks (a field without a default is required).


@dataclasses.dataclass(frozen=True)
class HallSection:
    id: str
    database: str = "hall.sqlite"


@dataclasses.dataclass(frozen=True)
class MqttSection:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    client_id: str = ""
    keepalive: int = 30
    tls: bool = False
    ca: str = ""


@dataclasses.dataclass(frozen=True)
class SessionsSection:
    timeout_s: int = 120
    grace_s: int = 10


@dataclasses.dataclass(frozen=True)
class IngestSection:
    batch_max: int = 1000
    ack_qos: int = 0


@dataclasses.dataclass(frozen=True)
class ApiSection:
    listen: str = "127.0.0.1:8780"
    tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_connections: int = 500
    worker_threads: int = 40
    keepalive_s: int = 5
    read_timeout_s: int = 10
    max_body_bytes: int = 4096


@dataclasses.dataclass(frozen=True)
class AlertsSection:
    mqtt: bool = True
    webhook: str = ""
    webhook_token: str = ""
    webhook_timeout_s: int = 5


@dataclasses.dataclass(frozen=True)
class ConsoleSection:
    """The hall web console on the [api] port: /window/<W> for staff, /hall for the duty manager."""
    enabled: bool = True
    session_idle_s: int = 1800
    session_max_s: int = 43200
    pin_failures: int = 5
    lockout_s: int = 300
    language: str = "zh-CN"
    pin_checks: int = 1
    max_streams: int = 100
    demo_keypad: bool = False


@dataclasses.dataclass(frozen=True)
class MobileSection:
    """The phone page of the QR channel (评价二维码, daemon/hall/mobile.py) on a listener of its
    own, serving only the phone routes; off while listen is empty."""
    listen: str = ""
    public_url: str = ""
    identity_key_file: str = ""
    max_connections: int = 200
    worker_threads: int = 10
    keepalive_s: int = 5
    read_timeout_s: int = 10
    max_body_bytes: int = 2048
    per_address_per_minute: int = 30
    per_token_per_minute: int = 10
    trusted_proxy: str = ""


@dataclasses.dataclass(frozen=True)
class ForwardSection:
    """Forwarding to the municipal store (docs/store.md); off while url is empty."""
    url: str = ""
    ca: str = ""
    hall_id: str = ""
    key_file: str = ""
    batch_size: int = 500
    max_wait_s: int = 2
    timeout_s: int = 30
    retry_max_s: int = 60
    region: str = ""
    department: str = ""


@dataclasses.dataclass(frozen=True)
class HallConfig:
    """hall.toml, validated. `path` is the file it came from ("" if it came from a dict)."""
    hall: HallSection
    mqtt: MqttSection
    sessions: SessionsSection
    ingest: IngestSection
    api: ApiSection
    alerts: AlertsSection
    console: ConsoleSection
    forward: ForwardSection
    mobile: MobileSection = MobileSection()
    path: str = ""

    @property
    def folder(self) -> str:
        """The folder hall.toml is in (relative paths in it are relative to this)."""
        return os.path.dirname(self.path)


SECTIONS: dict[str, type] = {f.name: typing.get_type_hints(HallConfig)[f.name]
                             for f in dataclasses.fields(HallConfig) if f.name != "path"}
SECRETS = {("mqtt", "password"), ("api", "tokens"), ("alerts", "webhook_token")}
_REQUIRED = object()


def _schema(section: type) -> dict[str, tuple[type, Any]]:
    """key -> (type, default or _REQUIRED) of one section's dataclass."""
    hints = typing.get_type_hints(section)
    out: dict[str, tuple[type, Any]] = {}
    for f in dataclasses.fields(section):
        typ = typing.get_origin(hints[f.name]) or hints[f.name]
        if typ is Mapping:
            typ = dict
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _REQUIRED
        out[f.name] = (typ, default)
    return out


SCHEMA = {name: _schema(cls) for name, cls in SECTIONS.items()}


# values from the README's example and common stand-ins: a hall that starts with one of these
# has a broker password or API token that anyone who read the README knows
PLACEHOLDERS = frozenset({"...", "…", "a-long-random-token", "changeme", "change-me",
                          "password", "secret", "token", "xxx", "todo"})


def parse_toml(text: str, path: str) -> dict[str, Any]:
    """hall.toml's text as tables; ConfigError (with the line) when it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("%s is not valid TOML: %s" % (path, e)) from None


def read_text(path: str) -> str:
    """A config file's text: UTF-8, with or without the byte-order mark Windows editors add;
    a file saved in another encoding (GBK) is refused with what to do."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError("config file %s not found (see `hcp daemon run --help` for an example,"
                          " or `hcp init` to write one)" % path) from None
    except OSError as e:
        raise ConfigError("cannot read %s: %s" % (path, e.strerror)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError("%s is not UTF-8 text (byte %d; saved as GBK?): save it as UTF-8"
                          % (path, e.start)) from None


def load(path: str) -> HallConfig:
    """Read and validate a config file; raise ConfigError naming every problem."""
    raw = parse_toml(read_text(path), path)
    base = os.path.dirname(os.path.abspath(path))
    cfg = validate(raw)
    fwd = cfg.forward
    mob = cfg.mobile
    return dataclasses.replace(
        cfg, path=os.path.abspath(path),
        mqtt=dataclasses.replace(cfg.mqtt, ca=os.path.join(base, cfg.mqtt.ca)
                                 if cfg.mqtt.ca else ""),
        mobile=dataclasses.replace(mob, identity_key_file=os.path.join(
            base, mob.identity_key_file) if mob.identity_key_file else ""),
        hall=dataclasses.replace(cfg.hall, database=os.path.join(base, cfg.hall.database)),
        forward=dataclasses.replace(
            fwd, ca=os.path.join(base, fwd.ca) if fwd.ca else "",
            key_file=os.path.join(base, fwd.key_file) if fwd.key_file else ""))


def validate(raw: Mapping[str, Any]) -> HallConfig:
    """Check a parsed hall.toml against the schema; raise ConfigError listing every problem."""
    errors: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    for section in raw:
        if section not in SCHEMA:
            errors.append("[%s]: unknown section (known: %s)" % (section, ", ".join(SCHEMA)))
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            errors.append("[%s]: must be a table" % section)
            given = {}
        out = values[section] = {}
        for key in given:
            if key not in keys:
                errors.append("[%s] %s: unknown key (known: %s)" % (section, key, ", ".join(keys)))
        for key, (typ, default) in keys.items():
            if key in given:
                value = given[key]
                if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
                    errors.append("[%s] %s: must be %s, got %r" % (
                        section, key, typ.__name__, _redact(section, key, value)))
                    continue
                out[key] = value
            elif default is _REQUIRED:
                errors.append("[%s] %s: required" % (section, key))
            else:
                out[key] = default
    if errors:
        raise ConfigError("configuration has %d problem(s):\n  " % len(errors)
                          + "\n  ".join(errors))
    _check_values(values, errors)
    if errors:
        raise ConfigError("configuration has %d problem(s):\n  " % len(errors)
                          + "\n  ".join(errors))
    if not values["mqtt"]["client_id"]:
        values["mqtt"]["client_id"] = "hcp-daemon-" + values["hall"]["id"]
    return HallConfig(**{name: SECTIONS[name](**v) for name, v in values.items()})


def _check_forward(f: dict[str, Any], errors: list[str]) -> None:
    if not f["url"]:
        return
    if not f["url"].startswith("https://"):
        errors.append("[forward] url: https://HOST:PORT of the store, got %r" % f["url"])
    if not f["key_file"]:
        errors.append("[forward] key_file: required with url (from `hcp store add-hall`)")
    if f["hall_id"] and not topics.valid_id(f["hall_id"]):
        errors.append("[forward] hall_id: use 1-32 of A-Z a-z 0-9 _ -")
    if not 1 <= f["batch_size"] <= 10000:
        errors.append("[forward] batch_size: 1 to 10000")
    if len(f["region"]) > 12 or len(f["department"]) > 64:
        errors.append("[forward] region: at most 12 characters (行政区划代码),"
                      " department: at most 64")
    for key in ("max_wait_s", "timeout_s", "retry_max_s"):
        if f[key] < (0 if key == "max_wait_s" else 1):
            errors.append("[forward] %s: at least %d" % (key, 0 if key == "max_wait_s" else 1))


def _check_mobile(m: dict[str, Any], errors: list[str]) -> None:
    if not m["listen"]:
        return
    host, _, port = m["listen"].rpartition(":")
    if not host or not port.isdigit():
        errors.append("[mobile] listen: HOST:PORT, got %r" % m["listen"])
    url = m["public_url"]
    if url and (not url.startswith(("http://", "https://")) or not url.endswith("/")
                or any(c in url for c in "?#\"\\<> ")):
        errors.append("[mobile] public_url: the address citizens' phones reach the listener"
                      " by, http(s)://HOST[:PORT]/PATH/ ending in /, got %r" % url)
    for key in ("max_connections", "worker_threads", "keepalive_s", "read_timeout_s",
                "per_address_per_minute", "per_token_per_minute"):
        if m[key] < 1:
            errors.append("[mobile] %s: at least 1" % key)
    if not 256 <= m["max_body_bytes"] <= 65536:
        errors.append("[mobile] max_body_bytes: 256 to 65536")


def _check_values(cfg: dict[str, dict[str, Any]], errors: list[str]) -> None:
    _check_forward(cfg["forward"], errors)
    _check_mobile(cfg["mobile"], errors)
    hook = cfg["alerts"]["webhook"]
    if hook and not hook.startswith(("http://", "https://")):
        errors.append("[alerts] webhook: an http:// or https:// address, got %r" % hook)
    if not topics.valid_id(cfg["hall"]["id"]):
        errors.append("[hall] id: use 1-32 of A-Z a-z 0-9 _ -, got %r" % cfg["hall"]["id"])
    if not 0 < cfg["mqtt"]["port"] < 65536:
        errors.append("[mqtt] port: must be 1-65535")
    if cfg["mqtt"]["tls"] and not cfg["mqtt"]["ca"]:
        errors.append("[mqtt] ca: required with tls = true: the hall CA's certificate (PEM),"
                      " e.g. \"broker/tls/hall-ca.pem\" from `hcp broker config --tls`")
    if cfg["mqtt"]["ca"] and not cfg["mqtt"]["tls"]:
        errors.append("[mqtt] ca: only used with tls = true (set it, or remove ca)")
    if cfg["sessions"]["timeout_s"] < 5:
        errors.append("[sessions] timeout_s: at least 5 seconds, or citizens cannot rate")
    if cfg["ingest"]["batch_max"] < 1:
        errors.append("[ingest] batch_max: at least 1")
    if cfg["ingest"]["ack_qos"] not in (0, 1):
        errors.append("[ingest] ack_qos: 0 or 1")
    host, _, port = cfg["api"]["listen"].rpartition(":")
    if not host or not port.isdigit():
        errors.append("[api] listen: HOST:PORT, got %r" % cfg["api"]["listen"])
    for key in ("max_connections", "worker_threads", "keepalive_s", "read_timeout_s"):
        if cfg["api"][key] < 1:
            errors.append("[api] %s: at least 1" % key)
    if not 256 <= cfg["api"]["max_body_bytes"] <= 1024 * 1024:
        errors.append("[api] max_body_bytes: 256 to 1048576")
    c = cfg["console"]
    for key in ("session_idle_s", "session_max_s", "pin_failures", "lockout_s", "pin_checks",
                "max_streams"):
        if c[key] < 1:
            errors.append("[console] %s: at least 1" % key)
    labels = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console", "static",
                          "labels.%s.json" % os.path.basename(c["language"]))
    if not os.path.exists(labels):
        errors.append("[console] language: no daemon/hall/console/static/labels.%s.json"
                      % c["language"])
    for name, token in cfg["api"]["tokens"].items():
        if not isinstance(token, str) or len(token) < 16:
            errors.append("[api.tokens] %s: a token of at least 16 characters" % name)
        elif _placeholder(token):
            errors.append("[api.tokens] %s: the README's placeholder, not a secret: put a random"
                          " one (`hcp init` writes a hall.toml with random secrets)" % name)
    if _placeholder(cfg["mqtt"]["password"]):
        errors.append("[mqtt] password: a placeholder, not a secret: put the daemon's broker"
                      " password (`hcp init` writes a hall.toml with random secrets)")


def _placeholder(secret: str) -> bool:
    return secret.strip().lower() in PLACEHOLDERS or "..." in secret or "…" in secret


def _redact(section: str, key: str, value: object) -> object:
    return "***" if (section, key) in SECRETS else value


def redacted(cfg: HallConfig) -> dict[str, object]:
    """The config as a dict that is safe to log."""
    out: dict[str, object] = {}
    for section, values in dataclasses.asdict(cfg).items():
        if isinstance(values, dict):
            out[section] = {k: _redact(section, k, v) for k, v in values.items()}
        else:
            out[section] = values
    return out
