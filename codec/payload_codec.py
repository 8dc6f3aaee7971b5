"""AES-256-GCM encryption of every payload the connector hands to Temporal.

Workflow inputs, results, signals, updates, queries and activity arguments carry customer
emails, names, Mollie customer and mandate ids and card details; Temporal stores them in its
history for the namespace's retention. With this codec the server holds only ciphertext: each
encrypted payload is the whole original payload (its metadata and data) sealed with AES-GCM,
with the key's id and the `binary/encrypted` encoding in clear metadata so any holder of the
key ring can open it after a rotation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from codec.keys import KeyRing

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12  # GCM's standard nonce; random per payload (2^32 payloads per key is safe)
# Bound into each ciphertext with its key id: moving a ciphertext under another key id's label
# (or another format's) fails authentication instead of decrypting to something unexpected.
_ASSOCIATED_DATA_PREFIX = b"cleeng-mollie-connector/payload/v1:"


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be opened: unknown key id, or it fails authentication."""


class EncryptionCodec(PayloadCodec):
    """Encrypts with the key ring's current key; decrypts with whichever key a payload names.

    A payload without the `binary/encrypted` marker is returned unchanged by `decode`: such
    payloads were written before encryption was switched on and must stay readable."""

    def __init__(self, key_ring: KeyRing) -> None:
        self._key_ring = key_ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in key_ring.keys.items()}

    @property
    def current_key_id(self) -> str:
        return self._key_ring.current_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._key_ring.current_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(key_id)
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(sorted(self._ciphers))
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r}, which is not in "
                f"PAYLOAD_ENCRYPTION_KEYS (known: {known})"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            opened = cipher.decrypt(nonce, sealed, _associated_data(key_id))
            return Payload.FromString(opened)
        except (InvalidTag, DecodeError, ValueError):
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} fails authentication: it was "
                "altered, or the key under that id is not the one it was written with"
            ) from None


def _associated_data(key_id: str) -> bytes:
    return _ASSOCIATED_DATA_PREFIX + key_id.encode()
