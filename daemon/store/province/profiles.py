"""Delivery profiles: how one province wants the store's results (第十五条), as a TOML file.

A profile is data, not code: field names, code maps (the level in either direction, reason codes
per level, channels), the time format, the 办件编号 template, the batch envelope, signing,
endpoints, order (service data before evaluations), batch size and rate. `load` validates a
profile at once and lists every problem it finds (ProfileError), so that a city's IT fixes a
new province's file in one go. The profiles shipped are in profiles/ beside this file
(`gbt39046`, `provincial`); `example()` is the commented template for a new province.
"""
from __future__ import annotations

import dataclasses
import os
import re
import string
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal

from haochaping.daemon.errors import HcpError
from haochaping.protocol import levels

KINDS = ("service", "evaluation", "correction")
Kind = Literal["service", "evaluation", "correction"]

# What a field of the province's records may be filled from, per kind of record. Times are
# formatted with [time] format; coded values go through [codes].
_SERVICE = ("project_no", "uid", "hall", "tx", "ticket", "window", "item", "item_version",
            "department", "region", "staff", "channel", "started_at", "finished_at")
SOURCES: dict[str, tuple[str, ...]] = {
    "service": _SERVICE,
    "evaluation": _SERVICE + ("assess_number", "level", "level_name", "reasons", "reason_names",
                              "rated_at", "is_default", "writing"),
    "correction": ("project_no", "assess_number", "level", "level_name", "action", "decided_at",
                   "decision", "appeal"),
}
TIME_SOURCES = ("started_at", "finished_at", "rated_at", "decided_at")
# the field whose time gives a record's day (reconcile --day)
DAY_SOURCE = {"service": "finished_at", "evaluation": "rated_at", "correction": "decided_at"}
# the fields that name a record for the province: 办件编号 + 评价次数
KEY_SOURCES = ("project_no", "assess_number")
SHAPES = ("records", "txnBodyCom")
ALGORITHMS = ("none", "hmac-sha256", "hmac-sm3", "sha256", "sm3", "md5")
ENCODINGS = ("hex", "hex-upper", "base64")
SIGN_PARTS = ("time", "appMark", "params", "key")
ACTIONS = ("withdraw",)  # corrections: an upheld appeal withdraws the bad review (第十条)
_TEMPLATE_KEYS = ("hall", "tx", "ticket", "region", "department", "day")
PROJECT_NO_MAX = 50      # GB/T 39046: 办件编号 an..50
MAX_BATCH = 10000


class ProfileError(HcpError):
    """A profile that cannot be used; `problems` lists every one found."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("profile %s: %d problem(s):\n  - %s"
                         % (path, len(problems), "\n  - ".join(problems)))


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of the province's record: filled from `source`, or the constant `const`."""
    name: str
    source: str | None
    const: str | int | None = None
    pad: int = 0                  # right-pad with "0" to this many characters (区划: 6 -> 12)
    max_len: int = 0              # 0: no limit
    pattern: re.Pattern[str] | None = None
    as_int: bool = False          # sent as a JSON number
    required: bool = True         # an empty value is refused before sending


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    title: str
    path: str
    url: str
    endpoints: Mapping[str, str]          # kind -> path under url
    reconcile: str                        # GET path for the province's counts of a day, or ""
    timeout_s: float
    ca: str
    batch_size: int
    rate_per_s: float                     # records per second at most (0: no limit)
    retry_max_s: float
    settle_s: float                       # a bad review waits this long for its reasons
    service_first: bool
    kinds: tuple[str, ...]
    shape: str
    records_key: str
    params_as: str                        # txnBodyCom: "object" or "string" (JSON text)
    app_mark: str
    algorithm: str
    key: bytes | None
    key_file: str
    sign_parts: tuple[str, ...]
    sign_encoding: str
    envelope_time: str                    # strftime of the envelope's time
    code_path: str
    ok_codes: tuple[str, ...]
    retry_codes: tuple[str, ...]
    auth_codes: tuple[str, ...]
    message_path: str
    results_path: str                     # per-record answers, "" if the province has none
    result_code: str
    result_ok: tuple[str, ...]
    result_message: str
    time_format: str
    project_no: str                       # template, e.g. "{region}{hall}{tx:08d}"
    level_codes: Mapping[int, str]        # our level (1 非常满意 .. 5 非常不满意) -> theirs
    channel_codes: Mapping[str, str]      # PJQ, QR, default -> theirs
    reason_codes: Mapping[int, Mapping[str, str]]   # level -> terminal reason -> theirs
    reason_separator: str
    action_codes: Mapping[str, str]
    fields: Mapping[str, tuple[Field, ...]]

    def endpoint(self, kind: str, base: str | None = None) -> str:
        return (base or self.url).rstrip("/") + self.endpoints[kind]

    def level_of(self, code: str) -> int | None:
        """Our level for the province's code (None: no such code)."""
        for lv, c in self.level_codes.items():
            if c == code:
                return lv
        return None


