"""Webhook subscriptions (validation of the PUT body) and signed delivery with redelivery.

Delivery follows Cleeng's rule: anything but HTTP 200 means "send it again". Retries are due
when either a real-time or an emulator-clock back-off has passed, so a receiver that was down
for a moment gets the webhook within seconds, and a clock jump also triggers redelivery.

The reordering fault holds a new webhook back (in the background, so the publisher does not
wait) until the next attempt to the same receiver URL has been answered, or
`REORDER_HOLD_SECONDS` passed, so the receiver sees the two in the opposite order. One webhook
at a time is held per receiver; while one is held, the next is always sent, so the order flips
even at rate 1.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from .clock import EmulatorClock, utc_iso
from .config import CleengEmulatorConfig
from .errors import Unprocessable
from .faults import FaultInjector
from .models import WebhookEndpoint
from .reference import (
    ENVELOPE_BROADCASTER_KEY,
    ENVELOPE_DATA_KEY,
    ENVELOPE_TOPIC_KEY,
    TOPICS,
)

logger = logging.getLogger("emulators.cleeng.webhooks")

# Topics the emulator accepts subscriptions for. Unknown names are refused rather than stored,
# so a misspelt topic ("...Authorization") fails loudly instead of never firing.
KNOWN_TOPICS: Final = TOPICS
SECRET_MIN_BYTES: Final = 16
SECRET_MAX_BYTES: Final = 64

DELIVERY_PENDING: Final = "pending"
DELIVERY_DELIVERED: Final = "delivered"
DELIVERY_FAILED: Final = "failed"
DELIVERY_DROPPED: Final = "dropped"
# Longest a reordered webhook waits for the next one to its receiver (real time).
REORDER_HOLD_SECONDS: Final = 2.0


def check_topic(topic: str) -> str:
    if topic not in KNOWN_TOPICS:
        raise Unprocessable(f"Unknown topic '{topic}'; known topics: {', '.join(KNOWN_TOPICS)}")
    return topic


def parse_endpoints(body: Any) -> list[WebhookEndpoint]:
    """Validate the PUT body (a JSON array of endpoint objects); 422 names the bad field."""
    if not isinstance(body, list):
        raise Unprocessable("Request body must be a JSON array of endpoint objects")
    endpoints: list[WebhookEndpoint] = []
    for index, item in enumerate(body):
        where = f"[{index}]"
        if not isinstance(item, dict):
            raise Unprocessable(f"Field '{where}' must be an object")
        unknown = sorted(set(item) - {"url", "filters", "verification"})
        if unknown:
            raise Unprocessable(f"Field '{where}.{unknown[0]}' is not supported")
        url = item.get("url")
        if not isinstance(url, str) or not _is_http_url(url):
            raise Unprocessable(f"Field '{where}.url' must be an http(s) URL")
        raw: dict[str, Any] = {"url": url}
        method_filter = _parse_filters(where, item.get("filters"))
        if method_filter is not None:
            raw["filters"] = [{"name": "paymentMethodId", "options": {"value": method_filter}}]
        secret = _parse_verification(where, item.get("verification"))
        if secret is not None:
            raw["verification"] = {
                "name": "HMAC",
                "options": {"hashAlg": "SHA256", "sharedSecret": secret},
            }
        endpoints.append(
            WebhookEndpoint(
                url=url, payment_method_filter=method_filter, shared_secret=secret, raw=raw
            )
        )
    return endpoints


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _parse_filters(where: str, filters: Any) -> int | None:
    if filters is None or filters == []:
        return None
    if not isinstance(filters, list):
        raise Unprocessable(f"Field '{where}.filters' must be an array")
    if len(filters) > 1:
        raise Unprocessable(f"Field '{where}.filters' supports one paymentMethodId filter")
    entry = filters[0]
    field_name = f"{where}.filters[0]"
    if not isinstance(entry, dict) or entry.get("name") != "paymentMethodId":
        raise Unprocessable(f"Field '{field_name}.name' must be 'paymentMethodId'")
    options = entry.get("options")
    value = options.get("value") if isinstance(options, dict) else None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unprocessable(f"Field '{field_name}.options.value' must be a paymentMethodId")
    return value


def _parse_verification(where: str, verification: Any) -> str | None:
    if verification is None:
        return None
    field_name = f"{where}.verification"
    if not isinstance(verification, dict) or verification.get("name") != "HMAC":
        raise Unprocessable(f"Field '{field_name}.name' must be 'HMAC'")
    options = verification.get("options")
    if not isinstance(options, dict):
        raise Unprocessable(f"Field '{field_name}.options' must be an object")
    if options.get("hashAlg") != "SHA256":
        raise Unprocessable(f"Field '{field_name}.options.hashAlg' must be 'SHA256'")
    secret = options.get("sharedSecret")
    size = len(secret.encode()) if isinstance(secret, str) else 0
    if not SECRET_MIN_BYTES <= size <= SECRET_MAX_BYTES:
        raise Unprocessable(
            f"Field '{field_name}.options.sharedSecret' must be "
            f"{SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} bytes"
        )
    assert isinstance(secret, str)
    return secret


def sign(body: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(kw_only=True)
class DeliveryAttempt:
    """One try at delivering a webhook and what came back."""

    at: datetime  # emulator time
    status_code: int | None
    error: str | None


@dataclass(kw_only=True)
class Delivery:
    """One webhook to one endpoint, with every attempt made to deliver it."""

    id: int
    topic: str
    url: str
    payload: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    created_at: datetime
    signed: bool
    status: str = DELIVERY_PENDING
    duplicate: bool = False
    held_back: bool = False
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    next_real: float | None = None  # time.monotonic() deadline
    next_clock: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "url": self.url,
            "status": self.status,
            "duplicate": self.duplicate,
            "heldBack": self.held_back,
            "signed": self.signed,
            "createdAt": utc_iso(self.created_at),
            "payload": self.payload,
            "attempts": [
                {"at": utc_iso(a.at), "statusCode": a.status_code, "error": a.error}
                for a in self.attempts
            ],
            "nextAttemptAt": utc_iso(self.next_clock) if self.next_clock else None,
        }


class WebhookDispatcher:
    """Publishes events to the endpoints subscribed to their topic and keeps a delivery log."""

    def __init__(
        self,
        config: CleengEmulatorConfig,
        clock: EmulatorClock,
        faults: FaultInjector,
        endpoints_of: Callable[[str], list[WebhookEndpoint]],
    ) -> None:
        self.config = config
        self.clock = clock
        self.faults = faults
        self.endpoints_of = endpoints_of
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._in_flight: set[int] = set()
        self._client: httpx.AsyncClient | None = None
        # Receiver URL -> the release of the one webhook held back for it (reordering fault).
        self._held: dict[str, asyncio.Event] = {}
        self._held_tasks: set[asyncio.Task[None]] = set()

    def clear(self) -> None:
        self.deliveries = []
        self._cancel_held()

    def _cancel_held(self) -> None:
        for task in self._held_tasks:
            task.cancel()
        self._held_tasks.clear()
        self._held.clear()

    async def aclose(self) -> None:
        tasks = list(self._held_tasks)
        self._cancel_held()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        # Created lazily so it binds to the event loop of the server that runs the emulator.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        return self._client

    def envelope(self, topic: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            ENVELOPE_BROADCASTER_KEY: self.config.publisher_id,
            ENVELOPE_TOPIC_KEY: topic,
            ENVELOPE_DATA_KEY: data,
        }

    async def publish(
        self, topic: str, data: dict[str, Any], payment_method_id: int | None
    ) -> list[Delivery]:
        """Send to every subscribed endpoint (filters respected); first attempts awaited.

        An endpoint filtered on paymentMethodId gets only events carrying that id, as Cleeng
        drops events without a paymentMethodId when a filter is set.
        """
        payload = self.envelope(topic, data)
        body = json.dumps(payload, separators=(",", ":")).encode()
        created: list[Delivery] = []
        for endpoint in self.endpoints_of(topic):
            wanted = endpoint.payment_method_filter
            if wanted is not None and payment_method_id != wanted:
                continue
            headers = {"content-type": "application/json"}
            if endpoint.shared_secret is not None:
                headers[self.config.signature_header] = sign(body, endpoint.shared_secret)
            copies = 2 if self.faults.duplicate_webhook() else 1
            for copy in range(copies):
                delivery = Delivery(
                    id=next(self._ids),
                    topic=topic,
                    url=endpoint.url,
                    payload=payload,
                    body=body,
                    headers=headers,
                    created_at=self.clock.now(),
                    signed=endpoint.shared_secret is not None,
                    duplicate=copy > 0,
                )
                self.deliveries.append(delivery)
                created.append(delivery)
                if copy == 0 and self.faults.drop_webhook():
                    # Lost in transit: never sent, never retried; only later dunning attempts
                    # (or the operator) can recover, exactly what a connector must survive.
                    delivery.status = DELIVERY_DROPPED
                    logger.info("webhook %s to %s dropped (fault)", topic, endpoint.url)
                    break
        now = [d for d in created if d.status == DELIVERY_PENDING and not self._hold_back(d)]
        await asyncio.gather(*(self._attempt(d) for d in now))
        return created

    def _hold_back(self, delivery: Delivery) -> bool:
        """Roll the reordering dice; a held webhook is sent later by a task of its own."""
        if delivery.url in self._held or not self.faults.reorder_webhook():
            return False
        release = asyncio.Event()
        self._held[delivery.url] = release
        delivery.held_back = True
        self._in_flight.add(delivery.id)  # not a redelivery candidate while it waits
        task = asyncio.create_task(self._send_when_released(delivery, release))
        self._held_tasks.add(task)
        task.add_done_callback(self._held_tasks.discard)
        logger.info("webhook %s #%d to %s held back (fault)", delivery.topic, delivery.id,
                    delivery.url)  # fmt: skip
        return True

    async def _send_when_released(self, delivery: Delivery, release: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(release.wait(), REORDER_HOLD_SECONDS)
        except TimeoutError:
            pass
        finally:
            if self._held.get(delivery.url) is release:
                del self._held[delivery.url]
        await self._attempt(delivery)

    async def retry_due(self) -> int:
        """Redeliver every pending webhook whose real-time or clock back-off has passed."""
        now_real = time.monotonic()
        now_clock = self.clock.now()
        due = [
            d
            for d in self.deliveries
            if d.status == DELIVERY_PENDING
            and d.id not in self._in_flight
            and (
                (d.next_real is not None and d.next_real <= now_real)
                or (d.next_clock is not None and d.next_clock <= now_clock)
            )
        ]
        await asyncio.gather(*(self._attempt(d) for d in due))
        return len(due)

    async def _attempt(self, delivery: Delivery) -> None:
        self._in_flight.add(delivery.id)
        held = self._held.get(delivery.url)
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(
                delivery.url, content=delivery.body, headers=delivery.headers
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            self._in_flight.discard(delivery.id)
            if held is not None:
                # This webhook went out after the held one was picked: now let that one follow.
                held.set()
        delivery.attempts.append(
            DeliveryAttempt(at=self.clock.now(), status_code=status_code, error=error)
        )
        attempt = len(delivery.attempts)
        if status_code == 200:
            delivery.status = DELIVERY_DELIVERED
            delivery.next_real = delivery.next_clock = None
        elif attempt >= self.config.webhook_max_attempts:
            delivery.status = DELIVERY_FAILED
            delivery.next_real = delivery.next_clock = None
        else:
            real = self.config.webhook_real_backoff_seconds
            clock = self.config.webhook_clock_backoff_seconds
            delivery.next_real = time.monotonic() + real[min(attempt, len(real)) - 1]
            delivery.next_clock = self.clock.now() + timedelta(
                seconds=clock[min(attempt, len(clock)) - 1]
            )
        logger.info(
            "webhook %s #%d to %s attempt %d -> %s (%s)",
            delivery.topic,
            delivery.id,
            delivery.url,
            attempt,
            status_code if status_code is not None else error,
            delivery.status,
        )

    def pending(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status == DELIVERY_PENDING]
