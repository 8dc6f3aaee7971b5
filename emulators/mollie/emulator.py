"""The emulator as one object: clock, store, webhooks, faults and idempotency, plus the loop
that applies whatever falls due (expiries, settlements, webhook retries).

Concurrency: everything runs on the server's event loop. Store methods are synchronous, so a
request's check-and-act never interleaves with another's. The only awaits that span state
changes are in `advance` and the ticker; `_lock` keeps them from running at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from .clock import EmulatorClock
from .config import MollieEmulatorConfig
from .faults import FaultInjector
from .idempotency import IdempotencyStore
from .middleware import RequestJournal
from .models import Payment
from .store import MollieStore
from .webhooks import WebhookDispatcher

# A clock step never needs more rounds than this; more means something keeps rescheduling
# itself at the same instant, which would otherwise hang the advance call.
_MAX_ROUNDS = 100_000


class MollieEmulator:
    """State and time of one emulated Mollie account (exposed as `app.state.emulator`)."""

    def __init__(self, config: MollieEmulatorConfig) -> None:
        self.config = config
        self.clock = EmulatorClock()
        self.faults = FaultInjector()
        self.idempotency = IdempotencyStore(self.clock, config.idempotency_ttl_seconds)
        self.webhooks = WebhookDispatcher(config, self.clock, self.faults, on_enqueue=self.kick)
        self.store = MollieStore(config, self.clock, notify=self._notify)
        self.requests = RequestJournal()
        self._lock = asyncio.Lock()
        self._kick_pending = False
        self._background: set[asyncio.Task[None]] = set()

    def _notify(self, payment: Payment) -> None:
        if payment.webhook_url:
            self.webhooks.enqueue(payment.id, payment.webhook_url)

    async def run_due(self, *, wait: bool) -> None:
        """Apply state changes that are due and start webhook attempts that are due.

        With `wait`, also wait for every attempt in flight, so the caller sees their results.
        """
        self.store.process_due(self.clock.now())
        self.webhooks.start_due(self.clock.now())
        if wait:
            await self.webhooks.wait_in_flight()

    async def advance(self, seconds: float) -> datetime:
        """Move the clock forward, stepping through every due moment in order.

        Each scheduled change happens at its own time (so `paidAt` of a settled debit is
        exactly its settle time, and webhook retries are logged at their scheduled times),
        and the call returns only after all of them, including webhook attempts, are done.
        """
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        async with self._lock:
            step = timedelta(seconds=seconds)
            final_offset = self.clock.offset + step
            target = self.clock.now() + step
            await self.run_due(wait=True)
            for _ in range(_MAX_ROUNDS):
                due = [m for m in (self.store.next_due(), self.webhooks.next_due()) if m]
                if not due or min(due) > target:
                    break
                self.clock.move_to(min(due))
                await self.run_due(wait=True)
            self.clock.move_to(target)
            # "Advance by N" adds exactly N to the offset, however long the steps took.
            self.clock.raise_offset_to(final_offset)
            await self.run_due(wait=True)
            return self.clock.now()

    def kick(self) -> None:
        """Run what is due soon, without waiting for the next tick (no-op outside a loop)."""
        if self._kick_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._kick_pending = True
        self._spawn(loop, self._kicked())

    async def _kicked(self) -> None:
        self._kick_pending = False
        async with self._lock:
            await self.run_due(wait=False)

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def tick_forever(self) -> None:
        """Background ticker: real time passes too, so open payments expire on their own."""
        while True:
            await asyncio.sleep(self.config.tick_interval_seconds)
            if not self._lock.locked():
                async with self._lock:
                    await self.run_due(wait=False)

    async def reset(self) -> None:
        """Forget everything: records, deliveries, idempotency keys, faults, clock offset and
        the journal of API requests."""
        async with self._lock:
            await self.webhooks.cancel_all()
            self.store.clear()
            self.requests.clear()
            self.idempotency.clear()
            self.faults.reset()
            self.clock.reset()

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.webhooks.aclose()
