"""What the shim's routes need, built once per app and reached through `request.app.state`.

Besides the clients, this holds the shim's only in-memory state: bounded tables that keep
floods of webhooks cheap (a token bucket per source address, the Mollie routing caches).
They are per process and may be lost at any time; losing them costs one more look-up or one
more signal, never a payment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fastapi import HTTPException, Request, status

from api.temporal_access import TemporalAccess
from clients.cleeng import CleengClient
from clients.mollie import MollieGateway
from settings import Settings

logger = logging.getLogger(__name__)

_K = TypeVar("_K")
_V = TypeVar("_V")


class BoundedTtlCache(Generic[_K, _V]):
    """A dict whose entries expire after `ttl` seconds and which never holds more than
    `max_entries` (the oldest go first), so no caller can grow it without bound."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: OrderedDict[_K, tuple[float, _V]] = OrderedDict()

    def get(self, key: _K, now: float | None = None) -> _V | None:
        found = self._items.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= (time.monotonic() if now is None else now):
            del self._items[key]
            return None
        return value

    def put(self, key: _K, value: _V, now: float | None = None) -> None:
        if self.ttl <= 0:
            return
        self._items.pop(key, None)
        self._items[key] = ((time.monotonic() if now is None else now) + self.ttl, value)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def pop(self, key: _K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Admission:
    """A rate-limit decision. `retry_after` is set when refused; `episode_start` marks the
    first refusal of a run (logged), `refused_in_episode` the refusals a pass ends (logged)."""

    allowed: bool
    retry_after: float = 0.0
    episode_start: bool = False
    refused_in_episode: int = 0


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    refused: int = 0


class RateLimiter:
    """Token buckets keyed by (endpoint, source): `burst` requests at once, then `rate` per
    second. At most `max_sources` buckets are kept (least recently seen go first)."""

    def __init__(self, rate: float, burst: int, max_sources: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def admit(self, key: tuple[str, str], now: float | None = None) -> Admission:
        moment = time.monotonic() if now is None else now
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), stamp=moment)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        bucket.tokens = min(float(self.burst), bucket.tokens + (moment - bucket.stamp) * self.rate)
        bucket.stamp = moment
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            refused, bucket.refused = bucket.refused, 0
            return Admission(allowed=True, refused_in_episode=refused)
        bucket.refused += 1
        return Admission(
            allowed=False,
            retry_after=(1 - bucket.tokens) / self.rate,
            episode_start=bucket.refused == 1,
        )


def source_of(request: Request) -> str:
    """The address a request came from (as uvicorn reports it, i.e. after its trusted-proxy
    handling). An IPv6 host usually owns a whole /64, so IPv6 sources are keyed by it."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class PaymentRoute:
    """Where a Mollie payment's webhooks go: the workflow named in the metadata the connector
    gave the payment, and the payment's state as Mollie reported it (to coalesce repeats)."""

    workflow_id: str
    state: str


@dataclass
class MollieRouting:
    """The Mollie webhook's memory (see `api.mollie_webhooks`)."""

    # payment id -> why it is not ours ("not_found" / "not_ours"), for a short while.
    negative: BoundedTtlCache[str, str]
    # (workflow id, payment id) -> the payment state last signalled into that workflow.
    signalled: BoundedTtlCache[tuple[str, str], str]
    # payment id -> the Mollie look-up running now, which concurrent webhooks may share.
    in_flight: dict[str, asyncio.Task[PaymentRoute | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class ShimServices:
    settings: Settings
    temporal: TemporalAccess
    cleeng: CleengClient
    # Built from the settings (the app creates ShimServices with the three above).
    mollie: MollieGateway = field(init=False)
    mollie_routing: MollieRouting = field(init=False)
    webhook_limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        gateway = MollieGateway(
            settings.mollie_base_url,
            settings.effective_mollie_api_key,
            timeout_seconds=settings.mollie_timeout_seconds,
        )
        routing = MollieRouting(
            negative=BoundedTtlCache(
                settings.mollie_webhook_negative_cache_seconds, settings.webhook_cache_max_entries
            ),
            signalled=BoundedTtlCache(
                settings.mollie_webhook_coalesce_seconds, settings.webhook_cache_max_entries
            ),
        )
        limiter = RateLimiter(
            settings.webhook_rate_limit_per_second,
            settings.webhook_rate_limit_burst,
            settings.webhook_cache_max_entries,
        )
        object.__setattr__(self, "mollie", gateway)
        object.__setattr__(self, "mollie_routing", routing)
        object.__setattr__(self, "webhook_limiter", limiter)


def services(request: Request) -> ShimServices:
    found: ShimServices = request.app.state.services
    return found


def webhook_rate_limit(endpoint: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: 429 with `Retry-After` once a source exceeds its bucket.

    Each endpoint has its own buckets, so a flood of forged Mollie calls from one address
    cannot starve Cleeng's webhooks. A refused run logs two lines (start and end), not one
    per request: a flood must not turn into a flood of log lines.
    """

    async def check(request: Request) -> None:
        shim = services(request)
        source = source_of(request)
        admission = shim.webhook_limiter.admit((endpoint, source))
        if admission.allowed:
            if admission.refused_in_episode:
                logger.warning(
                    "%s webhooks from %s back under the rate limit; %d were refused (429)",
                    endpoint,
                    source,
                    admission.refused_in_episode,
                )
            return
        request.app.state.metrics.webhooks.labels(endpoint, "rate_limited").inc()
        if admission.episode_start:
            logger.warning(
                "%s webhooks from %s over the rate limit (%g/s, burst %d): refusing with 429",
                endpoint,
                source,
                shim.webhook_limiter.rate,
                shim.webhook_limiter.burst,
            )
        seconds = max(1, math.ceil(admission.retry_after))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=(
                f"too many {endpoint} webhook requests from {source}: at most "
                f"{shim.webhook_limiter.rate:g} per second (burst "
                f"{shim.webhook_limiter.burst}); retry after {seconds} s"
            ),
            headers={"Retry-After": str(seconds)},
        )

    return check
