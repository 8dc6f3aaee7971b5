"""Classic Mollie webhooks: `POST id=tr_...` to the payment's webhookUrl, retried on failure.

Mollie tries 10 times over about 26 hours. The gaps between attempts are 1, 2, 4, 8, 16 and
29 minutes, then 1, 2 and 22 hours; each attempt is due at its offset from the first attempt on
the emulator clock, so a test can walk through the whole schedule by advancing the clock.
Every attempt is kept in a log for inspection.

The reordering fault holds an attempt back until the next attempt to the same receiver (the
webhook URL without its query) has gone out, or `REORDER_HOLD_SECONDS` passed, so a receiver
sees two webhooks in the opposite order. One attempt at a time is held per receiver; while one
is held, the next is always sent, so the order flips even at rate 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from .clock import EmulatorClock, iso
from .config import MollieEmulatorConfig
from .faults import FaultInjector
from .models import new_id

logger = logging.getLogger("emulators.mollie.webhooks")

_GAPS_MINUTES = (1, 2, 4, 8, 16, 29, 60, 120, 22 * 60)
# Offset of attempt n from the first attempt: 0, 1, 3, 7, 15, 31, 60, 120, 240, 1560 minutes.
RETRY_OFFSETS: tuple[timedelta, ...] = tuple(
    timedelta(minutes=sum(_GAPS_MINUTES[:n])) for n in range(len(_GAPS_MINUTES) + 1)
)
# Longest a reordered webhook waits for the next one to its receiver (real time).
REORDER_HOLD_SECONDS = 2.0


@dataclass
class Attempt:
    """One try at delivering a webhook."""

    number: int
    scheduled_at: datetime
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    dropped: bool = False
    duplicated: bool = False
    held_back: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "scheduledAt": iso(self.scheduled_at),
            "at": iso(self.at),
            "statusCode": self.status_code,
            "error": self.error,
            "durationMs": round(self.duration_ms, 1),
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "heldBack": self.held_back,
        }


@dataclass
class Delivery:
    """The webhook for one change of one payment, with all its attempts."""

    id: str
    payment_id: str
    url: str
    created_at: datetime
    state: str = "scheduled"  # scheduled | delivered | failed | dropped
    next_attempt_at: datetime | None = None
    attempts: list[Attempt] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "paymentId": self.payment_id,
            "url": self.url,
            "createdAt": iso(self.created_at),
            "state": self.state,
            "nextAttemptAt": iso(self.next_attempt_at),
            "attempts": [a.to_json() for a in self.attempts],
        }


class WebhookDispatcher:
    """Schedules, sends and retries webhooks; never blocks the API on a slow receiver."""

    def __init__(
        self,
        config: MollieEmulatorConfig,
        clock: EmulatorClock,
        faults: FaultInjector,
        on_enqueue: Callable[[], None],
    ) -> None:
        self._config = config
        self._clock = clock
        self._faults = faults
        self._on_enqueue = on_enqueue
        self._http: httpx.AsyncClient | None = None
        self.deliveries: list[Delivery] = []
        # The deliveries still to be tried or being tried, by id: a tick looks at these, not
        # at the whole log, which only grows.
        self._open: dict[str, Delivery] = {}
        # Receiver -> the release of the one attempt held back for it (reordering fault).
        self._held: dict[str, asyncio.Event] = {}

    def enqueue(self, payment_id: str, url: str) -> None:
        if not self._config.deliver_webhooks:
            return
        now = self._clock.now()
        delivery = Delivery(
            id=new_id("whk_"), payment_id=payment_id, url=url, created_at=now, next_attempt_at=now
        )
        self.deliveries.append(delivery)
        self._open[delivery.id] = delivery
        self._on_enqueue()

    def restore(self, deliveries: list[Delivery]) -> None:
        """Take over the log of deliveries saved by an earlier run."""
        self.deliveries[:] = deliveries
        self._open = {d.id: d for d in deliveries if d.state == "scheduled"}

    def _forget_finished(self) -> None:
        finished = [
            key for key, d in self._open.items() if d.state != "scheduled" and d.task is None
        ]
        for key in finished:
            del self._open[key]

    def next_due(self) -> datetime | None:
        self._forget_finished()
        return min(
            (
                d.next_attempt_at
                for d in self._open.values()
                if d.state == "scheduled" and d.next_attempt_at and d.task is None
            ),
            default=None,
        )

    def start_due(self, now: datetime) -> None:
        """Start an attempt for every delivery that is due and not already being tried."""
        self._forget_finished()
        for delivery in self._open.values():
            if (
                delivery.state == "scheduled"
                and delivery.task is None
                and delivery.next_attempt_at is not None
                and delivery.next_attempt_at <= now
            ):
                delivery.task = asyncio.get_running_loop().create_task(self._attempt(delivery))

    async def wait_in_flight(self) -> None:
        tasks = [d.task for d in self._open.values() if d.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            await self._send(delivery)
        finally:
            delivery.task = None

    async def _send(self, delivery: Delivery) -> None:
        number = len(delivery.attempts) + 1
        scheduled = delivery.next_attempt_at or self._clock.now()
        attempt = Attempt(number=number, scheduled_at=scheduled, at=self._clock.now())
        delivery.attempts.append(attempt)
        if self._faults.drop_webhook():
            # A lost webhook: Mollie believes it was delivered, so it never retries.
            attempt.dropped = True
            delivery.state = "dropped"
            delivery.next_attempt_at = None
            return
        sends = 2 if self._faults.duplicate_webhook() else 1
        attempt.duplicated = sends == 2
        receiver = _receiver_of(delivery.url)
        release = self._held.get(receiver)
        if release is None and self._faults.reorder_webhook():
            attempt.held_back = True
            await self._hold_back(receiver)
        started = time.perf_counter()
        ok = False
        for _ in range(sends):
            try:
                response = await self._client().post(
                    delivery.url,
                    data={"id": delivery.payment_id},
                    timeout=self._config.webhook_timeout_seconds,
                )
                attempt.status_code = response.status_code
                ok = ok or response.is_success
            except httpx.HTTPError as err:
                attempt.error = f"{type(err).__name__}: {err}"
        if release is not None:
            # This webhook went out after the held one was picked: now let that one follow.
            release.set()
        attempt.duration_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "webhook %s attempt %d to %s -> %s",
            delivery.payment_id,
            number,
            delivery.url,
            attempt.status_code or attempt.error,
        )
        if ok:
            delivery.state = "delivered"
            delivery.next_attempt_at = None
        elif number < len(RETRY_OFFSETS):
            delivery.next_attempt_at = delivery.created_at + RETRY_OFFSETS[number]
        else:
            delivery.state = "failed"
            delivery.next_attempt_at = None

    async def _hold_back(self, receiver: str) -> None:
        """Wait until the next attempt to `receiver` went out, or the hold bound passed."""
        release = asyncio.Event()
        self._held[receiver] = release
        try:
            await asyncio.wait_for(release.wait(), REORDER_HOLD_SECONDS)
        except TimeoutError:
            pass
        finally:
            if self._held.get(receiver) is release:
                del self._held[receiver]

    def _client(self) -> httpx.AsyncClient:
        # Created lazily so it belongs to the loop that serves the app.
        if self._http is None:
            self._http = httpx.AsyncClient(
                headers={"User-Agent": "Mollie-Emulator-Webhook/1.0"}, follow_redirects=False
            )
        return self._http

    async def cancel_all(self) -> None:
        tasks = [d.task for d in self.deliveries if d.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.deliveries.clear()
        self._open.clear()
        self._held.clear()

    async def aclose(self) -> None:
        await self.cancel_all()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _receiver_of(url: str) -> str:
    """The endpoint a webhook goes to, without the query that names what it is about."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
