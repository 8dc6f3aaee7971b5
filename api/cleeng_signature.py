"""Verification of Cleeng's webhook signatures: HMAC-SHA256 over the raw body.

Cleeng does not document the header name or encoding, so the header is configurable and both
hex and base64 digests are accepted (optionally prefixed `sha256=`). Comparison is constant
time. An empty secret rejects everything: forgetting to configure it must fail closed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def expected_digest(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def sign_hex(secret: str, body: bytes) -> str:
    """The signature as the Cleeng emulator (and our tests) send it."""
    return expected_digest(secret, body).hex()


def _decode(signature: str) -> bytes | None:
    value = signature.strip()
    if value.lower().startswith("sha256="):
        value = value[len("sha256=") :]
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def signature_is_valid(secret: str, body: bytes, signature: str | None) -> bool:
    if not secret or not signature:
        return False
    presented = _decode(signature)
    if presented is None:
        return False
    return hmac.compare_digest(presented, expected_digest(secret, body))
