"""The records a hall forwards and the batch that carries them: validation, ids, signatures, and
the rater's identity encrypted at rest. Pure functions; docs/store.md describes every field.

A batch body is JSON, version 2 (what halls send): {"v": 2, "hall": "H01", "batch": "<id>",
"transactions": {field: [...]}, "ratings": {...}, "reasons": {...}, "raters": {...}}, one array
per field
(docs/store.md, "The batch body"); version 1, {"hall", "batch", "records": [{...}, ...]}, one
object per record, is still read. Each record has a globally unique id (hall + kind + the hall's
own key; sent in version 1, derived from the fields in version 2), so a record sent twice is
stored once:
    transaction  "H01:tx:17"            one 办件, forwarded once it is finished
    rating       "H01:rating:T001:42"   one press, as the hall bound it (its `outcome`)
    reason       "H01:reason:T001:43"   a bad-review reason, pointing at its rating's seq
    rater        "H01:rater:17"         a phone rater's consented identity for transaction 17,
                                        sealed for the store under the hall's key (seal_rater)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from haochaping.daemon import sealed as sealing
from haochaping.daemon.errors import HcpError
from haochaping.protocol import fields

CHANNEL = "PJQ"  # 评价渠道: 实体大厅 评价器 (the provincial interfaces' code)
CHANNEL_QR = "QR"  # 评价二维码: rated on the citizen's phone (第五条), a rating's `channel`
MAX_BODY = 16 * 1024 * 1024  # bytes; a batch of 5,000 records is about 2 MB
MAX_RECORDS = 20000
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_BATCH = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
OUTCOMES = ("counted", "duplicate", "unsolicited", "expired")
REASONS_MAX = 64

# One field's values, one per record: str, int, float or None as docs/store.md gives each field,
# and a transaction's raters are JSON objects (Any: the identity inside is whatever the hall sent).
Column = list[Any]
# The columns of one kind, in FIELDS[kind] order; only a transaction's last column (the raters)
# may be None: no record has one.
Columns = list[Column | None]


class BadBatch(HcpError):
    """The batch is not what docs/store.md describes: HTTP 400 or 422 with this reason."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.status = status


def valid_id(s: object) -> bool:
    return isinstance(s, str) and _ID.match(s) is not None


def valid_batch_id(s: object) -> bool:
    return isinstance(s, str) and _BATCH.match(s) is not None


def signature(key: bytes, hall: str, batch_id: str, body: bytes) -> str:
    """HMAC-SHA256 over hall, batch id and the exact body bytes (hex)."""
    msg = hall.encode() + b"\n" + batch_id.encode() + b"\n" + body
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def verify(key: bytes, hall: str, batch_id: str, body: bytes, sig: str | None) -> bool:
    return isinstance(sig, str) and hmac.compare_digest(signature(key, hall, batch_id, body), sig)


# ------------------------------------------------------------------ a rater's identity on the way
# A phone rater's name and phone (第六条) travel sealed: AES-256-GCM under a key derived from the
# hall's batch key (the one secret hall and store already share), the record id as associated
# data (a sealed identity cannot be moved to another record). TLS protects the wire; this keeps
# the identity out of the batch bytes the hall keeps (forward_batches) and out of any proxy.
RATER_INFO = b"haochaping rater v1"   # HKDF info: this key is for raters' identities only
SEALED_MAX = 1024                     # characters of a sealed identity (base64); a name of
                                      # 32 characters and a phone of 20 seal to about 200


def _rater_key(batch_key: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=RATER_INFO).derive(batch_key)


def rater_uid(hall: str, tx: int) -> str:
    """The id of the rater record of transaction `tx`: H01:rater:17."""
    return "%s:rater:%d" % (hall, tx)


def seal_rater(batch_key: bytes, uid: str, identity: Mapping[str, object]) -> str:
    """The identity (a JSON object) sealed for the store, as record `uid` carries it: base64 of
    a random 96-bit nonce followed by the AES-256-GCM ciphertext."""
    return base64.b64encode(sealing.seal(_rater_key(batch_key), identity, uid.encode())
                            ).decode("ascii")


