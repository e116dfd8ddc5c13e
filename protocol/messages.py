"""Encode and decode every message on the wire.

Encodings are built field by field so that both runtimes give the same bytes (MicroPython
dicts do not keep insertion order). decode_* check every field they pass on against the rules
of fields.py (bounds, characters, lengths) and raise ValueError with a short reason naming the
field; the daemon stores that reason with the rejected payload.
"""
import json

from . import fields, levels, sign
from .compat import const

_VERSION = const(1)
_MAX_PAYLOAD = const(512)  # bytes; anything larger is refused before it is parsed
_TOKEN_LEN = const(32)     # session tokens: 16 random bytes as hex
_SIG_LEN = const(64)       # HMAC-SHA256 as hex
_SHORT = const(64)         # a status' firmware version and board name, in characters
_ERROR_LEN = const(40)     # one config error in a status, in characters
_RSSI_MIN = const(-128)    # dBm, as the radio reports it (a signed byte)
_RSSI_MAX = const(127)
_KINDS = ("rating", "reason")
_REASONS = tuple([r[0] for r in levels.REASONS])


def _q(s):
    return json.dumps(s)


# ---------------------------------------------------------------- terminal -> daemon


def rating_fields(term, seq, level, token, ts, delay_ms=None):
    """What a rating's signature covers. `delay_ms` (the press's delay since the prompt
    appeared on the terminal) is signed as a sixth field when the rating carries one; a rating
    without it (older firmware, a press with no prompt) is signed over the first five, as
    before, so both verify and neither can be turned into the other."""
    if delay_ms is None:
        return [term, seq, level, token, ts]
    return [term, seq, level, token, ts, delay_ms]


def encode_rating(key, term, seq, level, token, ts, delay_ms=None):
    sig = sign.sign(key, "rating", rating_fields(term, seq, level, token, ts, delay_ms))
    delay = "" if delay_ms is None else ',"delay_ms":%d' % delay_ms
    return ('{"v":1,"kind":"rating","term":%s,"seq":%d,"level":%d,"token":%s,"ts":%d%s,'
            '"sig":"%s"}' % (_q(term), seq, level, _q(token), ts, delay, sig)).encode()


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
    v = msg.get("v")
    if type(v) is not int or v != _VERSION:
        raise ValueError("v: unsupported version (this side reads %d)" % _VERSION)
    return msg


def decode_uplink(payload):
    """Parse a message from the rating topic (a rating or a reason). Signature not yet checked.
    A rating may carry `delay_ms` (firmware 0.3.0 on): ms from the prompt appearing on the
    terminal to the key press; absent on older terminals and on presses with no prompt."""
    msg = _load(payload)
    kind = fields.choice("kind", msg.get("kind"), _KINDS)
    fields.ident("term", msg.get("term"))
    fields.whole("seq", msg.get("seq"), 1)
    fields.timestamp("ts", msg.get("ts"))
    fields.hex_text("sig", msg.get("sig"), _SIG_LEN)
    if kind == "rating":
        fields.whole("level", msg.get("level"), 1, len(levels.LEVELS))
        fields.hex_text("token", msg.get("token"), _TOKEN_LEN, empty=True)
        if "delay_ms" in msg:
            fields.delay_ms("delay_ms", msg["delay_ms"])
            if not msg["token"]:
                raise ValueError("delay_ms: only with a session token (a press with no prompt"
                                 " has no delay)")
    else:
        fields.whole("ref", msg.get("ref"), 1)
        fields.choice("reason", msg.get("reason"), _REASONS)
    return msg


def uplink_fields(msg):
    if msg["kind"] == "rating":
        return rating_fields(msg["term"], msg["seq"], msg["level"], msg["token"], msg["ts"],
                             msg.get("delay_ms"))
    return reason_fields(msg["term"], msg["seq"], msg["ref"], msg["reason"], msg["ts"])


def verify_uplink(key, msg):
    return sign.verify(key, msg["kind"], uplink_fields(msg), msg["sig"])


_MAX_ERRORS = const(12)  # config errors named in one status message (the payload stays small)


def _texts(name, items):
    return ',"%s":[%s]' % (name, ",".join([_q(fields.clean(e, _ERROR_LEN))
                                            for e in items[:_MAX_ERRORS]]))


