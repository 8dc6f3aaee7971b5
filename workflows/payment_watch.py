"""Waiting for Mollie to settle a payment or a refund: a webhook signal, or polling.

Mollie's webhook only says "payment X changed"; the workflow looks the payment up itself, so a
forged or duplicated webhook can at most cause one extra look-up. Without webhooks the watch
polls on a schedule that backs off to a few looks a day (`poll_delay_seconds`). A caller may
bound the wait with a deadline, and may ask it to stop after some polls (and
`is_continue_as_new_suggested()`) so the workflow can continue as new with a short history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.exceptions import CancelledError, FailureError

from domain.operations import GatewayPaymentView, MolliePaymentRef, poll_delay_seconds
from workflows.policies import LOCAL_POLL, POLL

with workflow.unsafe.imports_passed_through():
    from activities.mollie_activities import MollieActivities

_Seen = TypeVar("_Seen")

# Versioning: a failed look no longer fails the wait (histories whose wait failed on one replay
# as they ran). The longest wait is a renewal's, hence RecurringBilling's date.
# remove after 2027-03-17: when no workflow started before the release after bf66b6e can still run
PATCH_POLL_NEVER_FAILS_THE_WAIT = "poll-never-fails-the-wait"


class WaitEnd(StrEnum):
    SETTLED = "settled"
    DEADLINE_PASSED = "deadline_passed"
    CONTINUE_AS_NEW = "continue_as_new"
    """The run has polled enough: continue as new, carrying `polls_done`."""


@dataclass(frozen=True)
class Waited(Generic[_Seen]):
    last_seen: _Seen
    end: WaitEnd
    polls_done: int


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
        is_done: Callable[[str], bool],
        schedule: tuple[int, ...],
        *,
        local: bool = False,
        before_waiting: Callable[[], None] | None = None,
    ) -> GatewayPaymentView:
        """Re-check on each webhook, else on the backing-off `schedule`, until `is_done` says
        the payment's status is the one awaited. Mollie ends every payment status in days to
        weeks, and the backoff keeps even weeks to a few hundred history events. `local` looks
        with a local activity; `before_waiting` runs once if there is anything to wait for."""

        async def fetch() -> GatewayPaymentView:
            if local:
                return await workflow.execute_local_activity_method(
                    MollieActivities.fetch_payment,
                    MolliePaymentRef(payment_id=payment.payment_id),
                    **LOCAL_POLL,
                )
            return await workflow.execute_activity_method(
                MollieActivities.fetch_payment,
                MolliePaymentRef(payment_id=payment.payment_id),
                **POLL,
            )

        if before_waiting is not None and not is_done(payment.status):
            before_waiting()
        waited = await self.wait(
            payment.payment_id, payment, lambda seen: is_done(seen.status), fetch, schedule
        )
        return waited.last_seen

    async def wait(
        self,
        payment_id: str,
        seen: _Seen,
        is_done: Callable[[_Seen], bool],
        fetch: Callable[[], Awaitable[_Seen]],
        schedule: tuple[int, ...],
        *,
        deadline: datetime | None = None,
        polls_per_run: int | None = None,
        polls_done: int = 0,
    ) -> Waited[_Seen]:
        """Look again (`fetch`) on each webhook for `payment_id`, else after each delay, until
        `is_done`, the `deadline` passes (one last look is made at it), or, with
        `polls_per_run`, this run has looked that often or Temporal suggests continuing as new.
        `polls_done` carries the backoff over from an earlier run."""
        looked = 0
        while not is_done(seen):
            if polls_per_run is not None and (
                looked >= polls_per_run or workflow.info().is_continue_as_new_suggested()
            ):
                return Waited(seen, WaitEnd.CONTINUE_AS_NEW, polls_done)
            delay = timedelta(seconds=poll_delay_seconds(schedule, polls_done))
            if deadline is not None:
                remaining = deadline - workflow.now()
                if remaining <= timedelta(0):
                    return Waited(seen, WaitEnd.DEADLINE_PASSED, polls_done)
                delay = min(delay, remaining)
            try:
                await workflow.wait_condition(lambda: payment_id in self._changed, timeout=delay)
            except TimeoutError:
                polls_done += 1
            self._changed.discard(payment_id)
            try:
                seen = await fetch()
            except FailureError as error:
                # (A failed local activity raises its bare cause, hence FailureError.)
                # The money was asked for already: a look that fails for good (a rotated key's
                # 401, a bug) must not end the wait, or the outcome is never recorded. Say so
                # loudly and look again at the next turn of the schedule; a fix deployed
                # meanwhile makes the next look succeed.
                if isinstance(error, CancelledError) or not workflow.patched(
                    PATCH_POLL_NEVER_FAILS_THE_WAIT
                ):
                    raise
                workflow.logger.error(
                    "looking up %s failed (%s); looking again later",
                    payment_id,
                    error.cause or error,
                )
                polls_done += 1
            looked += 1
        return Waited(seen, WaitEnd.SETTLED, polls_done)