def open_rater(batch_key: bytes, uid: str, sealed: str) -> dict[str, Any]:
    """What seal_rater sealed for record `uid`; BadBatch (422, naming the record and its field)
    if it does not open: another key, another record, altered bytes, not an object."""
    from cryptography.exceptions import InvalidTag
    try:
        blob = base64.b64decode(sealed.encode("ascii"), validate=True)
        if len(blob) < 12 + 16:
            raise ValueError("too short")
        identity = sealing.open_sealed(_rater_key(batch_key), blob, uid.encode())
    except (InvalidTag, ValueError, UnicodeError, binascii.Error):
        raise BadBatch("record %s: sealed does not open with this hall's key (sealed for"
                       " another record or hall, or altered)" % uid) from None
    if not isinstance(identity, dict):
        raise BadBatch("record %s: sealed must hold an identity object" % uid)
    return identity


def encode_columns(hall: str, batch_id: str,
                   tables: Mapping[str, Mapping[str, Sequence[object]]]) -> bytes:
    """The bytes a hall posts: a version-2 body, one array per field (docs/store.md).
    `tables`: {"transactions"|"ratings"|"reasons"|"raters": {field: [value, ...]}}, empty
    tables left out. Built once per batch and kept by the hall (forward_batches), so a retry
    sends the same bytes without having to rebuild them."""
    doc: dict[str, object] = {"v": VERSION, "hall": hall, "batch": batch_id}
    doc.update((k, v) for k, v in tables.items() if v)
    # orjson: the same compact UTF-8 JSON as json.dumps(ensure_ascii=False), ~14 times faster
    return orjson.dumps(doc)


def parse_batch(body: bytes, hall_header: str,
                batch_header: str) -> tuple[str, str, dict[str, Columns]]:
    """Decode and validate a batch body; return (hall, batch id, {kind: [column]}), the columns
    of each kind in the order of FIELDS[kind] (a transaction's last column: the raters, or None
    when no record has one). Raises BadBatch (400 for undecodable, 422 for a decodable batch
    that breaks the rules, 413 for too many records)."""
    try:
        # orjson: ~3 times json.loads' rate; strict (no NaN, no invalid UTF-8, nesting limited)
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadBatch("body is not JSON: %s" % e, 400) from None
    if not isinstance(doc, dict):
        raise BadBatch("body must be an object with hall, batch and records (or v: 2 and"
                       " tables)", 400)
    hall, batch = doc.get("hall"), doc.get("batch")
    if hall != hall_header or batch != batch_header:
        raise BadBatch("hall/batch in the body (%r, %r) differ from the headers" % (hall, batch))
    v = doc.get("v", 1)
    if type(v) is int and v == 1:
        if not isinstance(doc.get("records"), list):
            raise BadBatch("body must be an object with hall, batch and records", 400)
        return hall, batch, _parse_v1(hall, doc["records"])
    if type(v) is int and v == VERSION:
        return hall, batch, _parse_v2(hall, doc)
    raise BadBatch("unknown batch format version %r (this store reads 1 and %d)" % (v, VERSION),
                   400)


# ------------------------------------------------------------------ version 2: columns
VERSION = 2
# the columns of each kind as parse_batch returns them (backends._COLUMNS without `hall`)
FIELDS = {
    "transaction": ("uid", "tx", "window", "ticket", "item", "item_version", "department",
                    "region", "staff", "channel", "started_at", "finished_at", "rater"),
    "rating": ("uid", "terminal", "seq", "level", "outcome", "transaction", "rated_at",
               "received_at", "default", "channel", "press_delay_ms"),
    "reason": ("uid", "terminal", "seq", "ref", "reason", "rated_at"),
    # a phone rater's identity for transaction `tx` (version 2 only): sealed as seal_rater does
    "rater": ("uid", "tx", "sealed", "consent_at"),
}
TABLES = {"transactions": "transaction", "ratings": "rating", "reasons": "reason",
          "raters": "rater"}
_SEQ = fields.MAX_INT  # the terminal's, the hall's and the store's bound (protocol/fields.py)
_NONE = type(None)


class _Bad(Exception):
    """A column check failed at record index i."""

    def __init__(self, i: int, what: str) -> None:
        super().__init__(what)
        self.i, self.what = i, what


