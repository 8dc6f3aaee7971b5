"""The emulator instance: clock, store, faults, webhook dispatcher and billing engine wired up.

The FastAPI app exposes it as ``app.state.emulator`` so in-process tests can inspect or drive
it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .billing import BillingEngine
from .clock import EmulatorClock
from .config import CleengEmulatorConfig
from .errors import Unprocessable
from .faults import FaultInjector
from .models import PaymentDetails, WebhookEndpoint
from .money import to_major, to_minor
from .reference import TOPIC_DETAILS_DEACTIVATED, TOPIC_REFUND
from .store import SETTLED_STATUSES, EmulatorStore
from .webhooks import Delivery, WebhookDispatcher


class CleengEmulator:
    """Owns every moving part of one emulated Cleeng account."""

    def __init__(self, config: CleengEmulatorConfig) -> None:
        self.config = config
        self.clock = EmulatorClock()
        self.faults = FaultInjector(config.id_seed)
        self.store = EmulatorStore(config, self.clock)
        self.store.on_details_deactivated = self.details_deactivated
        self.webhooks = WebhookDispatcher(config, self.clock, self.faults, self._endpoints_of)
        self.billing = BillingEngine(config, self.store, self.clock, self.webhooks)
        if config.billing_enabled:
            self.clock.driver = self.billing.advance_to
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def _endpoints_of(self, topic: str) -> list[WebhookEndpoint]:
        return self.store.webhook_endpoints.get(topic, [])

    async def start(self) -> None:
        """Start the ticker that bills and redelivers webhooks as real time passes."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(
                self.billing.run_forever(self.config.billing_tick_seconds),
                name="cleeng-emulator-ticker",
            )

    async def stop(self) -> None:
        tasks = [*self._background, *([self._ticker] if self._ticker else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ticker = None
        await self.webhooks.aclose()

    def reset(self, *, keep_webhook_subscriptions: bool = True) -> None:
        """Back to a fresh start: data, clock, faults and delivery log.

        Webhook subscriptions survive by default: a running connector registered them at its
        start-up and would otherwise silently stop receiving webhooks.
        """
        self.clock.reset()
        self.faults.reset()
        self.webhooks.clear()
        self.store.clear(keep_webhook_endpoints=keep_webhook_subscriptions)

    def _publish_later(self, topic: str, data: dict[str, Any], payment_method_id: int) -> None:
        # Fire and forget: the API answer must not wait for another party's webhook handler.
        task = asyncio.create_task(self.webhooks.publish(topic, data, payment_method_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def details_deactivated(self, deactivated: list[PaymentDetails]) -> None:
        """Tell the old details' connector to cancel what it authorised on them.

        webhook-subscription-topics names ``paymentDetailsDeactivated`` but publishes no
        ``data`` for it: the keys sent here are [inferred].
        """
        for details in deactivated:
            self._publish_later(
                TOPIC_DETAILS_DEACTIVATED,
                {
                    "paymentDetailsId": details.id,
                    "customerId": details.customer_id,
                    "paymentMethodId": details.payment_method_id,
                    "token": details.token,
                },
                details.payment_method_id,
            )

    async def request_refund(
        self, payment_id: int, amount: float | None, reason: str | None
    ) -> tuple[dict[str, Any], list[Delivery]]:
        """Send ``refundPayment`` as Cleeng does when an operator refunds in its dashboard.

        The payment itself changes only when the connector PATCHes it to refunded.
        webhook-subscription-topics names ``refundPayment`` but publishes no ``data`` for it:
        the keys sent here are [inferred].
        """
        payment = self.store.get_payment(payment_id)
        if payment.status not in SETTLED_STATUSES:
            raise Unprocessable(f"Payment {payment_id} is {payment.status}, not captured")
        remaining = payment.amount_minor - payment.refunded_minor
        try:
            amount_minor = remaining if amount is None else to_minor(amount, payment.currency)
        except ValueError as exc:
            raise Unprocessable(f"Field 'amount' is invalid: {exc}") from exc
        if not 0 < amount_minor <= remaining:
            raise Unprocessable(
                f"Field 'amount' must be positive and at most the "
                f"{to_major(remaining, payment.currency)} {payment.currency} not yet refunded"
            )
        order = self.store.orders.get(payment.order_id)
        details = self.store.payment_details.get(payment.payment_details_id or -1)
        method_id = (
            details.payment_method_id
            if details
            else (order.payment_method_id if order else self.config.mollie_payment_method_id)
        )
        data = {
            "paymentId": payment.id,
            "orderId": payment.order_id,
            "customerId": payment.customer_id,
            "externalPaymentId": payment.external_payment_id,
            "amount": to_major(amount_minor, payment.currency),
            "currency": payment.currency,
            "reason": reason,
            # Not in Cleeng's list [?], but a paymentMethodId filter needs it to match on.
            "paymentMethodId": method_id,
        }
        deliveries = await self.webhooks.publish(TOPIC_REFUND, data, method_id)
        return self.webhooks.envelope(TOPIC_REFUND, data), deliveries
