"""The billing engine: sends the dunning webhooks of every renewal, driven by the clock.

For each active subscription paid through Mollie it walks the current cycle's schedule (see
:mod:`emulators.cleeng.dunning`) and, when an event's time has come and it is still needed,
sends ``subscriptionReadyForPaymentAuthorisation`` (until an authorisation exists for the
cycle), ``subscriptionReadyForPaymentCapture`` (until a capture exists) or
``subscriptionReadyForTermination`` (after due date + grace with nothing captured). A captured
renewal extends the subscription, which starts the next cycle.

It runs on every clock advance (stepping the clock through the events inside the jump, in
order) and on a background ticker, so renewals also happen as real time passes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .clock import EmulatorClock
from .config import CleengEmulatorConfig
from .dunning import ACTION_AUTHORISE, ACTION_CAPTURE, ACTION_TERMINATE, plan_cycle
from .models import PERIOD_BILLING_CYCLES, SUBSCRIPTION_ACTIVE, Subscription
from .reference import TOPIC_AUTHORISATION, TOPIC_CAPTURE, TOPIC_TERMINATION
from .store import EmulatorStore
from .webhooks import WebhookDispatcher
from .wire import subscription_event_data

logger = logging.getLogger("emulators.cleeng.billing")

TOPICS: Final = {
    ACTION_AUTHORISE: TOPIC_AUTHORISATION,
    ACTION_CAPTURE: TOPIC_CAPTURE,
    ACTION_TERMINATE: TOPIC_TERMINATION,
}
# The webhooks' ``dunningStatus`` spells "authorize" (Cleeng's example), while the
# subscription resource's ``nextPaymentAction`` spells "authorise".
DUNNING_STATUSES: Final = {
    ACTION_AUTHORISE: "authorize",
    ACTION_CAPTURE: "capture",
    ACTION_TERMINATE: "terminate",
}
_MAX_STEPS: Final = 10_000


@dataclass(frozen=True, kw_only=True, order=True)
class DueEvent:
    """A dunning event whose time has come or will come, for one subscription's cycle."""

    at: datetime
    rank: int
    subscription_id: int
    due: datetime
    action: str
    key: str


class BillingEngine:
    """Finds the dunning events that are due and publishes them through the dispatcher."""

    def __init__(
        self,
        config: CleengEmulatorConfig,
        store: EmulatorStore,
        clock: EmulatorClock,
        dispatcher: WebhookDispatcher,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        # One pass at a time: the ticker and a clock advance must not both send an event.
        self._lock = asyncio.Lock()

    def _billable(self) -> list[Subscription]:
        return [
            s
            for s in self.store.subscriptions.values()
            if s.status == SUBSCRIPTION_ACTIVE
            and s.payment_method_id == self.config.mollie_payment_method_id
        ]

    def _needed(self, subscription: Subscription, action: str) -> bool:
        if action == ACTION_AUTHORISE:
            return not self.store.cycle_authorised(subscription)
        return not self.store.cycle_captured(subscription)

    def pending_events(self) -> list[DueEvent]:
        """Every event still to send in the current cycles, earliest first."""
        events: list[DueEvent] = []
        for subscription in self._billable():
            settings = self.store.dunning.get(
                subscription.payment_method_id, PERIOD_BILLING_CYCLES[subscription.period]
            )
            sent = self.store.sent_events(subscription)
            for event in plan_cycle(subscription.date_to, settings, subscription.cycle_started_at):
                if event.key not in sent and self._needed(subscription, event.action):
                    events.append(
                        DueEvent(
                            at=event.at,
                            rank=event.rank,
                            subscription_id=subscription.id,
                            due=subscription.date_to,
                            action=event.action,
                            key=event.key,
                        )
                    )
        return sorted(events)

    async def run_due(self) -> set[int]:
        """Send every event due by now; returns the subscriptions that got one."""
        async with self._lock:
            return await self._run_due_locked()

    async def _run_due_locked(self, limit: int | None = None) -> set[int]:
        """Send the events due by now, earliest first (at most `limit` of them)."""
        touched: set[int] = set()
        sent = 0
        for event in self.pending_events():
            if event.at > self.clock.now() or (limit is not None and sent >= limit):
                break
            subscription = self.store.subscriptions.get(event.subscription_id)
            # Re-check: an earlier webhook's receiver may have changed things meanwhile.
            if (
                subscription is None
                or subscription.status != SUBSCRIPTION_ACTIVE
                or subscription.date_to != event.due
                or event.key in self.store.sent_events(subscription)
                or not self._needed(subscription, event.action)
            ):
                continue
            self.store.sent_events(subscription).add(event.key)
            touched.add(subscription.id)
            sent += 1
            data = subscription_event_data(
                self.store, subscription, DUNNING_STATUSES[event.action], event.at
            )
            logger.info(
                "subscription %s: %s for cycle due %s",
                subscription.id,
                event.action,
                data["expirationDate"],
            )
            await self.dispatcher.publish(
                TOPICS[event.action], data, subscription.payment_method_id
            )
        return touched

    async def advance_to(self, target: datetime, settle_seconds: float) -> None:
        """Clock driver: step to each due event inside the jump and send it, in order.

        With `settle_seconds` the engine sends one webhook at a time and waits, after each,
        up to that long for the receiver to act on it (a payment recorded, the subscription
        changed), so one big jump plays out like real time: authorised, then captured, then
        the next cycle, instead of every webhook of the month at once. One at a time matters
        when events share an instant (several subscriptions due the same second, or an
        authorisation and the capture at the due date): the next one is only sent, if still
        needed, once the receiver has answered the last.
        """
        one_by_one = 1 if settle_seconds > 0 else None
        async with self._lock:
            for _ in range(_MAX_STEPS):
                upcoming = [e for e in self.pending_events() if e.at <= target]
                if not upcoming:
                    break
                step = upcoming[0].at
                if step > self.clock.now():
                    self.clock.jump_to(step)
                touched = await self._run_due_locked(one_by_one)
                await self.dispatcher.retry_due()
                if touched and settle_seconds > 0:
                    await self._settle(touched, settle_seconds)
            if target > self.clock.now():
                self.clock.jump_to(target)
            await self._run_due_locked()
        await self.dispatcher.retry_due()

    async def _settle(self, subscription_ids: set[int], seconds: float) -> None:
        def snapshot() -> list[tuple[object, ...]]:
            result: list[tuple[object, ...]] = []
            for sub_id in sorted(subscription_ids):
                sub = self.store.subscriptions.get(sub_id)
                if sub is None:
                    result.append((sub_id,))
                    continue
                payments = self.store.cycle_payments(sub)
                result.append((sub.date_to, sub.status, tuple(p.status for p in payments)))
            return result

        before = snapshot()
        await self.store.wait_until(lambda: snapshot() != before, seconds)

    async def run_forever(self, interval: float) -> None:
        """Background ticker: real time moves the emulator clock too."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.config.billing_enabled:
                    await self.run_due()
                await self.dispatcher.retry_due()
            except Exception:  # keep ticking; one bad pass must not stop renewals
                logger.exception("billing tick failed")