# a column check: the column as stored (None: the raters, when no record has one), or _Bad
_Check = Callable[[list[Any]], Column | None]


def _first(col: Sequence[object], ok: Callable[[Any], object]) -> int:
    return next((i for i, v in enumerate(col) if not ok(v)), 0)


def _c_int(lo: int, hi: int, nullable: bool = False) -> _Check:
    what = "must be an integer %d..%d%s" % (lo, hi, " or null" if nullable else "")
    allowed = {int, _NONE} if nullable else {int}

    def check(col: list[Any]) -> Column:
        if set(map(type, col)) <= allowed:
            vals = [v for v in col if v is not None] if nullable else col
            if not vals or (lo <= min(vals) and max(vals) <= hi):
                return col
        raise _Bad(_first(col, lambda v: (v is None and nullable) or
                          (type(v) is int and lo <= v <= hi)), what)
    return check


def _c_num(col: list[Any]) -> Column:
    types = set(map(type, col))
    if types <= {float}:
        return col
    if types <= {float, int}:
        return list(map(float, col))
    raise _Bad(_first(col, lambda v: type(v) in (float, int)),
               "must be a number (seconds since 1970)")


def _text_ok(v: str) -> bool:
    """protocol/fields.py's rule for text (no control character, no lone surrogate), with
    str.isprintable as the fast path: what it passes, the rule passes too."""
    return v.isprintable() or fields.bad_char(v) is None


def _refused_char(code: int) -> str:
    return "a NUL character" if code == 0 else str(fields.refused_char(code))


def _c_str(maxlen: int, required: bool = False) -> _Check:
    what = "must be a string of %s%d characters" % ("1 to " if required else "at most ", maxlen)

    def check(col: list[Any]) -> Column:
        if set(map(type, col)) <= {str} and max(map(len, col), default=0) <= maxlen \
                and (not required or all(col)):
            if all(map(_text_ok, col)):
                return col
            i = _first(col, _text_ok)
            found = fields.bad_char(col[i])
            assert found is not None  # _first found the value _text_ok refused
            raise _Bad(i, "must not contain %s (U+%04X at character %d)"
                       % (_refused_char(found[1]), found[1], found[0] + 1))
        raise _Bad(_first(col, lambda v: type(v) is str and len(v) <= maxlen
                          and (v or not required)), what)
    return check


def _c_id(col: list[Any]) -> Column:
    if set(map(type, col)) <= {str}:
        bad = [v for v in set(col) if not valid_id(v)]  # few distinct terminals per batch
        if not bad:
            return col
    raise _Bad(_first(col, valid_id), "must be an id")


def _c_outcome(col: list[Any]) -> Column:
    if set(map(type, col)) <= {str} and set(col) <= _OUTCOMES:
        return col
    raise _Bad(_first(col, lambda v: v in OUTCOMES),
               "must be one of %s" % ", ".join(OUTCOMES))


def _c_bool(col: list[Any]) -> Column:
    if set(map(type, col)) <= {bool}:
        return list(map(int, col))
    raise _Bad(_first(col, lambda v: type(v) is bool), "must be true or false")


def _c_rater(col: list[Any]) -> Column | None:
    types = set(map(type, col))
    if types <= {_NONE}:
        return None  # no record has one (the usual case)
    for i, r in enumerate(col):
        if r is not None and (not isinstance(r, dict) or r.get("consent") is not True
                              or not isinstance(r.get("identity"), dict)):
            # RULES.md 第六条: identity leaves the hall only with recorded consent
            raise _Bad(i, "rater needs consent=true and an identity object")
    return col


_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def _c_sealed(col: list[Any]) -> Column:
    """A sealed identity: base64 text of at most SEALED_MAX characters (opened by the store)."""
    def ok(v: object) -> bool:
        return type(v) is str and len(v) <= SEALED_MAX and _B64.match(v) is not None
    if all(map(ok, col)):
        return col
    raise _Bad(_first(col, ok), "must be base64 of at most %d characters" % SEALED_MAX)


