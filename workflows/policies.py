"""The few kinds of activity call every workflow makes, named once.

A workflow passes one of these to `workflow.execute_activity_method(..., **KIND)`; the
timeouts and retry policy of a kind are decided here, not at each call site.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

# Each activity is one or two HTTP calls of a few seconds (the clients time out at 10 s).
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

# A read or an idempotent write to Mollie or Cleeng.
CALL: Final[ActivityConfig] = {"start_to_close_timeout": CALL_TIMEOUT, "retry_policy": RETRY}

# Writing an outcome that money depends on (a payment record, a refund, a capture).
RECORD: Final[ActivityConfig] = {
    "start_to_close_timeout": CALL_TIMEOUT,
    "retry_policy": RECORD_RETRY,
}

# A step of a checkout the shopper is waiting for.
SETUP: Final[ActivityConfig] = {
    "start_to_close_timeout": CALL_TIMEOUT,
    "retry_policy": SETUP_RETRY,
}
