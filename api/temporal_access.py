"""Lazy, shared access to the Temporal client for the shim.

The API must come up (and answer 503) even while Temporal is down, so the connection is made
on first use and retried on the next request after a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import HTTPException, status
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from settings import Settings
from temporal_connection import connect_temporal

# The shim answers someone who is waiting and will retry by itself (Mollie, Cleeng, a front
# end): give up on a busy or unreachable Temporal within about three seconds and answer 503,
# rather than the SDK's default (a throttled call was held ~14 s), which keeps connections open
# just when the server is overloaded and comes close to the senders' own timeouts.
SHIM_RETRY_CONFIG = RetryConfig(
    initial_interval_millis=100,
    max_interval_millis=1000,
    max_elapsed_time_millis=3000,
    max_retries=4,
)

# What a 503 tells the sender to wait. Mollie and Cleeng keep their own retry schedules; the
# header is for anyone else (and for humans reading the answer).
RETRY_AFTER_SECONDS = 5


class TemporalUnavailable(Exception):
    """Temporal cannot be reached now; the caller should answer 503 so the sender retries."""


# RPC codes that mean "the server is not there / not answering / too busy now", not "your
# request is wrong". RESOURCE_EXHAUSTED (a rate limit, a busy workflow) passes with time.
UNAVAILABLE_CODES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    }
)


class TemporalAccess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = settings.temporal_address
        self.task_queue = settings.temporal_task_queue
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect_temporal(self.settings, retry_config=SHIM_RETRY_CONFIG),
                        timeout=5,
                    )
                except (RuntimeError, OSError, TimeoutError, RPCError) as exc:
                    raise TemporalUnavailable(f"Temporal at {self.address} is unreachable") from exc
            return self._client

    async def healthy(self) -> bool:
        try:
            client = await self.client()
            return await asyncio.wait_for(client.service_client.check_health(), timeout=3)
        except (TemporalUnavailable, RPCError, TimeoutError):
            return False


def is_unavailable(error: RPCError) -> bool:
    return error.status in UNAVAILABLE_CODES


def service_unavailable(detail: str) -> HTTPException:
    """503 with `Retry-After`: the request was fine, the answer has to wait."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=detail,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@contextmanager
def temporal_unavailable_as_503(
    on_unavailable: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Answer 503 (with `Retry-After`) while Temporal cannot be reached or is too busy, so
    the caller (Cleeng, Mollie, a front end) tries again later and nothing is lost; any other
    error passes through. The app's refusal handler logs the 503 as one line, no traceback."""
    try:
        yield
    except TemporalUnavailable as error:
        if on_unavailable:
            on_unavailable()
        raise service_unavailable(str(error)) from error
    except RPCError as error:
        if not is_unavailable(error):
            raise
        if on_unavailable:
            on_unavailable()
        if error.status == RPCStatusCode.RESOURCE_EXHAUSTED:
            detail = f"Temporal is busy (resource exhausted: {error.message}); retry later"
        else:
            detail = f"Temporal is unavailable: {error.message}"
        raise service_unavailable(detail) from error