_OUTCOMES = frozenset(OUTCOMES)
# body field -> (check, the stored value for a column left out; _REQUIRED: it must be there)
_REQUIRED = object()
_V2: dict[str, dict[str, tuple[_Check, object]]] = {
    "transaction": {
        "tx": (_c_int(1, _SEQ), _REQUIRED), "window": (_c_str(32, True), _REQUIRED),
        "ticket": (_c_str(64, True), _REQUIRED), "item": (_c_str(64), ""),
        "item_version": (_c_str(16), ""), "department": (_c_str(64), ""),
        "region": (_c_str(12), ""), "staff": (_c_str(32), ""), "channel": (_c_str(16), CHANNEL),
        "started_at": (_c_num, _REQUIRED), "finished_at": (_c_num, _REQUIRED),
        "rater": (_c_rater, None)},
    "rating": {
        "terminal": (_c_id, _REQUIRED), "seq": (_c_int(0, _SEQ), _REQUIRED),
        "level": (_c_int(1, 5), _REQUIRED), "outcome": (_c_outcome, _REQUIRED),
        "transaction": (_c_int(1, _SEQ, nullable=True), None),
        "rated_at": (_c_num, _REQUIRED), "received_at": (_c_num, _REQUIRED),
        "default": (_c_bool, 0), "channel": (_c_str(16), CHANNEL),
        # the terminal's signed press delay (protocol/fields.delay_ms); null or left out for
        # older terminals and phones (第十一条, docs/integrity.md)
        "press_delay_ms": (_c_int(0, fields.MAX_DELAY_MS, nullable=True), None)},
    "reason": {
        "terminal": (_c_id, _REQUIRED), "seq": (_c_int(0, _SEQ), _REQUIRED),
        "ref": (_c_int(0, _SEQ), _REQUIRED), "reason": (_c_str(REASONS_MAX, True), _REQUIRED),
        "rated_at": (_c_num, _REQUIRED)},
    "rater": {
        "tx": (_c_int(1, _SEQ), _REQUIRED), "sealed": (_c_sealed, _REQUIRED),
        # when the citizen ticked the consent line (第六条: forwarded only with recorded consent)
        "consent_at": (_c_num, _REQUIRED)},
}
_KEYS = {"transaction": ("tx",), "rating": ("terminal", "seq"), "reason": ("terminal", "seq"),
         "rater": ("tx",)}
_UID = {"transaction": "%s:tx:%%d", "rating": "%s:rating:%%s:%%d", "reason": "%s:reason:%%s:%%d",
        "rater": "%s:rater:%%d"}


def _record_name(hall: str, kind: str, table: Mapping[str, list[Any]], i: int) -> str:
    """How a refusal names record i of a table: its id when its key fields are sound."""
    try:
        key = tuple(table[k][i] for k in _KEYS[kind])
        if all(type(x) in (int, str) for x in key):
            return _UID[kind] % hall % key
    except (KeyError, IndexError, TypeError):
        pass
    return "%s[%d]" % (kind + "s", i)


def _parse_v2(hall: str, doc: dict[str, Any]) -> dict[str, Columns]:
    extra = set(doc) - {"v", "hall", "batch"} - set(TABLES)
    if extra:
        raise BadBatch("unknown fields in a version-%d body: %s" % (VERSION, ", ".join(
            sorted(map(str, extra)))))
    out: dict[str, Columns] = {}
    total = 0
    for name, kind in TABLES.items():
        table = doc.get(name)
        if table is None:
            out[kind] = [[] for _ in FIELDS[kind]]
            if kind == "transaction":
                out[kind][-1] = None  # no raters
            continue
        if not isinstance(table, dict) or not all(type(c) is list for c in table.values()):
            raise BadBatch("%s must be an object of arrays, one per field" % name)
        spec = _V2[kind]
        unknown = set(table) - set(spec)
        if unknown:
            raise BadBatch("%s: unknown fields %s" % (name, ", ".join(sorted(unknown))))
        lengths = {len(c) for c in table.values()}
        if len(lengths) != 1:
            raise BadBatch("%s: every field must have one value per record (lengths %s)"
                           % (name, sorted(lengths)))
        n = lengths.pop()
        total += n
        if total > MAX_RECORDS:
            raise BadBatch("at most %d records per batch" % MAX_RECORDS, 413)
        cols: dict[str, Column | None] = {}
        for field, (check, default) in spec.items():
            col = table.get(field)
            if col is None:
                if default is _REQUIRED:
                    raise BadBatch("%s: field %s is missing" % (name, field))
                cols[field] = None if field == "rater" else [default] * n
                continue
            try:
                cols[field] = check(col)
            except _Bad as e:
                raise BadBatch("record %s: %s %s" % (_record_name(hall, kind, table, e.i),
                                                     field, e.what)) from None
        out[kind] = _columns(hall, kind, cols, n)
    return out


