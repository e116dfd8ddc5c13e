"""Encode and decode every message on the wire.

Encodings are built field by field so that both runtimes give the same bytes (MicroPython
dicts do not keep insertion order). decode_* raise ValueError with a short reason in words;
the daemon stores that reason with the rejected payload.
"""
import json

from . import levels, sign, topics
from .compat import const

_VERSION = const(1)
_MAX_PAYLOAD = const(512)  # bytes; anything larger is refused before it is parsed
_TOKEN_LEN = const(32)     # session tokens: 16 random bytes as hex
_HEX = "0123456789abcdef"


def _q(s):
    return json.dumps(s)


def _token_ok(t):
    if type(t) is not str:
        return False
    if t == "":
        return True
    if len(t) != _TOKEN_LEN:
        return False
    return all(c in _HEX for c in t)


def _uint(v):
    # bool is an int subclass on CPython; refuse it explicitly
    return type(v) is int and v >= 0


# ---------------------------------------------------------------- terminal -> daemon


def rating_fields(term, seq, level, token, ts):
    return [term, seq, level, token, ts]


def encode_rating(key, term, seq, level, token, ts):
    sig = sign.sign(key, "rating", rating_fields(term, seq, level, token, ts))
    return ('{"v":1,"kind":"rating","term":%s,"seq":%d,"level":%d,"token":%s,"ts":%d,"sig":"%s"}'
            % (_q(term), seq, level, _q(token), ts, sig)).encode()


def reason_fields(term, seq, ref, reason, ts):
    return [term, seq, ref, reason, ts]


def encode_reason(key, term, seq, ref, reason, ts):
    sig = sign.sign(key, "reason", reason_fields(term, seq, ref, reason, ts))
    return ('{"v":1,"kind":"reason","term":%s,"seq":%d,"ref":%d,"reason":%s,"ts":%d,"sig":"%s"}'
            % (_q(term), seq, ref, _q(reason), ts, sig)).encode()


def _load(payload):
    if len(payload) > _MAX_PAYLOAD:
        raise ValueError("payload too large (%d bytes, limit %d)" % (len(payload), _MAX_PAYLOAD))
    try:
        msg = json.loads(payload)
    except Exception:  # ValueError on both runtimes; UnicodeError on bad bytes
        raise ValueError("not JSON") from None
    if type(msg) is not dict:
        raise ValueError("not a JSON object")
    if msg.get("v") != _VERSION:
        raise ValueError("unsupported version")
    return msg


def decode_uplink(payload):
    """Parse a message from the rating topic (a rating or a reason). Signature not yet checked."""
    msg = _load(payload)
    kind = msg.get("kind")
    if not topics.valid_id(msg.get("term")):
        raise ValueError("bad terminal id")
    if not _uint(msg.get("seq")) or msg["seq"] < 1:
        raise ValueError("bad sequence number")
    if not _uint(msg.get("ts")):
        raise ValueError("bad timestamp")
    sig = msg.get("sig")
    if type(sig) is not str or len(sig) != 64:
        raise ValueError("missing signature")
    if kind == "rating":
        if not levels.is_level(msg.get("level")):
            raise ValueError("bad level")
        if not _token_ok(msg.get("token")):
            raise ValueError("bad session token")
    elif kind == "reason":
        if not _uint(msg.get("ref")) or msg["ref"] < 1:
            raise ValueError("bad reference")
        if not levels.is_reason(msg.get("reason")):
            raise ValueError("bad reason")
    else:
        raise ValueError("unknown message kind")
    return msg


def uplink_fields(msg):
    if msg["kind"] == "rating":
        return rating_fields(msg["term"], msg["seq"], msg["level"], msg["token"], msg["ts"])
    return reason_fields(msg["term"], msg["seq"], msg["ref"], msg["reason"], msg["ts"])


def verify_uplink(key, msg):
    return sign.verify(key, msg["kind"], uplink_fields(msg), msg["sig"])


_MAX_ERRORS = const(12)  # config errors named in one status message (the payload stays small)


def encode_status(term, online, fw="", board="", heap=0, backlog=0, rssi=0, errors=None):
    """The retained status. `errors`: the device config's bad fields, when it cannot rate."""
    if not online:
        return ('{"v":1,"term":%s,"online":false}' % _q(term)).encode()
    extra = ""
    if errors:
        extra = ',"errors":[%s]' % ",".join([_q(e[:40]) for e in errors[:_MAX_ERRORS]])
    return ('{"v":1,"term":%s,"online":true,"fw":%s,"board":%s,"heap":%d,"backlog":%d,"rssi":%d%s}'
            % (_q(term), _q(fw), _q(board), heap, backlog, rssi, extra)).encode()


def decode_status(payload):
    msg = _load(payload)
    if not topics.valid_id(msg.get("term")):
        raise ValueError("bad terminal id")
    if type(msg.get("online")) is not bool:
        raise ValueError("bad online flag")
    errs = msg.get("errors", [])
    if type(errs) is not list or len(errs) > _MAX_ERRORS:
        raise ValueError("bad error list")
    for e in errs:
        if type(e) is not str:
            raise ValueError("bad error list")
    return msg


# ---------------------------------------------------------------- daemon -> terminal


def encode_ack(key, term, seqs, now):
    sig = sign.sign(key, "ack", [term, seqs, now])
    return ('{"v":1,"term":%s,"seqs":[%s],"now":%d,"sig":"%s"}'
            % (_q(term), ",".join([str(s) for s in seqs]), now, sig)).encode()


def decode_ack(key, payload):
    """Return the list of acknowledged sequence numbers; ValueError if forged or malformed."""
    msg = _load(payload)
    seqs = msg.get("seqs")
    if type(seqs) is not list or not seqs:
        raise ValueError("bad sequence list")
    for s in seqs:
        if not _uint(s):
            raise ValueError("bad sequence list")
    if not _uint(msg.get("now")) or not topics.valid_id(msg.get("term")):
        raise ValueError("bad ack")
    if not sign.verify(key, "ack", [msg["term"], seqs, msg["now"]], msg.get("sig")):
        raise ValueError("bad signature")
    return msg


def session_fields(term, token, window, staff, exp, now):
    return [term, token, window, staff, exp, now]


def encode_session(key, term, token, window, staff, exp, now):
    """The open prompt, retained. An empty retained payload means: no prompt open."""
    sig = sign.sign(key, "session", session_fields(term, token, window, staff, exp, now))
    return ('{"v":1,"term":%s,"token":%s,"window":%s,"staff":%s,"exp":%d,"now":%d,"sig":"%s"}'
            % (_q(term), _q(token), _q(window), _q(staff), exp, now, sig)).encode()


def decode_session(key, payload):
    """Return the session dict, or None when the prompt is closed (empty payload)."""
    if not payload:
        return None
    msg = _load(payload)
    if not _token_ok(msg.get("token")) or not msg.get("token"):
        raise ValueError("bad session token")
    for f in ("term", "window"):
        if not topics.valid_id(msg.get(f)):
            raise ValueError("bad " + f)
    if type(msg.get("staff")) is not str or not _uint(msg.get("exp")) or not _uint(msg.get("now")):
        raise ValueError("bad session")
    fields = session_fields(msg["term"], msg["token"], msg["window"], msg["staff"],
                            msg["exp"], msg["now"])
    if not sign.verify(key, "session", fields, msg.get("sig")):
        raise ValueError("bad signature")
    return msg
