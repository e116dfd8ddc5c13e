"""Store records -> the province's records, per profile (pure: no I/O).

A "fact" is what the store knows of one item to deliver, by the source names of profiles.SOURCES
(ticket, region, level 1..5 as ours, reasons as the terminal's codes, times in Unix seconds...).
`build` turns it into the province's record (field names, code maps incl. the reversed scale,
reason codes per level, time format) and checks the result with `check`, the same strict check
the sandbox applies to what it receives: a record that would break the profile is never sent.
`envelope` wraps a batch (and signs it); `open_envelope` is its inverse, for the sandbox.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from haochaping.daemon.rules import workdays
from haochaping.daemon.store.province.profiles import DAY_SOURCE, TIME_SOURCES, Field, Profile
from haochaping.protocol import fields, levels

Fact = Mapping[str, Any]
Record = dict[str, Any]
Value = str | int

_NAMES = {lv[0]: lv[1] for lv in levels.LEVELS}
MAX_TEXT = 2000  # any text field, when the profile sets no max_len


class Unsendable(ValueError):
    """A fact that cannot become a record the profile allows; the message says which field."""


def when(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, workdays.SHANGHAI)


def day_of(ts: float) -> str:
    """YYYY-MM-DD in Asia/Shanghai."""
    return when(ts).strftime("%Y-%m-%d")


def project_no(profile: Profile, hall: str, tx: int, ticket: str, region: str,
               department: str, finished_at: float) -> str:
    """The 办件编号 of a transaction, from the profile's template."""
    return profile.project_no.format(hall=hall, tx=tx, ticket=ticket, region=region,
                                     department=department,
                                     day=when(finished_at).strftime("%Y%m%d"))


def _value(profile: Profile, kind: str, source: str, fact: Fact) -> Value:
    v = fact.get(source)
    if source in TIME_SOURCES:
        return when(float(v)).strftime(profile.time_format) if v is not None else ""
    if source == "level":
        return profile.level_codes[int(fact["level"])]
    if source == "level_name":
        return _NAMES[int(fact["level"])]
    if source == "channel":
        ch = "default" if fact.get("is_default") else str(fact.get("channel") or "PJQ")
        if ch not in profile.channel_codes:
            raise Unsendable("channel %r has no code in this profile ([codes.channel])" % ch)
        return profile.channel_codes[ch]
    if source == "reasons":
        per = profile.reason_codes.get(int(fact["level"]), {})
        codes = []
        for r in fact.get("reasons") or ():
            if r not in per:
                raise Unsendable("reason %r has no code for %s" % (r, levels.name(fact["level"])))
            if per[r] not in codes:
                codes.append(per[r])
        return profile.reason_separator.join(codes)
    if source == "reason_names":
        names = dict(levels.REASONS)
        return profile.reason_separator.join(names.get(r, r) for r in fact.get("reasons") or ())
    if source == "is_default":
        return "1" if fact.get("is_default") else "0"
    if source == "action":
        return profile.action_codes[str(fact["action"])]
    if source == "writing":
        return ""
    if source == "assess_number":
        return int(v or 0)
    return "" if v is None else v if isinstance(v, int) else str(v)


def _field(profile: Profile, kind: str, f: Field, fact: Fact) -> Value:
    if f.source is None:
        assert f.const is not None
        return f.const
    v = _value(profile, kind, f.source, fact)
    if f.pad and isinstance(v, str) and v:
        v = v.ljust(f.pad, "0")
    if f.as_int:
        try:
            return int(v)
        except ValueError:
            raise Unsendable("%s: %r is not a whole number" % (f.name, v)) from None
    return str(v) if isinstance(v, int) else v


def build(profile: Profile, kind: str, fact: Fact) -> Record:
    """The province's record for one fact; Unsendable if it would break the profile."""
    rec: Record = {}
    for f in profile.fields[kind]:
        rec[f.name] = _field(profile, kind, f, fact)
    errors = check(profile, kind, rec)
    if errors:
        raise Unsendable("; ".join(errors))
    return rec