def _columns(hall: str, kind: str, cols: dict[str, Column | None], n: int) -> Columns:
    """A kind's columns in FIELDS order, with their ids; cols: by field, as the checks left them
    (only "rater" may be None)."""
    uid: Column
    if kind == "transaction":
        tx, ch = cols["tx"], cols["channel"]
        assert tx is not None and ch is not None
        uid = list(map((_UID[kind] % hall).__mod__, tx))
        if not all(ch):
            cols["channel"] = [v or CHANNEL for v in ch]
    elif kind == "rater":
        tx = cols["tx"]
        assert tx is not None
        uid = list(map((_UID[kind] % hall).__mod__, tx))
    else:
        if kind == "rating":
            ch = cols["channel"]
            assert ch is not None
            if not all(ch):
                cols["channel"] = [v or CHANNEL for v in ch]
        term, seq = cols["terminal"], cols["seq"]
        assert term is not None and seq is not None
        uid = list(map((_UID[kind] % hall).__mod__, zip(term, seq, strict=True)))
    if kind == "rating":
        pre = hall + ":tx:"
        txs = cols["transaction"]
        assert txs is not None
        cols["transaction"] = [None if v is None else pre + str(v) for v in txs]
    out: Columns = [uid, *[cols[f] for f in FIELDS[kind][1:]]]
    if len(set(uid)) != n:  # the same record twice in one batch: stored once (the first)
        keep = sorted({u: i for i, u in reversed(list(enumerate(uid)))}.values())
        out = [c if c is None else [c[i] for i in keep] for c in out]
    return out


# ------------------------------------------------------------------ version 1: one object each
def _parse_v1(hall: str, recs: list[Any]) -> dict[str, Columns]:
    if len(recs) > MAX_RECORDS:
        raise BadBatch("at most %d records per batch" % MAX_RECORDS, 413)
    rows: dict[str, list[tuple[object, ...]]] = {"transaction": [], "rating": [], "reason": []}
    seen = set()
    for r in recs:
        if not isinstance(r, dict):
            raise BadBatch("every record must be an object")
        kind = r.get("type")
        if kind not in rows:
            raise BadBatch("record %s: type must be transaction, rating or reason" % r.get("id"))
        row = _RECORD[kind](hall, r)
        if row[0] in seen:
            continue  # the same record twice in one batch: stored once
        seen.add(row[0])
        rows[kind].append(row)
    out: dict[str, Columns] = {}
    for kind, rs in rows.items():
        cols: Columns = ([list(c) for c in zip(*rs, strict=True)] if rs
                         else [[] for _ in range(len(FIELDS[kind]) + 1)])
        del cols[1]  # the hall: one for the whole batch
        raters = cols[-1]
        assert raters is not None
        if kind == "transaction" and all(v is None for v in raters):
            cols[-1] = None
        out[kind] = cols
    return out


def _num(r: Mapping[str, Any], k: str) -> float:
    v = r.get(k)
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadBatch("record %s: %s must be a number (seconds since 1970)" % (r.get("id"), k))
    return float(v)


def _str(r: Mapping[str, Any], k: str, maxlen: int = 64, required: bool = False) -> str:
    v = r.get(k)
    if v is None:
        v = ""
    if type(v) is not str or len(v) > maxlen or (required and not v):
        raise BadBatch("record %s: %s must be a string of %s%d characters"
                       % (r.get("id"), k, "1 to " if required else "at most ", maxlen))
    if not _text_ok(v):
        raise BadBatch("record %s: %s must not contain a control character or a lone surrogate"
                       % (r.get("id"), k))
    return v


def _int(r: Mapping[str, Any], k: str, lo: int, hi: int) -> int:
    v = r.get(k)
    if type(v) is not int or not lo <= v <= hi:
        raise BadBatch("record %s: %s must be an integer %d..%d" % (r.get("id"), k, lo, hi))
    return v


