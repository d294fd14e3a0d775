"""Signed model blobs: HMAC-SHA256 over pickled bytes, verified before anything is unpickled.

Examples
--------
>>> blob = dumps_signed({"w": [1.0, 2.0]}, b"k" * 32)
>>> loads_signed(blob, b"k" * 32)
{'w': [1.0, 2.0]}
>>> tampered = blob[:-1] + bytes([blob[-1] ^ 1])
>>> loads_signed(tampered, b"k" * 32)
Traceback (most recent call last):
...
coelho.core.signing.TamperedError: signature mismatch: refusing to unpickle (wrong COELHO_SIGNING_KEY or tampered bytes)
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

__all__ = ["TamperedError", "dumps_signed", "loads_signed"]

MAGIC = b"COELHO-HMAC-SHA256\x00"
DIGEST_BYTES = 32


class TamperedError(ValueError):
    """The bytes were not signed with our key: they are never unpickled."""


def dumps_signed(obj: Any, key: bytes) -> bytes:
    """Pickle `obj` and prefix it with a magic header and its HMAC."""
    payload = pickle.dumps(obj, protocol=5)
    return MAGIC + hmac.digest(key, payload, hashlib.sha256) + payload


def loads_signed(blob: bytes, key: bytes) -> Any:
    """Verify the HMAC of `blob`, then unpickle; raise TamperedError otherwise."""
    if not blob.startswith(MAGIC):
        raise TamperedError("not a signed COELHO blob: refusing to unpickle")
    start = len(MAGIC)
    digest, payload = blob[start : start + DIGEST_BYTES], blob[start + DIGEST_BYTES :]
    if not hmac.compare_digest(digest, hmac.digest(key, payload, hashlib.sha256)):
        raise TamperedError(
            "signature mismatch: refusing to unpickle (wrong COELHO_SIGNING_KEY or tampered bytes)"
        )
    return pickle.loads(payload)
