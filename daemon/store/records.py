"""The records a hall forwards and the batch that carries them: validation, ids, signatures, and
the rater's identity encrypted at rest. Pure functions; docs/store.md describes every field.

A batch body is JSON: {"hall": "H01", "batch": "<id>", "records": [ ... ]}. Each record has a
globally unique `id` (hall + kind + the hall's own key), so a record sent twice is stored once:
    transaction  "H01:tx:17"            one 办件, forwarded once it is finished
    rating       "H01:rating:T001:42"   one press, as the hall bound it (its `outcome`)
    reason       "H01:reason:T001:43"   a bad-review reason, pointing at its rating's seq
"""
import hashlib
import hmac
import json
import os
import re

from ..errors import HcpError

CHANNEL = "PJQ"  # 评价渠道: 实体大厅 评价器 (the provincial interfaces' code)
MAX_BODY = 16 * 1024 * 1024  # bytes; a batch of 5,000 records is about 2 MB
MAX_RECORDS = 20000
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_BATCH = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
OUTCOMES = ("counted", "duplicate", "unsolicited", "expired")
REASONS_MAX = 64


class BadBatch(HcpError):
    """The batch is not what docs/store.md describes: HTTP 400 or 422 with this reason."""

    def __init__(self, reason, status=422):
        super().__init__(reason)
        self.status = status


def valid_id(s):
    return isinstance(s, str) and _ID.match(s) is not None


def valid_batch_id(s):
    return isinstance(s, str) and _BATCH.match(s) is not None


def signature(key, hall, batch_id, body):
    """HMAC-SHA256 over hall, batch id and the exact body bytes (hex)."""
    msg = hall.encode() + b"\n" + batch_id.encode() + b"\n" + body
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def verify(key, hall, batch_id, body, sig):
    return isinstance(sig, str) and hmac.compare_digest(signature(key, hall, batch_id, body), sig)


def encode_batch(hall, batch_id, records):
    """The bytes a hall posts. Built once per batch and kept by the hall (forward_batches), so
    a retry sends the same bytes without having to rebuild them."""
    return json.dumps({"hall": hall, "batch": batch_id, "records": records},
                      ensure_ascii=False, separators=(",", ":")).encode()


def _num(r, k):
    v = r.get(k)
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadBatch("record %s: %s must be a number (seconds since 1970)" % (r.get("id"), k))
    return float(v)


def _str(r, k, maxlen=64, required=False):
    v = r.get(k)
    if v is None:
        v = ""
    if type(v) is not str or len(v) > maxlen or (required and not v):
        raise BadBatch("record %s: %s must be a string of %s%d characters"
                       % (r.get("id"), k, "1 to " if required else "at most ", maxlen))
    return v


def _int(r, k, lo, hi):
    v = r.get(k)
    if type(v) is not int or not lo <= v <= hi:
        raise BadBatch("record %s: %s must be an integer %d..%d" % (r.get("id"), k, lo, hi))
    return v