def shipped() -> list[str]:
    """Names of the profiles shipped with the store."""
    files = resources.files(__package__).joinpath("profiles")
    return sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".toml"))


def resolve(name_or_path: str) -> str:
    """A shipped profile's name (gbt39046) or a path to a TOML file -> the file's path."""
    if os.sep in name_or_path or name_or_path.endswith(".toml") or os.path.exists(name_or_path):
        return name_or_path
    if name_or_path in shipped():
        return str(resources.files(__package__).joinpath("profiles", name_or_path + ".toml"))
    raise HcpError("no profile %r: give a TOML file, or one of %s"
                   % (name_or_path, ", ".join(shipped())))


def example() -> str:
    """The commented template for a province's profile (`hcp province profile example`)."""
    return resources.files(__package__).joinpath("example.toml").read_text(encoding="utf-8")


def load(name_or_path: str, key_file: str | None = None, url: str | None = None) -> Profile:
    """Read and validate a profile; every problem found is listed in one ProfileError.
    key_file, url: override the profile's (relative paths in the profile are relative to it)."""
    path = resolve(name_or_path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise HcpError("profile %s: no such file" % path) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(path, ["not a readable TOML file: %s" % e]) from None
    return _Checker(path, data, key_file, url).profile()


class _Checker:
    """Walks a profile's tables, collecting every problem rather than stopping at the first."""

    def __init__(self, path: str, data: dict[str, Any], key_file: str | None,
                 url: str | None) -> None:
        self.path, self.data = path, data
        self.key_override, self.url_override = key_file, url
        self.problems: list[str] = []

    def bad(self, where: str, what: str) -> None:
        self.problems.append("%s: %s" % (where, what))

    def table(self, parent: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...],
              required: bool = True) -> dict[str, Any]:
        v = parent.get(key)
        if v is None:
            if required:
                self.bad(where, "missing table")
            return {}
        if not isinstance(v, dict):
            self.bad(where, "must be a table")
            return {}
        for k in v:
            if allowed and k not in allowed:
                self.bad("%s.%s" % (where, k), "unknown key (known: %s)" % ", ".join(allowed))
        return v

    def text(self, t: Mapping[str, Any], key: str, where: str, default: str | None = None,
             choices: tuple[str, ...] = ()) -> str:
        v = t.get(key, default)
        if v is None:
            self.bad("%s.%s" % (where, key), "missing")
            return ""
        if not isinstance(v, str):
            self.bad("%s.%s" % (where, key), "must be text")
            return ""
        if choices and v not in choices:
            self.bad("%s.%s" % (where, key), "must be one of %s, not %r" % (", ".join(choices), v))
        return v

    def number(self, t: Mapping[str, Any], key: str, where: str, default: float,
               lo: float, hi: float, whole: bool = False) -> float:
        v = t.get(key, default)
        ok = type(v) is int or (type(v) is float and not whole)
        if not ok or not lo <= v <= hi:
            self.bad("%s.%s" % (where, key), "must be a %s %g..%g"
                     % ("whole number" if whole else "number", lo, hi))
            return default
        return v

    def codes(self, t: Mapping[str, Any], where: str) -> tuple[str, ...]:
        v = t.get(where.rsplit(".", 1)[-1], [])
        if not isinstance(v, list) or not all(isinstance(c, str) and c for c in v):
            self.bad(where, "must be a list of codes (text)")
            return ()
        return tuple(v)

    def profile(self) -> Profile:
        d = self.data
        for k in d:
            if k not in ("profile", "endpoint", "delivery", "envelope", "signing", "response",
                         "time", "ids", "codes", "service", "evaluation", "correction"):
                self.bad(k, "unknown table")
        p = self.table(d, "profile", "profile", ("name", "title", "source"))
        name = self.text(p, "name", "profile")
        if name and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name):
            self.bad("profile.name", "must be 1-32 of A-Z a-z 0-9 _ - (it names the target)")
        e = self.table(d, "endpoint", "endpoint", ("url", "service", "evaluation", "correction",
                                                   "reconcile", "timeout_s", "ca"))
        url = self.url_override or self.text(e, "url", "endpoint")
        if url and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            self.bad("endpoint.url", "must be http(s)://HOST[:PORT][/path], not %r" % url)
        dl = self.table(d, "delivery", "delivery", ("batch_size", "rate_per_s", "retry_max_s",
                                                    "settle_s", "service_first", "kinds"))
        kinds = dl.get("kinds", list(KINDS))
        if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
            self.bad("delivery.kinds", "must list some of %s" % ", ".join(KINDS))
            kinds = list(KINDS)
        if "evaluation" not in kinds:
            self.bad("delivery.kinds", "must include evaluation (the results themselves)")
        service_first = dl.get("service_first", "service" in kinds)
        if not isinstance(service_first, bool):
            self.bad("delivery.service_first", "must be true or false")
            service_first = False
        if service_first and "service" not in kinds:
            self.bad("delivery.service_first", "true, but service is not in delivery.kinds")
        endpoints = {}
        for k in kinds:
            ep = self.text(e, k, "endpoint")
            if ep and not ep.startswith("/"):
                self.bad("endpoint.%s" % k, "must be a path starting with /")
            endpoints[k] = ep
        reconcile = self.text(e, "reconcile", "endpoint", "")
        if reconcile and not reconcile.startswith("/"):
            self.bad("endpoint.reconcile", "must be a path starting with /")
        ca = self.text(e, "ca", "endpoint", "")
        if ca:
            ca = self._relative(ca)
            if not os.path.isfile(ca):
                self.bad("endpoint.ca", "no such file %s" % ca)
        env = self.table(d, "envelope", "envelope", ("shape", "records_key", "params",
                                                     "app_mark", "time_format"))
        shape = self.text(env, "shape", "envelope", choices=SHAPES)
        sg = self.table(d, "signing", "signing", ("algorithm", "key_file", "parts", "encoding"))
        algorithm = self.text(sg, "algorithm", "signing", "none", ALGORITHMS)
        key, key_file = self._key(sg, algorithm)
        parts = sg.get("parts", ["time", "appMark", "params"])
        if not isinstance(parts, list) or any(x not in SIGN_PARTS for x in parts):
            self.bad("signing.parts", "must list some of %s" % ", ".join(SIGN_PARTS))
            parts = []
        if algorithm != "none" and shape != "txnBodyCom":
            self.bad("signing.algorithm", "a signature needs envelope.shape = \"txnBodyCom\"")
        if algorithm in ("sha256", "sm3", "md5") and "key" not in parts:
            self.bad("signing.parts", "a plain hash without \"key\" in parts proves nothing")
        if algorithm.startswith("hmac") and "key" in parts:
            self.bad("signing.parts", "an HMAC takes the key as its key, not as a part")
        rs = self.table(d, "response", "response", ("code", "ok", "retry", "auth", "message",
                                                    "results", "result_code", "result_ok",
                                                    "result_message"))
        tm = self.table(d, "time", "time", ("format",))
        time_format = self._strftime(tm, "format", "time", "%Y-%m-%d %H:%M:%S")
        ids = self.table(d, "ids", "ids", ("project_no",))
        project_no = self._template(self.text(ids, "project_no", "ids"))
        cd = self.table(d, "codes", "codes", ("level", "channel", "reasons", "reason_separator",
                                              "action"))
        level_codes = self._level_codes(cd)
        channel_codes = self._mapping(cd, "channel", ("PJQ", "QR", "default"))
        reason_codes = self._reason_codes(cd, level_codes)
        action_codes = (self._mapping(cd, "action", ACTIONS) if "correction" in kinds
                        else {})
        fields = {k: self._fields(k, d) for k in kinds}
        for k in KINDS:
            if k not in kinds and k in d:
                self.bad(k, "fields for a kind not in delivery.kinds")
        timeout_s = self.number(e, "timeout_s", "endpoint", 30, 0.1, 600)
        batch_size = int(self.number(dl, "batch_size", "delivery", 100, 1, MAX_BATCH, True))
        rate_per_s = self.number(dl, "rate_per_s", "delivery", 0, 0, 1e6)
        retry_max_s = self.number(dl, "retry_max_s", "delivery", 300, 0.1, 86400)
        settle_s = self.number(dl, "settle_s", "delivery", 600, 0, 86400 * 5)
        if self.problems:
            raise ProfileError(self.path, self.problems)
        return Profile(
            name=name, title=self.text(p, "title", "profile", ""), path=self.path, url=url,
            endpoints=endpoints, reconcile=reconcile,
            timeout_s=timeout_s, ca=ca, batch_size=batch_size, rate_per_s=rate_per_s,
            retry_max_s=retry_max_s, settle_s=settle_s,
            service_first=service_first, kinds=tuple(k for k in KINDS if k in kinds),
            shape=shape, records_key=self.text(env, "records_key", "envelope", "records"),
            params_as=self.text(env, "params", "envelope", "object", ("object", "string")),
            app_mark=self.text(env, "app_mark", "envelope", ""),
            algorithm=algorithm, key=key, key_file=key_file, sign_parts=tuple(parts),
            sign_encoding=self.text(sg, "encoding", "signing", "hex", ENCODINGS),
            envelope_time=self._strftime(env, "time_format", "envelope", "%Y%m%d%H%M%S"),
            code_path=self.text(rs, "code", "response"), ok_codes=self.codes(rs, "response.ok"),
            retry_codes=self.codes(rs, "response.retry"),
            auth_codes=self.codes(rs, "response.auth"),
            message_path=self.text(rs, "message", "response", ""),
            results_path=self.text(rs, "results", "response", ""),
            result_code=self.text(rs, "result_code", "response", "code"),
            result_ok=self.codes(rs, "response.result_ok") or self.codes(rs, "response.ok"),
            result_message=self.text(rs, "result_message", "response", "msg"),
            time_format=time_format, project_no=project_no, level_codes=level_codes,
            channel_codes=channel_codes, reason_codes=reason_codes,
            reason_separator=self.text(cd, "reason_separator", "codes", ","),
            action_codes=action_codes, fields=fields)

    def _relative(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(os.path.dirname(self.path), p)

    def _key(self, sg: Mapping[str, Any], algorithm: str) -> tuple[bytes | None, str]:
        if algorithm == "none":
            return None, ""
        key_file = self.key_override or self.text(sg, "key_file", "signing")
        if not key_file:
            return None, ""
        key_file = key_file if self.key_override else self._relative(key_file)
        try:
            with open(key_file, "rb") as f:
                key = f.read().strip()
        except OSError as e:
            self.bad("signing.key_file", "cannot read %s: %s" % (key_file, e.strerror or e))
            return None, key_file
        if len(key) < 16:
            self.bad("signing.key_file", "%s holds %d bytes: a key has 16 at least"
                     % (key_file, len(key)))
        return key, key_file

    def _strftime(self, t: Mapping[str, Any], key: str, where: str, default: str) -> str:
        fmt = self.text(t, key, where, default)
        if fmt and (not re.search(r"%[Ymd]", fmt) or re.search(r"%[^YmdHMS%T-]", fmt)):
            self.bad("%s.%s" % (where, key), "a strftime format of %%Y %%m %%d %%H %%M %%S (and"
                     " %%T) only, such as \"%%Y-%%m-%%d %%H:%%M:%%S\"; not %r" % fmt)
        return fmt

    def _template(self, tpl: str) -> str:
        if not tpl:
            return tpl
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(tpl) if f is not None]
        except ValueError as e:
            self.bad("ids.project_no", "not a template: %s" % e)
            return tpl
        for f in names:
            if f not in _TEMPLATE_KEYS:
                self.bad("ids.project_no", "unknown {%s} (known: %s)"
                         % (f, ", ".join(_TEMPLATE_KEYS)))
                return tpl
        if "tx" not in names:
            self.bad("ids.project_no", "must hold {tx}: a 办件编号 names one transaction")
            return tpl
        try:
            sample = tpl.format(hall="H01", tx=1, ticket="A017", region="530102",
                                department="D1", day="20261001")
        except (ValueError, KeyError, IndexError) as e:
            self.bad("ids.project_no", "cannot be filled in: %s" % e)
            return tpl
        if len(sample) > PROJECT_NO_MAX:
            self.bad("ids.project_no", "gives %d characters; a 办件编号 has %d at most"
                     % (len(sample), PROJECT_NO_MAX))
        return tpl

    def _level_codes(self, cd: Mapping[str, Any]) -> dict[int, str]:
        m = self._mapping(cd, "level", tuple(str(lv[0]) for lv in levels.LEVELS))
        out = {int(k): v for k, v in m.items()}
        if len(set(out.values())) != len(out):
            self.bad("codes.level", "two levels share a code")
        return out

    def _mapping(self, cd: Mapping[str, Any], key: str, ours: tuple[str, ...]) -> dict[str, str]:
        t = self.table(cd, key, "codes.%s" % key, ours)
        out = {}
        for k in ours:
            v = t.get(k)
            if not isinstance(v, str) or not v or len(v) > 32:
                self.bad("codes.%s.%s" % (key, k), "missing, or not a code (1-32 characters"
                         " of text)" if v is None or isinstance(v, str) else "must be text, as"
                         " the province writes it (\"%s\")" % (v,))
            else:
                out[k] = v
        return out

    def _reason_codes(self, cd: Mapping[str, Any],
                      level_codes: Mapping[int, str]) -> dict[int, dict[str, str]]:
        bad_levels = [str(lv[0]) for lv in levels.LEVELS if lv[3]]
        t = self.table(cd, "reasons", "codes.reasons", tuple(bad_levels))
        reasons = tuple(r[0] for r in levels.REASONS)
        out: dict[int, dict[str, str]] = {}
        seen: dict[str, str] = {}
        for lv in bad_levels:
            per = self.table(t, lv, "codes.reasons.%s" % lv, reasons)
            out[int(lv)] = {}
            for r in reasons:
                code = per.get(r)
                where = "codes.reasons.%s.%s" % (lv, r)
                if not isinstance(code, str) or not code:
                    self.bad(where, "missing (the province's code for %s after %s)"
                             % (dict(levels.REASONS)[r], levels.name(int(lv))))
                    continue
                if code in seen:
                    self.bad(where, "code %s is also %s" % (code, seen[code]))
                seen[code] = where
                out[int(lv)][r] = code
        return out

    def _fields(self, kind: str, d: Mapping[str, Any]) -> tuple[Field, ...]:
        t = self.table(d, kind, kind, ("fields",))
        ft = self.table(t, "fields", "%s.fields" % kind, ())
        out = []
        sources = set()
        for name, spec in ft.items():
            where = "%s.fields.%s" % (kind, name)
            f = self._field(kind, name, spec, where)
            if f is not None:
                out.append(f)
                sources.add(f.source)
        if ft:
            for need in KEY_SOURCES if kind != "service" else ("project_no",):
                if need not in sources:
                    self.bad("%s.fields" % kind, "no field from %s: the province's key is"
                             " 办件编号 + 评价次数" % need)
            if DAY_SOURCE[kind] not in sources:
                self.bad("%s.fields" % kind, "no field from %s (the record's time)"
                         % DAY_SOURCE[kind])
        return tuple(out)

    def _field(self, kind: str, name: str, spec: Any, where: str) -> Field | None:
        if not re.fullmatch(r"[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]{0,63}", name):
            self.bad(where, "not a field name")
        if isinstance(spec, str):
            spec = {"from": spec}
        if not isinstance(spec, dict):
            self.bad(where, "must be a source name or a table {from = ..., ...}")
            return None
        for k in spec:
            if k not in ("from", "const", "pad", "max_len", "pattern", "type", "required"):
                self.bad("%s.%s" % (where, k), "unknown key (known: from, const, pad, max_len,"
                         " pattern, type, required)")
        source, const = spec.get("from"), spec.get("const")
        if (source is None) == (const is None):
            self.bad(where, "needs exactly one of from = SOURCE or const = VALUE")
            return None
        if source is not None and source not in SOURCES[kind]:
            self.bad(where, "unknown source %r for %s records (known: %s)"
                     % (source, kind, ", ".join(SOURCES[kind])))
            return None
        if const is not None and not isinstance(const, (str, int)) or isinstance(const, bool):
            self.bad(where, "const must be text or a whole number")
            return None
        pattern = None
        if "pattern" in spec:
            try:
                pattern = re.compile(spec["pattern"])
            except (re.error, TypeError) as e:
                self.bad("%s.pattern" % where, "not a regular expression: %s" % e)
        typ = spec.get("type", "string")
        if typ not in ("string", "int"):
            self.bad("%s.type" % where, "must be string or int")
        pad = spec.get("pad", 0)
        max_len = spec.get("max_len", 0)
        for k, v in (("pad", pad), ("max_len", max_len)):
            if type(v) is not int or not 0 <= v <= 4096:
                self.bad("%s.%s" % (where, k), "must be a whole number 0..4096")
        required = spec.get("required", True)
        if not isinstance(required, bool):
            self.bad("%s.required" % where, "must be true or false")
        return Field(name=name, source=source, const=const, pad=pad if type(pad) is int else 0,
                     max_len=max_len if type(max_len) is int else 0, pattern=pattern,
                     as_int=typ == "int", required=bool(required))
