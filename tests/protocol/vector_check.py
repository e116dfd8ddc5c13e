# Runs the protocol test vectors. Common subset: this same file runs under CPython (imported by
# test_vectors.py) and under real MicroPython (as a script). Prints one line per failure, then
# "vectors ok N" or "vectors FAILED N".
import binascii
import json

from haochaping.protocol import messages, sign


def _unhex(s):
    return binascii.unhexlify(s)


def _pad_cache_failures():
    """The fallback HMAC builds a key's pads once and reuses them; another key (or the same
    bytearray changed) gets its own, and the MACs stay those of RFC 2104."""
    out = []
    k1 = b"k" * 32
    k2 = b"j" * 70  # longer than the block: hashed first
    m = b"hcp/v1|rating|T01|1"
    a = sign._hmac_sha256(k1, m)
    pads = sign._key_pads(k1)
    again = sign._key_pads(bytes(bytearray(k1)))  # equal bytes, another object
    if again[0] is not pads[0] or again[1] is not pads[1]:
        out.append("hmac pads rebuilt for the same key")
    b = sign._hmac_sha256(k2, m)
    if a == b or sign._hmac_sha256(k1, m) != a or sign._hmac_sha256(k2, m) != b:
        out.append("hmac wrong after switching keys")
    ka = bytearray(k1)
    if sign._hmac_sha256(ka, m) != a:
        out.append("hmac of a bytearray key differs")
    ka[0] ^= 1
    if sign._hmac_sha256(ka, m) == a:
        out.append("hmac kept the pads of a key that changed")
    return out


def check(path):
    with open(path) as f:
        v = json.load(f)
    failures = []
    n = 0
    for h in v["hmac"]:
        n += 1
        for fn in (sign.hmac_sha256, sign._hmac_sha256):  # what this runtime uses, and the fallback
            got = binascii.hexlify(fn(_unhex(h["key"]), _unhex(h["data"]))).decode()
            if got != h["mac"]:
                failures.append("hmac %s: got %s" % (h["mac"][:8], got))
    n += 1
    failures += _pad_cache_failures()
    for c in v["canonical"]:
        n += 1
        got = sign.canonical(c["kind"], c["fields"]).decode()
        if got != c["bytes"]:
            failures.append("canonical %s: got %s" % (c["kind"], got))
    enc = {
        "rating": messages.encode_rating,
        "reason": messages.encode_reason,
        "ack": messages.encode_ack,
        "session": messages.encode_session,
    }
    for m in v["messages"]:
        n += 1
        key = _unhex(m["key"])
        want = m["payload"].encode()
        if m["kind"] == "status":
            got = messages.encode_status(*m["args"])
        else:
            got = enc[m["kind"]](key, *m["args"])
        if got != want:
            failures.append("encode %s: got %s" % (m["kind"], got))
            continue
        # and back: decoding the expected bytes must accept them and see the same fields
        if m["kind"] in ("rating", "reason"):
            msg = messages.decode_uplink(want)
            if not messages.verify_uplink(key, msg) or msg["seq"] != m["args"][1]:
                failures.append("decode %s" % m["kind"])
            if m["kind"] == "rating" and msg.get("delay_ms") != (
                    m["args"][5] if len(m["args"]) > 5 else None):
                failures.append("decode rating: delay_ms %r" % msg.get("delay_ms"))
            if messages.verify_uplink(key + b"x", msg):
                failures.append("wrong key accepted for %s" % m["kind"])
        elif m["kind"] == "ack":
            if messages.decode_ack(key, want)["seqs"] != m["args"][1]:
                failures.append("decode ack")
        elif m["kind"] == "session":
            if messages.decode_session(key, want)["token"] != m["args"][1]:
                failures.append("decode session")
        else:
            if messages.decode_status(want)["online"] != m["args"][1]:
                failures.append("decode status")
    return n, failures


if __name__ == "__main__":
    import sys
    n, failures = check(sys.argv[1])
    for f in failures:
        print(f)
    print("vectors %s %d" % ("FAILED" if failures else "ok", n))
