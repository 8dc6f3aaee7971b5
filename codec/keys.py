"""The keys workflow payloads are encrypted with: new keys, and the one-machine dev stack's
key file. Parsing `PAYLOAD_ENCRYPTION_KEYS` is the settings' (settings.py, the bottom layer,
so a malformed ring is named with every other setting at start); its names are re-exported.

A key ring is an ordered list of `id:base64key` entries, comma-separated. The first entry is
the *current* key (every new payload is encrypted with it); every entry can decrypt. Rotating
means putting a new entry first and keeping the old ones for as long as histories encrypted
with them can still be read (the namespace's retention, and any exported history).
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from settings import KEY_BYTES, KEY_ID_PATTERN, KeyRing, KeyRingError, Settings, parse_key_ring

__all__ = [
    "DEV_KEY_FILE",
    "KEY_BYTES",
    "KEY_ID_PATTERN",
    "SANDBOX_DATA_DIR",
    "KeyRing",
    "KeyRingError",
    "dev_key_ring_text",
    "new_key_entry",
    "parse_key_ring",
    "with_sandbox_keys",
]


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
