"""Phone numbers compared without being kept (第六条, 第十一条): a staff member's number
(`hcp staff set-phone`) and a real-name phone rater's number (the QR channel, mobile.py) are
stored only as a keyed hash, so the hall can see that a rater's number is a staff member's
(Wuhan 2019: citizens' numbers replaced with cadres') while its database holds no number a
thief could read or look up.

The key is derived from [mobile] identity_key_file, the key that seals raters' identities: it
never lives in the hall database, and without it a hash cannot be tested against the ~10^9
possible mobile numbers. A number is compared by its digits, with a leading +86 / 0086 / 86 on
a mainland mobile number dropped, so "+86 138-0000-1234" and "13800001234" match.
"""
from __future__ import annotations

import hashlib
import hmac

_LABEL = b"haochaping staff-phone mac v1"


def digits(phone: str) -> str:
    """The number's digits, without the mainland country code in front of an 11-digit mobile."""
    d = "".join(c for c in phone if c.isascii() and c.isdigit())
    for cc in ("0086", "86"):
        if d.startswith(cc) and len(d) == len(cc) + 11 and d[len(cc)] == "1":
            return d[len(cc):]
    return d


def mac_key(identity_key: bytes) -> bytes:
    """The hashing key, derived from the identity key (a separate use of the same secret)."""
    return hmac.new(identity_key, _LABEL, hashlib.sha256).digest()


def mac(key: bytes, phone: str) -> str:
    """The keyed hash of a number (hex); key from mac_key()."""
    return hmac.new(key, digits(phone).encode(), hashlib.sha256).hexdigest()


def tail(phone: str) -> str:
    """The last 4 digits: all that is kept in clear, to show a number as ****1234."""
    return digits(phone)[-4:]
