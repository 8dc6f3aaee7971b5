"""The few kinds of activity call every workflow makes, named once.

A workflow passes one of these to `workflow.execute_activity_method(..., **KIND)`; the
timeouts and retry policy of a kind are decided here, not at each call site.

    CALL    a read or an idempotent write of at most three requests
    POLL    the single read a wait repeats (is the payment or the refund final yet?)
    WALK    a read that follows a Mollie list page after page
    RECORD  writing an outcome money depends on; never given up
    SETUP   a step of a checkout the shopper is waiting for

LOCAL_CALL, LOCAL_POLL and LOCAL_RECORD are the same kinds run as local activities: in the
worker that runs the workflow task, recorded as one marker event instead of an activity task's
three events and the workflow task that follows it. A renewal's reads and repeatable writes
are short (a request or three), so running them back to back in one workflow task roughly
halves a renewal's history. What they give up, and why a renewal can afford it: a local activity
cannot heartbeat (its kind's start-to-close timeout notices a lost worker instead), and a worker
lost before the workflow task completes runs the task's steps again on the next worker, which
each step already tolerates (a business-keyed Mollie request finds the payment made before; a
cycle already recorded in Cleeng stops at the first step).

Activities call `activity.heartbeat()` before every request they make, so a kind with a
`heartbeat_timeout` notices a lost worker within one request instead of at its end.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig, LocalActivityConfig

# One HTTP request at its worst. Both clients time out after 10 s per phase (settings
# `cleeng_timeout_seconds`, `mollie_timeout_seconds`): Cleeng's connect, write and read can each
# take that long; Mollie's connect is capped at 3 s. Raising those settings means raising this
# (tests/test_worker.py holds the two together).
HTTP_REQUEST_LIMIT: Final = timedelta(seconds=30)

# A silence longer than one request (plus room for the heartbeat to travel) is a lost worker.
HEARTBEAT_TIMEOUT: Final = HTTP_REQUEST_LIMIT + timedelta(seconds=15)

# The most requests a CALL makes: capture and release read the payment, write, read it back.
CALL_REQUESTS: Final = 3

# A list walk: at the worst 30 s a page that is 120 pages (30 000 items); at Mollie's usual
# well-under-a-second pages, far more. Heartbeats, not this, notice a stuck walk.
WALK_TIMEOUT: Final = timedelta(hours=1)

# Bugs in the connector: the same code on the same input fails the same way however often it
# is retried, so the call fails at once and the workflow shows it. (Refusals by Cleeng or
# Mollie, input validation included, are already non-retryable: see activities/errors.py.)
# "Failed decoding arguments" is deliberately absent: during a deploy, the worker that cannot
# decode may be the old one, and the retry lands on a new one.
PROGRAMMING_ERRORS: Final = (
    "AssertionError",
    "AttributeError",
    "ImportError",
    "IndexError",
    "KeyError",
    "ModuleNotFoundError",
    "NameError",
    "NotImplementedError",
    "TypeError",
    "UnboundLocalError",
    "ValidationError",
    "ValueError",
    "ZeroDivisionError",
)

# Reads and idempotent writes: back off up to 5 minutes, forever (permanent errors stop it).
RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=list(PROGRAMMING_ERRORS),
)

# A polling read serves a wait of minutes to hours: a short backoff answers soon after Mollie
# is reachable again.
POLL_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=list(PROGRAMMING_ERRORS),
)

# Recording an outcome is never given up: a paid payment that Cleeng never hears of is a lost
# payment. Retries go on (capped backoff) until it lands or is refused for good. Programming
# errors are retried too, on purpose: failing the call would end the workflow with the money
# moved and nothing recorded, to be repaired by hand; retrying keeps it waiting, visible as a
# pending activity with its last failure (and the activity's error log), until a worker with
# the fix is deployed, and then the record lands by itself.
RECORD_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)

# A checkout's setup goes on in the background (the shopper's request answers 202 after a few
# seconds and polls), so it may ride out an outage; SETUP_BOUND ends it, and the checkout then
# fails visibly and can be started again. The attempt cap only backs up a caller that passes
# SETUP_RETRY without SETUP's schedule_to_close: 40 attempts take longer than SETUP_BOUND.
SETUP_BOUND: Final = timedelta(minutes=15)
SETUP_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=40,
    non_retryable_error_types=list(PROGRAMMING_ERRORS),
)

# A read or an idempotent write to Mollie or Cleeng, of at most CALL_REQUESTS requests.
CALL: Final[ActivityConfig] = {
    "start_to_close_timeout": HTTP_REQUEST_LIMIT * CALL_REQUESTS,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "retry_policy": RETRY,
}

# The one read a wait repeats.
POLL: Final[ActivityConfig] = {
    "start_to_close_timeout": HTTP_REQUEST_LIMIT,
    "retry_policy": POLL_RETRY,
}

# A read that follows a list page after page (a payment's chargebacks, a customer's payments).
WALK: Final[ActivityConfig] = {
    "start_to_close_timeout": WALK_TIMEOUT,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "retry_policy": RETRY,
}

# Writing an outcome that money depends on (a payment record, a refund, a release). A refund
# first walks the payment's refunds, hence a walk's time.
RECORD: Final[ActivityConfig] = {
    "start_to_close_timeout": WALK_TIMEOUT,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "retry_policy": RECORD_RETRY,
}

# A step of a checkout the shopper is waiting for, retried until SETUP_BOUND has passed: the
# Cleeng order (one read), or a Mollie customer or payment (a walk of Mollie's customers, or of
# the customer's payments, then a write). A walk has no fixed worst length, so one attempt may
# use the whole bound; the heartbeats notice a lost worker within one request.
SETUP: Final[ActivityConfig] = {
    "start_to_close_timeout": SETUP_BOUND,
    "schedule_to_close_timeout": SETUP_BOUND,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "retry_policy": SETUP_RETRY,
}

# The local forms. No heartbeat timeout (a local activity cannot heartbeat), and a bound of one
# CALL on every attempt: a renewal's steps never walk a list. Retries up to a minute apart stay
# inside the worker; longer backoffs become timers in the history (the SDK's
# local_retry_threshold), so an outage of Cleeng or Mollie still waits for as long as it lasts.
LOCAL_CALL: Final[LocalActivityConfig] = {
    "start_to_close_timeout": HTTP_REQUEST_LIMIT * CALL_REQUESTS,
    "retry_policy": RETRY,
}
LOCAL_POLL: Final[LocalActivityConfig] = {
    "start_to_close_timeout": HTTP_REQUEST_LIMIT,
    "retry_policy": POLL_RETRY,
}
LOCAL_RECORD: Final[LocalActivityConfig] = {
    "start_to_close_timeout": HTTP_REQUEST_LIMIT * CALL_REQUESTS,
    "retry_policy": RECORD_RETRY,
}
