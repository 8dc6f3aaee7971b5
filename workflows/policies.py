"""Timeouts and retry policies every workflow uses for its activities."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio.common import RetryPolicy

# Each activity is one or two HTTP calls of a few seconds.
CALL_TIMEOUT: Final = timedelta(seconds=30)

# Reads and idempotent writes: back off up to 5 minutes, forever (permanent errors stop it).
RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)

# Recording an outcome is never given up: a paid payment that Cleeng never hears of is a lost
# payment. Retries go on (capped backoff) until it lands or is refused for good.
RECORD_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)

# A checkout must be ready while the shopper waits on the HTTP reply; after these attempts the
# purchase fails visibly instead of hanging.
SETUP_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)