def key(profile: Profile, kind: str, rec: Mapping[str, Any]) -> tuple[str, int]:
    """(办件编号, 评价次数) of a province record (0 for service data)."""
    pno, n = "", 0
    for f in profile.fields[kind]:
        if f.source == "project_no":
            pno = str(rec.get(f.name, ""))
        elif f.source == "assess_number":
            try:
                n = int(rec.get(f.name, 0))
            except (TypeError, ValueError):
                n = 0
    return pno, n


def record_day(profile: Profile, kind: str, rec: Mapping[str, Any]) -> str | None:
    """YYYY-MM-DD of a province record, from the field filled from its time."""
    for f in profile.fields[kind]:
        if f.source == DAY_SOURCE[kind]:
            try:
                t = datetime.datetime.strptime(str(rec.get(f.name)), profile.time_format)
            except ValueError:
                return None
            return t.strftime("%Y-%m-%d")
    return None


def _reason_levels(profile: Profile) -> dict[str, int]:
    return {code: lv for lv, per in profile.reason_codes.items() for code in per.values()}


def check(profile: Profile, kind: str, rec: Mapping[str, Any]) -> list[str]:
    """Every way `rec` breaks the profile, worded as a province would refuse it ([] if none):
    missing or unknown fields, wrong types, codes not in the maps, times not in the format,
    reason codes of another level than the satisfaction (a reversed scale), text with control
    characters (protocol/fields.py's rule)."""
    errors: list[str] = []
    specs = {f.name: f for f in profile.fields[kind]}
    for name in rec:
        if name not in specs:
            errors.append("%s: unknown field" % name)
    level: int | None = None
    reasons = ""
    name_given: str | None = None
    for name, f in specs.items():
        if name not in rec:
            errors.append("%s: missing" % name)
            continue
        v = rec[name]
        if f.as_int:
            if type(v) is not int:
                errors.append("%s: must be a whole number" % name)
            continue
        if f.source is None:
            if v != f.const:
                errors.append("%s: must be %r" % (name, f.const))
            continue
        if not isinstance(v, str):
            errors.append("%s: must be text" % name)
            continue
        try:
            fields.text(name, v, f.max_len or MAX_TEXT)
        except ValueError as e:
            errors.append(str(e))
            continue
        if not v:
            if f.required:
                errors.append("%s: must not be empty" % name)
            continue
        if f.pattern is not None and not f.pattern.fullmatch(v):
            errors.append("%s: %r does not match %s" % (name, v, f.pattern.pattern))
        src = f.source
        if src in TIME_SOURCES:
            try:
                datetime.datetime.strptime(v, profile.time_format)
            except ValueError:
                errors.append("%s: %r is not a time in the format %s"
                              % (name, v, profile.time_format))
        elif src == "level":
            level = profile.level_of(v)
            if level is None:
                errors.append("%s: %r is not a satisfaction code (%s)"
                              % (name, v, "/".join(sorted(profile.level_codes.values()))))
        elif src == "channel" and v not in profile.channel_codes.values():
            errors.append("%s: %r is not a channel code (%s)"
                          % (name, v, "/".join(sorted(set(profile.channel_codes.values())))))
        elif src == "action" and v not in profile.action_codes.values():
            errors.append("%s: %r is not a correction code" % (name, v))
        elif src == "level_name":
            name_given = v
            if v not in _NAMES.values():
                errors.append("%s: %r is not a satisfaction" % (name, v))
        elif src == "is_default" and v not in ("0", "1"):
            errors.append("%s: must be 0 or 1" % name)
        elif src == "reasons":
            reasons = v
    if level is not None and name_given is not None and _NAMES[level] != name_given:
        errors.append("satisfaction name %s does not match its code (%s means %s)"
                      % (name_given, profile.level_codes[level], _NAMES[level]))
    if reasons:
        by_code = _reason_levels(profile)
        for code in reasons.split(profile.reason_separator):
            lv = by_code.get(code)
            if lv is None:
                errors.append("reason code %r is not one of the profile's" % code)
            elif level is not None and lv != level:
                errors.append("reason code %s is a reason for %s, but the satisfaction given is"
                              " %s (%s): reversed scale?" % (code, _NAMES[lv],
                                                             profile.level_codes[level],
                                                             _NAMES[level]))
        if level is not None and not levels.is_bad(level):
            errors.append("reason codes are only for 不满意/非常不满意, not %s" % _NAMES[level])
    return errors


# --- the batch envelope ------------------------------------------------------------------------

