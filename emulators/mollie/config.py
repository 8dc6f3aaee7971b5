"""Settings of one Mollie emulator instance."""

from __future__ import annotations

import re
from dataclasses import dataclass

_API_KEY_PATTERN = re.compile(r"^(live|test)_\w+$")


@dataclass(frozen=True, kw_only=True)
class MollieEmulatorConfig:
    """Everything that shapes an emulator's behaviour; durations are on the emulator clock.

    `public_url` is the base of every `_links` href and checkout URL. It must be the address
    clients use to reach the emulator, because the official client only follows pagination
    links that start with its own `api_endpoint`. Empty means "the Host the request came to".
    """

    api_key: str = "test_emulator0000000000000000000000"
    public_url: str = ""
    deliver_webhooks: bool = True
    pending_settle_seconds: float = 3 * 24 * 3600.0
    refund_settle_seconds: float = 2 * 3600.0
    capture_settle_seconds: float = 0.0
    payment_expiry_seconds: float = 15 * 60.0
    authorization_hold_seconds: float = 7 * 24 * 3600.0
    idempotency_ttl_seconds: float = 3600.0
    duplicate_refund_window_seconds: float = 60.0
    webhook_timeout_seconds: float = 15.0
    tick_interval_seconds: float = 0.2
    profile_id: str = "pfl_emulator01"

    def __post_init__(self) -> None:
        # The official client refuses other keys, so an emulator configured with one would be
        # unreachable; fail at start-up instead of on the first request.
        if not _API_KEY_PATTERN.match(self.api_key):
            raise ValueError("api_key must look like 'test_...' or 'live_...'")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http(s) URL")

    @property
    def mode(self) -> str:
        """`test` or `live`, as the key prefix selects on the real API."""
        return "live" if self.api_key.startswith("live_") else "test"
