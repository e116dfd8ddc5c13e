"""HMAC-SHA256 from hashlib.sha256 (MicroPython has no hmac module) and the canonical bytes.

MicroPython's json.dumps cannot sort keys, so what is signed is not the JSON but a canonical
byte string built field by field: "hcp/v1|<kind>|<field>|<field>|..." with every field as text.
Fields never contain "|" (ids and tokens are checked against a small alphabet first).
"""
import binascii
import hashlib

from .compat import const

try:  # CPython (and boards with micropython-lib's hmac): the standard module, same result
    import hmac as _hmac
except ImportError:
    _hmac = None

_BLOCK = const(64)
# The fallback's pads for the last key it was given: [key, inner pad, outer pad]. A terminal
# signs and checks everything with its one key, so the pads are built once, not per message.
_pads = [None, b"", b""]  # type: list


def hmac_sha256(key, msg):
    if _hmac is not None:
        return _hmac.new(key, msg, hashlib.sha256).digest()
    return _hmac_sha256(key, msg)


def _key_pads(key):
    """The (inner, outer) pads of `key`: built only when the key differs from the last one."""
    p = _pads
    if key != p[0]:
        key = bytes(key)  # our own copy: a caller's bytearray changed later must not match
        k = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
        k = k + bytes(_BLOCK - len(k))
        p[1] = bytes(b ^ 0x36 for b in k)
        p[2] = bytes(b ^ 0x5C for b in k)
        p[0] = key
    return p[1], p[2]


def _hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) from hashlib alone, for MicroPython."""
    ipad, opad = _key_pads(key)
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
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
