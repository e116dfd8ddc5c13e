"""The rater's identity at rest in the store (RULES.md 第六条): sealed with a key that lives
apart from the database."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from haochaping.daemon import sealed
from haochaping.daemon.errors import HcpError


class IdentityKey:
    """AES-256-GCM over the rater's identity JSON; the record id is the associated data, so a
    ciphertext cannot be moved to another record. The key is a file of 64 hex characters
    (mode 600) that lives apart from the database: a stolen database alone reveals nobody."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def load(cls, path: str | os.PathLike[str], create: bool = False) -> IdentityKey:
        if create and not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        try:
            with open(path) as f:
                key = bytes.fromhex(f.read().strip())
        except FileNotFoundError:
            raise HcpError("identity key file %s not found" % path) from None
        except ValueError:
            raise HcpError("identity key file %s: expected 64 hex characters" % path) from None
        if len(key) != 32:
            raise HcpError("identity key file %s: expected 64 hex characters" % path)
        return cls(key)

    def seal(self, uid: str, identity: Mapping[str, object]) -> bytes:
        """The identity (a JSON object) encrypted for the record `uid`: nonce + ciphertext."""
        return sealed.seal(self._key, identity, uid.encode())

    def open(self, uid: str, blob: bytes | memoryview) -> dict[str, Any]:
        """The identity sealed for `uid`: the JSON object the hall sent (so Any inside)."""
        out: dict[str, Any] = sealed.open_sealed(self._key, bytes(blob), uid.encode())
        return out