def _dump(obj: object) -> bytes:
    return orjson.dumps(obj)


def signature(profile: Profile, stamp: str, params_text: bytes) -> str:
    """The envelope's sign over the profile's parts, in its encoding ("" when unsigned)."""
    if profile.algorithm == "none":
        return ""
    key = profile.key or b""
    parts = {"time": stamp.encode(), "appMark": profile.app_mark.encode(), "params": params_text,
             "key": key}
    msg = b"".join(parts[p] for p in profile.sign_parts)
    if profile.algorithm == "hmac-sha256":
        digest = hmac.new(key, msg, hashlib.sha256).digest()
    elif profile.algorithm == "hmac-sm3":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives import hmac as chmac
        h = chmac.HMAC(key, hashes.SM3())
        h.update(msg)
        digest = h.finalize()
    elif profile.algorithm == "sm3":
        from cryptography.hazmat.primitives import hashes
        hh = hashes.Hash(hashes.SM3())
        hh.update(msg)
        digest = hh.finalize()
    else:
        digest = hashlib.new(profile.algorithm, msg).digest()
    if profile.sign_encoding == "base64":
        return base64.b64encode(digest).decode()
    return digest.hex().upper() if profile.sign_encoding == "hex-upper" else digest.hex()


def envelope(profile: Profile, records: Sequence[Record], now: float) -> bytes:
    """The body of one post: the records in the profile's envelope, signed if it says so."""
    params: dict[str, Any] = {profile.records_key: list(records)}
    if profile.shape == "records":
        return _dump(params)
    stamp = when(now).strftime(profile.envelope_time)
    text = _dump(params)
    body = {"sign": signature(profile, stamp, text), "time": stamp,
            "appMark": profile.app_mark,
            "params": text.decode() if profile.params_as == "string" else params}
    return _dump({"txnBodyCom": body, "txnCommCom": {}})


class BadEnvelope(ValueError):
    """A body the province would refuse as a whole (not about one record); `auth`: the
    signature or the app mark."""

    def __init__(self, message: str, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


def open_envelope(profile: Profile, body: bytes) -> list[Any]:
    """The records of a post, its envelope and signature checked (the sandbox's side)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadEnvelope("body is not JSON: %s" % e) from None
    if not isinstance(doc, dict):
        raise BadEnvelope("body must be a JSON object")
    if profile.shape == "records":
        params = doc
    else:
        env = doc.get("txnBodyCom")
        if not isinstance(env, dict):
            raise BadEnvelope("txnBodyCom: missing, or not an object")
        for k in ("sign", "time", "appMark", "params"):
            if k not in env:
                raise BadEnvelope("txnBodyCom.%s: missing" % k)
        if env["appMark"] != profile.app_mark:
            raise BadEnvelope("txnBodyCom.appMark: unknown application %r" % env["appMark"],
                              auth=True)
        stamp = env["time"]
        if not isinstance(stamp, str):
            raise BadEnvelope("txnBodyCom.time: must be text")
        try:
            datetime.datetime.strptime(stamp, profile.envelope_time)
        except ValueError:
            raise BadEnvelope("txnBodyCom.time: %r is not in the format %s"
                              % (stamp, profile.envelope_time)) from None
        raw = env["params"]
        if profile.params_as == "string":
            if not isinstance(raw, str):
                raise BadEnvelope("txnBodyCom.params: must be a JSON text")
            text = raw.encode()
            try:
                params = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                raise BadEnvelope("txnBodyCom.params: not JSON: %s" % e) from None
        else:
            params = raw
            text = _dump(raw)
        if not hmac.compare_digest(str(env["sign"]), signature(profile, stamp, text)):
            raise BadEnvelope("txnBodyCom.sign: signature does not match", auth=True)
    if not isinstance(params, dict) or not isinstance(params.get(profile.records_key), list):
        raise BadEnvelope("%s: missing, or not a list" % profile.records_key)
    for k in params:
        if k != profile.records_key:
            raise BadEnvelope("%s: unknown field" % k)
    records: list[Any] = params[profile.records_key]
    return records


def lookup(doc: Any, path: str) -> Any:
    """A value at a dotted path ("status.code") in a JSON answer, or None."""
    for part in path.split(".") if path else ():
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc
