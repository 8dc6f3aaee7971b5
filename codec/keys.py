"""The keys workflow payloads are encrypted with: parsing `PAYLOAD_ENCRYPTION_KEYS`, and the
one-machine dev stack's key file.

A key ring is an ordered list of `id:base64key` entries, comma-separated. The first entry is
the *current* key (every new payload is encrypted with it); every entry can decrypt. Rotating
means putting a new entry first and keeping the old ones for as long as histories encrypted
with them can still be read (the namespace's retention, and any exported history).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from settings import Settings

KEY_BYTES = 32  # AES-256
# A key id travels in clear in every payload's metadata and in error messages: short, plain.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
SETTING = "PAYLOAD_ENCRYPTION_KEYS"


class KeyRingError(ValueError):
    """The key setting is malformed. Its message names the entry, never the key material."""


@dataclass(frozen=True)
class KeyRing:
    """Known keys by id; `current_id` is the one new payloads are encrypted with."""

    current_id: str
    keys: dict[str, bytes]

    def __repr__(self) -> str:
        # The dataclass default would print the keys themselves.
        return f"KeyRing(current_id={self.current_id!r}, ids={list(self.keys)!r})"


def parse_key_ring(text: str) -> KeyRing:
    """`id:base64key[,id:base64key...]`, first = current. Each key must be 32 bytes."""
    keys: dict[str, bytes] = {}
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise KeyRingError(f"{SETTING} holds no key (expected id:base64key, ...)")
    for position, entry in enumerate(entries, start=1):
        key_id, separator, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not separator:
            raise KeyRingError(f"{SETTING}: entry {position} is not id:base64key")
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise KeyRingError(
                f"{SETTING}: entry {position} has a key id that is not 1-64 of A-Z a-z 0-9 . _ -"
            )
        if key_id in keys:
            raise KeyRingError(f"{SETTING}: key id {key_id!r} appears twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise KeyRingError(
                f"{SETTING}: key {key_id!r} is not valid base64"
            ) from None  # the value is a secret: no chained error that might quote it
        if len(key) != KEY_BYTES:
            raise KeyRingError(
                f"{SETTING}: key {key_id!r} is {len(key)} bytes, AES-256 needs {KEY_BYTES} "
                "(e.g. `openssl rand -base64 32`)"
            )
        keys[key_id] = key
    return KeyRing(current_id=entries[0].partition(":")[0].strip(), keys=keys)


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh `id:base64key` entry; the id defaults to today's date, which makes the order
    of rotations readable in the metadata of stored payloads."""
    key_id = key_id or datetime.now(UTC).strftime("k%Y%m%d")
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyRingError(f"{key_id!r} is not a valid key id")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


DEV_KEY_FILE = "payload-encryption.keys"


def dev_key_ring_text(data_dir: Path) -> str:
    """The dev stack's key ring, from `<data-dir>/payload-encryption.keys`, created (0600) with
    one new key the first time. Reused on every later start, so histories written before a
    restart stay readable; delete the data dir and the key goes with the histories."""
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        entry = new_key_entry("dev1")
        # Created with 0600 from the start (never world-readable, even for a moment), and
        # exclusively: two launchers racing on one data dir cannot write two different keys.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(entry + "\n")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # e.g. copied with a permissive umask: the key is the history's
    text = path.read_text().strip()
    parse_key_ring(text)  # a damaged file is named now, not at the first payload
    return text


# Where `scripts/run` keeps its data (the launcher's --data-dir default), relative to the
# directory it runs in.
SANDBOX_DATA_DIR = Path(".data")


def with_sandbox_keys(settings: Settings, data_dir: Path = SANDBOX_DATA_DIR) -> Settings:
    """For a tool run beside `scripts/run` (the operator CLI, the demos): the key ring of the
    sandbox stack in `data_dir` (the launcher's --data-dir) when no PAYLOAD_ENCRYPTION_KEYS is
    set, so it reads what the stack wrote. Never creates a key, and never applies outside
    sandbox mode."""
    if settings.payload_encryption_keys is not None or not settings.sandbox_mode:
        return settings
    if not (data_dir / DEV_KEY_FILE).exists():
        return settings
    keys = SecretStr(dev_key_ring_text(data_dir))
    return settings.model_copy(update={"payload_encryption_keys": keys})