def encode_status(term, online, fw="", board="", heap=0, backlog=0, rssi=0, errors=None,
                  faults=None, update="", img=""):
    """The retained status. `errors`: the device config's bad fields, when it cannot rate.
    `faults`: what a terminal that still rates wants hall IT to look at (a disabled touch key,
    flash errors). Texts are cut to their limits and characters decode_status would refuse
    become "?", so a terminal with a strange config still gets its status (and its errors)
    through. `update`: what an over-the-air update is doing (firmware/update.py), "" for none.
    `img`: the version of MicroPython itself (firmware/image.py), "" when unknown; a terminal
    from before it sends none, a daemon from before it ignores it."""
    if not online:
        return ('{"v":1,"term":%s,"online":false}' % _q(term)).encode()
    extra = ""
    if errors:
        extra = _texts("errors", errors)
    if faults:
        extra += _texts("faults", faults)
    if update:
        extra += ',"update":%s' % _q(fields.clean(update, _SHORT))
    if img:
        extra += ',"img":%s' % _q(fields.clean(img, _SHORT))
    rssi = max(_RSSI_MIN, min(_RSSI_MAX, rssi))
    return ('{"v":1,"term":%s,"online":true,"fw":%s,"board":%s,"heap":%d,"backlog":%d,"rssi":%d%s}'
            % (_q(term), _q(fields.clean(fw, _SHORT)), _q(fields.clean(board, _SHORT)), heap,
               backlog, rssi, extra)).encode()


def decode_status(payload):
    """A terminal's status. fw, board, heap, backlog and rssi may be missing (or null): the
    last will says only that the terminal is offline. errors and faults: lists of short texts."""
    msg = _load(payload)
    fields.ident("term", msg.get("term"))
    fields.flag("online", msg.get("online"))
    for f in ("fw", "board", "update", "img"):
        if msg.get(f) is not None:
            fields.text(f, msg[f], _SHORT)
    for f in ("heap", "backlog"):
        if msg.get(f) is not None:
            fields.whole(f, msg[f])
    if msg.get("rssi") is not None:
        fields.whole("rssi", msg["rssi"], _RSSI_MIN, _RSSI_MAX)
    for name in ("errors", "faults"):
        items = msg.get(name, [])
        if type(items) is not list or len(items) > _MAX_ERRORS:
            raise ValueError("%s: must be a list of at most %d texts" % (name, _MAX_ERRORS))
        for e in items:
            fields.text(name, e, _ERROR_LEN)
    return msg


# ---------------------------------------------------------------- daemon -> terminal


def encode_ack(key, term, seqs, now):
    sig = sign.sign(key, "ack", [term, seqs, now])
    return ('{"v":1,"term":%s,"seqs":[%s],"now":%d,"sig":"%s"}'
            % (_q(term), ",".join([str(s) for s in seqs]), now, sig)).encode()


def decode_ack(key, payload):
    """Return the list of acknowledged sequence numbers; ValueError if forged or malformed."""
    msg = _load(payload)
    fields.ident("term", msg.get("term"))
    seqs = msg.get("seqs")
    if type(seqs) is not list or not seqs:
        raise ValueError("seqs: must be a list of sequence numbers")
    for s in seqs:
        fields.whole("seqs", s, 1)
    fields.timestamp("now", msg.get("now"))
    fields.hex_text("sig", msg.get("sig"), _SIG_LEN)
    if not sign.verify(key, "ack", [msg["term"], seqs, msg["now"]], msg["sig"]):
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
    fields.hex_text("token", msg.get("token"), _TOKEN_LEN)
    fields.ident("term", msg.get("term"))
    fields.ident("window", msg.get("window"))
    fields.ident("staff", msg.get("staff"), empty=True)
    fields.timestamp("exp", msg.get("exp"))
    fields.timestamp("now", msg.get("now"))
    fields.hex_text("sig", msg.get("sig"), _SIG_LEN)
    signed = session_fields(msg["term"], msg["token"], msg["window"], msg["staff"],
                            msg["exp"], msg["now"])
    if not sign.verify(key, "session", signed, msg["sig"]):
        raise ValueError("bad signature")
    return msg