def parse_batch(body, hall_header, batch_header):
    """Decode and validate a batch body; return (hall, batch id, {kind: [row tuple]}), each row
    in the column order of backends._COLUMNS (a transaction's last item: the rater or None).
    Raises BadBatch (400 for undecodable, 422 for a decodable batch that breaks the rules)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadBatch("body is not JSON: %s" % e, 400)
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise BadBatch("body must be an object with hall, batch and records", 400)
    hall, batch = doc.get("hall"), doc.get("batch")
    if hall != hall_header or batch != batch_header:
        raise BadBatch("hall/batch in the body (%r, %r) differ from the headers" % (hall, batch))
    if len(doc["records"]) > MAX_RECORDS:
        raise BadBatch("at most %d records per batch" % MAX_RECORDS, 413)
    out = {"transaction": [], "rating": [], "reason": []}
    seen = set()
    for r in doc["records"]:
        if not isinstance(r, dict):
            raise BadBatch("every record must be an object")
        kind = r.get("type")
        if kind not in out:
            raise BadBatch("record %s: type must be transaction, rating or reason" % r.get("id"))
        row = _RECORD[kind](hall, r)
        if row[0] in seen:
            continue  # the same record twice in one batch: stored once
        seen.add(row[0])
        out[kind].append(row)
    return hall, batch, out


def _check_uid(hall, r, kind, *parts):
    want = "%s:%s:%s" % (hall, kind, ":".join(map(str, parts)))
    if r.get("id") != want:
        raise BadBatch("record id %r: expected %r" % (r.get("id"), want))
    return want


def _transaction(hall, r):
    tx = _int(r, "tx", 1, 2 ** 62)
    rater = r.get("rater")
    if rater is not None:
        if not isinstance(rater, dict) or rater.get("consent") is not True \
                or not isinstance(rater.get("identity"), dict):
            # RULES.md 第六条: identity leaves the hall only with recorded consent
            raise BadBatch("record %s: rater needs consent=true and an identity object"
                           % r.get("id"))
    channel = _str(r, "channel", 16) or CHANNEL
    return (_check_uid(hall, r, "tx", tx), hall, tx, _str(r, "window", 32, True),
            _str(r, "ticket", 64, True), _str(r, "item"), _str(r, "item_version", 16),
            _str(r, "department"), _str(r, "region", 12), _str(r, "staff", 32), channel,
            _num(r, "started_at"), _num(r, "finished_at"), rater)


def _rating(hall, r):
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
    return (_check_uid(hall, r, "rating", term, seq), hall, term, seq, _int(r, "level", 1, 5),
            outcome, txid, _num(r, "rated_at"), _num(r, "received_at"),
            1 if r.get("default") else 0)


def _reason(hall, r):
    term = r.get("terminal")
    if not valid_id(term):
        raise BadBatch("record %s: terminal must be an id" % r.get("id"))
    seq = _int(r, "seq", 0, 2 ** 62)
    return (_check_uid(hall, r, "reason", term, seq), hall, term, seq, _int(r, "ref", 0, 2 ** 62),
            _str(r, "reason", REASONS_MAX, True), _num(r, "rated_at"))


_RECORD = {"transaction": _transaction, "rating": _rating, "reason": _reason}


# ------------------------------------------------------------------ rater identity at rest
class IdentityKey:
    """AES-256-GCM over the rater's identity JSON; the record id is the associated data, so a
    ciphertext cannot be moved to another record. The key is a file of 64 hex characters
    (mode 600) that lives apart from the database: a stolen database alone reveals nobody."""

    def __init__(self, key):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path, create=False):
        if create and not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        try:
            with open(path) as f:
                key = bytes.fromhex(f.read().strip())
        except FileNotFoundError:
            raise HcpError("identity key file %s not found" % path)
        except ValueError:
            raise HcpError("identity key file %s: expected 64 hex characters" % path)
        if len(key) != 32:
            raise HcpError("identity key file %s: expected 64 hex characters" % path)
        return cls(key)

    def seal(self, uid, identity):
        nonce = os.urandom(12)
        data = json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()
        return nonce + self._aead.encrypt(nonce, data, uid.encode())

    def open(self, uid, blob):
        blob = bytes(blob)
        return json.loads(self._aead.decrypt(blob[:12], blob[12:], uid.encode()))


def read_key_file(path):
    """A hall's batch-signing key: a file of 64 hex characters."""
    try:
        with open(path) as f:
            key = bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        raise HcpError("key file %s not found (from `hcp store add-hall --key-out`)" % path)
    except (ValueError, UnicodeDecodeError):
        raise HcpError("key file %s: expected 64 hex characters" % path)
    if len(key) != 32:
        raise HcpError("key file %s: expected 64 hex characters" % path)
    return key


def write_key_file(path, key):
    """Write a key with mode 600; refuse to overwrite one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise HcpError("%s exists already: choose another --key-out (or remove it)" % path)
    except OSError as e:
        raise HcpError("cannot write %s: %s" % (path, e.strerror))
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
