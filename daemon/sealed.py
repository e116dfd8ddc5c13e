"""A rater's identity sealed (RULES.md 第六条): AES-256-GCM over its JSON, a random 96-bit nonce
in front of the ciphertext, bound by the associated data to the record it belongs to (a sealed
identity cannot be moved to another record). The one way the hall seals a phone rater's
identity at rest, the forwarder seals it for the store, and the store seals it at rest."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

NONCE = 12  # bytes in front of the ciphertext


def seal(key: bytes, identity: Mapping[str, object], aad: bytes) -> bytes:
    """nonce + AES-256-GCM(key) of the identity's JSON, bound to `aad`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(NONCE)
    data = json.dumps(identity, ensure_ascii=False, sort_keys=True).encode()
    return nonce + AESGCM(key).encrypt(nonce, data, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> Any:
    """What seal() sealed under `key` for `aad` (cryptography's InvalidTag if it does not open:
    another key, another record, altered bytes)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return json.loads(AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], aad))