def _check_uid(hall: str, r: Mapping[str, Any], kind: str, *parts: object) -> str:
    want = "%s:%s:%s" % (hall, kind, ":".join(map(str, parts)))
    if r.get("id") != want:
        raise BadBatch("record id %r: expected %r" % (r.get("id"), want))
    return want


def _transaction(hall: str, r: Mapping[str, Any]) -> tuple[object, ...]:
    tx = _int(r, "tx", 1, 2 ** 62)
    rater = r.get("rater")
    if rater is not None and (not isinstance(rater, dict) or rater.get("consent") is not True
                              or not isinstance(rater.get("identity"), dict)):
        # RULES.md 第六条: identity leaves the hall only with recorded consent
        raise BadBatch("record %s: rater needs consent=true and an identity object"
                       % r.get("id"))
    channel = _str(r, "channel", 16) or CHANNEL
    return (_check_uid(hall, r, "tx", tx), hall, tx, _str(r, "window", 32, True),
            _str(r, "ticket", 64, True), _str(r, "item"), _str(r, "item_version", 16),
            _str(r, "department"), _str(r, "region", 12), _str(r, "staff", 32), channel,
            _num(r, "started_at"), _num(r, "finished_at"), rater)


def _rating(hall: str, r: Mapping[str, Any]) -> tuple[object, ...]:
    term = r.get("terminal")
    if not valid_id(term):
        raise BadBatch("record %s: terminal must be an id" % r.get("id"))
    seq = _int(r, "seq", 0, 2 ** 62)
    outcome = r.get("outcome")
    if outcome not in OUTCOMES:
        raise BadBatch("record %s: outcome must be one of %s" % (r.get("id"), ", ".join(OUTCOMES)))
    txid = r.get("transaction")
    if txid is not None and (not isinstance(txid, str) or not txid.startswith(hall + ":tx:")):
        raise BadBatch("record %s: transaction must be an id %s:tx:N or null" % (r.get("id"), hall))
    if r.get("default", False) not in (True, False):
        raise BadBatch("record %s: default must be true or false" % r.get("id"))
    delay = r.get("press_delay_ms")
    if delay is not None:
        delay = _int(r, "press_delay_ms", 0, fields.MAX_DELAY_MS)
    return (_check_uid(hall, r, "rating", term, seq), hall, term, seq, _int(r, "level", 1, 5),
            outcome, txid, _num(r, "rated_at"), _num(r, "received_at"),
            1 if r.get("default") else 0, _str(r, "channel", 16) or CHANNEL, delay)


def _reason(hall: str, r: Mapping[str, Any]) -> tuple[object, ...]:
    term = r.get("terminal")
    if not valid_id(term):
        raise BadBatch("record %s: terminal must be an id" % r.get("id"))
    seq = _int(r, "seq", 0, 2 ** 62)
    return (_check_uid(hall, r, "reason", term, seq), hall, term, seq, _int(r, "ref", 0, 2 ** 62),
            _str(r, "reason", REASONS_MAX, True), _num(r, "rated_at"))


# v1 records (JSON objects) -> one row each: its id, the hall, then FIELDS[kind][1:]
_RECORD: dict[str, Callable[[str, Mapping[str, Any]], tuple[object, ...]]] = {
    "transaction": _transaction, "rating": _rating, "reason": _reason}


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A hall's batch-signing key: a file of 64 hex characters."""
    try:
        with open(path) as f:
            key = bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        raise HcpError("key file %s not found (from `hcp store add-hall --key-out`)"
                       % path) from None
    except (ValueError, UnicodeDecodeError):
        raise HcpError("key file %s: expected 64 hex characters" % path) from None
    if len(key) != 32:
        raise HcpError("key file %s: expected 64 hex characters" % path)
    return key


def write_key_file(path: str | os.PathLike[str], key: bytes) -> None:
    """Write a key with mode 600; refuse to overwrite one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise HcpError("%s exists already: choose another --key-out (or remove it)"
                       % path) from None
    except OSError as e:
        raise HcpError("cannot write %s: %s" % (path, e.strerror)) from e
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
