"""Hypothesis strategies for what arrives over MQTT: every message of protocol/messages.py, with
fields replaced by awkward values or left out, signed again (so that it reaches what comes after
the signature) or not, its bytes spliced, or bytes at random. Shared by the decoder fuzz tests
(tests/protocol) and the ingest fuzz test (tests/hall)."""
import json
import re

from hypothesis import strategies as st

from haochaping.protocol import levels, messages, sign
from haochaping.tools.bench.fuzz_inputs import AWKWARD

TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
_GONE = object()  # a field left out

BASES = {
    "rating": {"v": 1, "kind": "rating", "term": "T001", "seq": 7, "level": 2, "token": TOKEN,
               "ts": 1764057600},
    "reason": {"v": 1, "kind": "reason", "term": "T001", "seq": 8, "ref": 7,
               "reason": "attitude", "ts": 1764057605},
    "status": {"v": 1, "term": "T001", "online": True, "fw": "0.1.0",
               "board": "esp32-devkitc-buttons", "heap": 61234, "backlog": 2, "rssi": -58,
               "errors": ["journal_max: 4096..1048576 bytes"]},
    "ack": {"v": 1, "term": "T001", "seqs": [7, 8], "now": 1764057606},
    "session": {"v": 1, "term": "T001", "token": TOKEN, "window": "W01", "staff": "S01",
                "exp": 1764057720, "now": 1764057600},
}
SIGNED = {  # kind -> the fields its signature covers, in order
    "rating": ("term", "seq", "level", "token", "ts"),
    "reason": ("term", "seq", "ref", "reason", "ts"),
    "ack": ("term", "seqs", "now"),
    "session": ("term", "token", "window", "staff", "exp", "now"),
}

# numbers at the edges: what every backend and JSON reader keeps, and just past it
EDGES = (0, -1, 1, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 2 ** 62 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64,
         253402214400, 253402214401, 10 ** 30)
values = st.one_of(
    st.sampled_from(AWKWARD), st.sampled_from(EDGES), st.integers(), st.floats(),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(_GONE))


@st.composite
def json_messages(draw, kind, key):
    """A message of `kind` with up to two fields changed, as JSON bytes."""
    msg = dict(BASES[kind])
    fields = sorted(set(msg) - {"v"}) + ["extra"]
    if draw(st.integers(0, 9)) == 0:
        fields.append("v")  # now and then the version too
    changes = draw(st.one_of(st.just({}), st.dictionaries(st.sampled_from(fields), values,
                                                          max_size=2)))
    for k, v in changes.items():
        if v is _GONE:
            msg.pop(k, None)
        else:
            msg[k] = v
    if kind in SIGNED and draw(st.integers(0, 3)):  # 3 in 4 signed again
        try:
            msg["sig"] = sign.sign(key, kind, [msg.get(f) for f in SIGNED[kind]])
        except UnicodeEncodeError:  # a lone surrogate cannot be signed
            msg["sig"] = "0" * 64
    elif kind in SIGNED:
        msg["sig"] = draw(st.sampled_from(AWKWARD + ("0" * 64,)))
    return json.dumps(msg).encode()


def payloads(kind, key):
    """A message of `kind` changed, the bytes of one spliced, or any bytes."""
    spliced = st.tuples(json_messages(kind, key), st.integers(0, 600),
                        st.integers(0, 8), st.binary(max_size=6)).map(
        lambda t: t[0][:t[1]] + t[3] + t[0][t[1] + t[2]:])
    whole = json_messages(kind, key)
    anything = st.binary(max_size=600)
    # 7 in 10 whole messages, 2 spliced, 1 any bytes
    return st.integers(0, 9).flatmap(lambda i: whole if i < 7 else spliced if i < 9 else anything)


# ------------------------------------------------------------- what a decoder may pass on
# Written from the rules in words (docs, protocol/fields.py's docstring), not with its code.
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX = 2 ** 53 - 1
MAX_TS = 253402214400


def whole(v, lo=0, hi=MAX):
    return type(v) is int and lo <= v <= hi


def is_id(v):
    return type(v) is str and _ID.match(v) is not None


def text(v, hi):
    return type(v) is str and len(v) <= hi and _BAD_CHAR.search(v) is None


def sound(kind, msg):
    """Whether a decoded message's fields keep the rules (the fields the hall uses)."""
    if kind in ("rating", "reason"):
        ok = (msg["kind"] == kind and is_id(msg["term"]) and whole(msg["seq"], 1)
              and whole(msg["ts"], 0, MAX_TS) and _HEX64.match(msg["sig"]) is not None)
        if kind == "rating":
            return ok and whole(msg["level"], 1, 5) and (
                msg["token"] == "" or _HEX32.match(msg["token"]) is not None)
        return ok and whole(msg["ref"], 1) and msg["reason"] in [r[0] for r in levels.REASONS]
    if kind == "status":
        return (is_id(msg["term"]) and type(msg["online"]) is bool
                and all(msg.get(f) is None or text(msg[f], 64) for f in ("fw", "board"))
                and all(msg.get(f) is None or whole(msg[f]) for f in ("heap", "backlog"))
                and (msg.get("rssi") is None or whole(msg["rssi"], -128, 127))
                and type(msg.get("errors", [])) is list and len(msg.get("errors", [])) <= 12
                and all(text(e, 40) for e in msg.get("errors", [])))
    if kind == "ack":
        return (is_id(msg["term"]) and whole(msg["now"], 0, MAX_TS) and type(msg["seqs"]) is list
                and len(msg["seqs"]) > 0 and all(whole(s, 1) for s in msg["seqs"]))
    return (is_id(msg["term"]) and is_id(msg["window"])
            and (msg["staff"] == "" or is_id(msg["staff"])) and _HEX32.match(msg["token"])
            and whole(msg["exp"], 0, MAX_TS) and whole(msg["now"], 0, MAX_TS))


DECODERS = {
    "rating": lambda key, p: messages.decode_uplink(p),
    "reason": lambda key, p: messages.decode_uplink(p),
    "status": lambda key, p: messages.decode_status(p),
    "ack": messages.decode_ack,
    "session": messages.decode_session,
}
