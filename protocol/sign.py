"""HMAC-SHA256 from hashlib.sha256 (MicroPython has no hmac module) and the canonical bytes.

MicroPython's json.dumps cannot sort keys, so what is signed is not the JSON but a canonical
byte string built field by field: "hcp/v1|<kind>|<field>|<field>|..." with every field as text.
Fields never contain "|" (ids and tokens are checked against a small alphabet first).
"""
import binascii
import hashlib

try:  # CPython (and boards with micropython-lib's hmac): the C implementation, same result
    import hmac as _hmac
except ImportError:
    _hmac = None

_BLOCK = 64


def hmac_sha256(key, msg):
    if _hmac is not None:
        return _hmac.new(key, msg, hashlib.sha256).digest()
    return _hmac_sha256(key, msg)


def _hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) from hashlib alone, for MicroPython."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def canonical(kind, fields):
    parts = ["hcp/v1", kind]
    for f in fields:
        if f is None:
            parts.append("")
        elif type(f) is list or type(f) is tuple:
            parts.append(",".join([str(x) for x in f]))
        else:
            parts.append(str(f))
    return "|".join(parts).encode()


def _hex(b):
    return binascii.hexlify(b).decode()


def sign(key, kind, fields):
    return _hex(hmac_sha256(key, canonical(kind, fields)))


def verify(key, kind, fields, signature):
    """Constant-time comparison of a hex signature."""
    expected = sign(key, kind, fields)
    if type(signature) is not str or len(signature) != len(expected):
        return False
    if _hmac is not None:
        return _hmac.compare_digest(expected, signature)
    diff = 0
    for i in range(len(expected)):
        diff |= ord(expected[i]) ^ ord(signature[i])
    return diff == 0
