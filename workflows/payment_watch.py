"""Waiting for a Mollie payment to settle: a webhook signal, or polling when webhooks are lost.

Mollie's webhook only says "payment X changed"; the workflow looks the payment up itself, so a
forged or duplicated webhook can at most cause one extra look-up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.mollie_activities import MollieActivities
    from domain.operations import GatewayPaymentView
    from workflows.policies import CALL


class PaymentWatch:
    """One per workflow; its `notify` is called from the workflow's webhook signal."""

    # Bound on remembered webhook ids, so a flood of forged ids cannot grow workflow state.
    MAX_PENDING = 50

    def __init__(self) -> None:
        # Ids whose webhook came and was not yet acted on (it may arrive before the wait).
        self._changed: set[str] = set()

    def notify(self, payment_id: str) -> None:
        if len(self._changed) >= self.MAX_PENDING:
            # Forget stale ids; a real one forgotten here is found by the next poll.
            self._changed.clear()
        self._changed.add(payment_id)

    async def until(
        self,
        payment: GatewayPaymentView,
        settled: Callable[[str], bool],
        schedule: tuple[int, ...],
    ) -> GatewayPaymentView:
        """Re-check on each webhook, else after each delay of `schedule` (last one repeats)."""
        payment_id = payment.payment_id
        attempt = 0
        while not settled(payment.status):
            delay = schedule[min(attempt, len(schedule) - 1)]
            try:
                await workflow.wait_condition(
                    lambda: payment_id in self._changed, timeout=timedelta(seconds=delay)
                )
            except TimeoutError:
                attempt += 1
            self._changed.discard(payment_id)
            payment = await workflow.execute_activity_method(
                MollieActivities.fetch_payment,
                payment.payment_id,
                **CALL,
            )
        return payment
