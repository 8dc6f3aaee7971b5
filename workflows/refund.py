"""Refund (`refund:{paymentId}:{requestKey}`) and chargeback reporting (`chargeback:{id}`).

A refund asked for by Cleeng is made once at Mollie (partial amounts allowed; Mollie refuses
anything beyond what remains), awaited until Mollie says `refunded` or `failed` (refunds take
hours: polling, or a nudge through the `payment_changed` signal), and only then PATCHed
`refunded` in Cleeng, once, with that refund's amount. A refund Mollie refuses or fails is
never reported as refunded: the workflow fails with `RefundRefused` / `RefundFailed`.

The ledger of a payment's refunds is Mollie's list of them, each carrying the request key (the
workflow id) and the run that made it in its metadata: concurrent and equal partial refunds
are separate Mollie refunds recorded separately, and a request replayed after its workflow's
history expired adopts the refund it already made instead of refunding or recording again.

A refund Mollie has not settled by `settle_within_seconds` (30 days: a queued refund waits for
the merchant's balance) fails the workflow with `RefundNotSettled`, naming the Mollie payment
and refund, and Cleeng is not told; until then the wait backs off to a few looks a day and
continues as new every `polls_per_run` polls, carrying the refund, so its history stays short.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

from clients import cleeng_contract as contract
from domain.operations import PaymentNotice, RefundInput, RefundView
from domain.refunds import (
    MOLLIE_REFUND_DONE,
    REFUND_PENDING,
    REFUND_REFUNDED,
    REFUND_REQUESTED,
    REFUND_TYPE_CHARGEBACK,
    ChargebackInput,
    CleengRefundInput,
    FollowUpView,
    RefundLookup,
    RefundRecordContext,
    RefundRequest,
    RefundStatusView,
    RefundWaitState,
    UnreportedChargeback,
    chargeback_workflow_id,
    refund_is_final,
)
from domain.refunds import (
    REFUND_FAILED as STATUS_FAILED,
)
from domain.refunds import (
    REFUND_NOT_SETTLED as STATUS_NOT_SETTLED,
)
from domain.refunds import (
    REFUND_REFUSED as STATUS_REFUSED,
)
from workflows.failures import failure_message, failure_type
from workflows.payment_watch import PaymentWatch, WaitEnd
from workflows.policies import CALL, POLL, RECORD, WALK

with workflow.unsafe.imports_passed_through():
    from activities.cleeng_activities import CleengActivities
    from activities.directory import WorkflowDirectory
    from activities.errors import (
        CHARGEBACK_UNMATCHED,
        REFUND_FAILED,
        REFUND_NOT_SETTLED,
        REFUND_REFUSED,
        REFUND_UNRECORDABLE,
    )
    from activities.mollie_activities import RUN_METADATA_KEY, MollieActivities

# Versioning: the wait for Mollie has a deadline and continues as new (runs from before keep
# polling without either).
PATCH_SETTLE_DEADLINE = "refund-settle-deadline"
# Versioning: one chargeback failing to report no longer stops the follow-up's others.
PATCH_REPORT_EVERY_CHARGEBACK = "report-every-chargeback"


@workflow.defn(name="Refund")
class RefundWorkflow:
    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        self._request = request
        self._status = REFUND_REQUESTED
        self._refund: RefundView | None = None
        self._error: str | None = None
        self._watch = PaymentWatch()

    @workflow.run
    async def run(self, request: RefundRequest) -> RefundStatusView:
        if request.waiting is not None:
            # Continued from an earlier run of this request: the refund is made; await it.
            waiting = request.waiting
            self._refund, self._status = waiting.refund, REFUND_PENDING
            return await self._settle(
                request,
                waiting.context,
                waiting.refund,
                settle_by=datetime.fromisoformat(waiting.settle_by),
                polls_done=waiting.polls_done,
            )
        info = workflow.info()
        # Before any money moves: what Cleeng will need to record the refund.
        context = await self._record_context(request)
        try:
            refund = await workflow.execute_activity_method(
                MollieActivities.refund_payment,
                RefundInput(
                    payment_id=request.external_payment_id,
                    amount=request.amount,
                    # Mollie takes two refunds with the same amount and description moments
                    # apart for a duplicate: the request key tells genuine ones apart.
                    description=(
                        f"Refund of Cleeng payment {request.cleeng_payment_id} "
                        f"({info.workflow_id.rsplit(':', 1)[-1][:8]})"
                    ),
                    idempotency_key=info.workflow_id,
                    metadata={
                        "cleengPaymentId": request.cleeng_payment_id,
                        RUN_METADATA_KEY: info.run_id,
                    },
                ),
                **RECORD,
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == REFUND_REFUSED:
                self._status, self._error = STATUS_REFUSED, cause.message
                raise ApplicationError(cause.message, type=REFUND_REFUSED) from error
            raise
        self._refund = refund
        inherited = refund.made_by_run not in (None, info.run_id)
        if inherited and refund.status == MOLLIE_REFUND_DONE:
            # An earlier run of this request (its history since expired) made this refund and
            # recorded it in Cleeng before it ended: a replay changes nothing.
            workflow.logger.info(
                "refund %s was made and recorded by run %s", refund.refund_id, refund.made_by_run
            )
            self._status = REFUND_REFUNDED
            return self.view()
        self._status = REFUND_PENDING
        settle_by = (
            workflow.now() + timedelta(seconds=request.settle_within_seconds)
            if workflow.patched(PATCH_SETTLE_DEADLINE)
            else None
        )
        return await self._settle(request, context, refund, settle_by=settle_by, polls_done=0)

    async def _settle(
        self,
        request: RefundRequest,
        context: RefundRecordContext,
        refund: RefundView,
        *,
        settle_by: datetime | None,
        polls_done: int,
    ) -> RefundStatusView:
        """Await Mollie's verdict on the refund, then record it in Cleeng once."""

        async def fetch() -> RefundView:
            seen = await workflow.execute_activity_method(
                MollieActivities.fetch_refund,
                RefundLookup(payment_id=request.external_payment_id, refund_id=refund.refund_id),
                **POLL,
            )
            self._refund = seen
            return seen

        waited = await self._watch.wait(
            request.external_payment_id,
            refund,
            lambda seen: refund_is_final(seen.status),
            fetch,
            request.poll_schedule_seconds,
            deadline=settle_by,
            polls_per_run=request.polls_per_run if settle_by is not None else None,
            polls_done=polls_done,
        )
        refund = waited.last_seen
        if waited.end is WaitEnd.CONTINUE_AS_NEW:
            assert settle_by is not None
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                replace(
                    request,
                    waiting=RefundWaitState(
                        refund=refund,
                        context=context,
                        settle_by=settle_by.isoformat(),
                        polls_done=waited.polls_done,
                    ),
                )
            )
        if waited.end is WaitEnd.DEADLINE_PASSED:
            await self._give_up_unsettled(request, refund)
        if refund.status != MOLLIE_REFUND_DONE:
            self._status = STATUS_FAILED
            self._error = f"Mollie refund {refund.refund_id} ended {refund.status}"
            raise ApplicationError(
                f"{self._error}; Cleeng payment {request.cleeng_payment_id} not marked refunded",
                type=REFUND_FAILED,
            )
        await workflow.execute_activity_method(
            CleengActivities.record_refund,
            CleengRefundInput(
                cleeng_payment_id=request.cleeng_payment_id,
                order_id=context.order_id,
                amount=request.amount,
                refund_type=request.refund_type,
                reason=request.reason,
                payment_operation=context.payment_operation,
            ),
            **RECORD,
        )
        self._status = REFUND_REFUNDED
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _give_up_unsettled(self, request: RefundRequest, refund: RefundView) -> None:
        """The deadline passed with the refund still open at Mollie: stop, loudly. Nothing is
        recorded in Cleeng, since the money may never leave (a queued refund can be cancelled)."""
        self._status = STATUS_NOT_SETTLED
        self._error = (
            f"Mollie refund {refund.refund_id} of payment {request.external_payment_id} is still "
            f"{refund.status} after {timedelta(seconds=request.settle_within_seconds)}; Cleeng "
            f"payment {request.cleeng_payment_id} not marked refunded: settle or cancel the "
            "refund at Mollie, then record the outcome in Cleeng by hand"
        )
        workflow.logger.error(self._error)
        await workflow.wait_condition(workflow.all_handlers_finished)
        raise ApplicationError(self._error, type=REFUND_NOT_SETTLED, non_retryable=True)

    async def _record_context(self, request: RefundRequest) -> RefundRecordContext:
        """orderId and paymentOperation, which "update-a-payment" requires with `refunded`:
        from the webhook, else from the metadata the connector gave the Mollie payment."""
        if request.order_id and request.payment_operation:
            return RefundRecordContext(
                order_id=request.order_id, payment_operation=request.payment_operation
            )
        known = await workflow.execute_activity_method(
            MollieActivities.refund_context, request.external_payment_id, **CALL
        )
        order_id = request.order_id or (known.order_id if known else None)
        if order_id is None:
            self._status = STATUS_REFUSED
            self._error = (
                f"payment {request.external_payment_id} carries no Cleeng order and the webhook "
                "named none: Cleeng could not record the refund, so none was made"
            )
            raise ApplicationError(self._error, type=REFUND_UNRECORDABLE)
        operation = request.payment_operation or (
            known.payment_operation if known else contract.PAYMENT_OPERATION_INITIAL
        )
        return RefundRecordContext(order_id=order_id, payment_operation=operation)

    @workflow.signal
    def payment_changed(self, notice: PaymentNotice) -> None:
        """Mollie (or an operator) says the payment or its refunds changed: look again."""
        self._watch.notify(self._request.external_payment_id)

    @workflow.query
    def view(self) -> RefundStatusView:
        return RefundStatusView(
            cleeng_payment_id=self._request.cleeng_payment_id,
            status=self._status,
            amount_minor=self._request.amount.minor,
            currency=self._request.amount.currency,
            mollie_refund_id=self._refund.refund_id if self._refund else None,
            error=self._error,
        )


@workflow.defn(name="PaymentFollowUp")
class PaymentFollowUpWorkflow:
    """A Mollie webhook for a payment whose own workflow has finished: report chargebacks.

    Each chargeback is reported once, by its own child workflow `chargeback:{id}`. One that
    cannot be reported (`ChargebackUnmatched`: no Cleeng payment is known) fails its child,
    is logged and listed in `view`, and the payment's other chargebacks are still reported.
    """

    @workflow.init
    def __init__(self, payment_id: str) -> None:
        self._payment_id = payment_id
        self._reported: list[str] = []
        self._unreported: list[UnreportedChargeback] = []

    @workflow.run
    async def run(self, payment_id: str) -> list[str]:
        chargebacks = await workflow.execute_activity_method(
            MollieActivities.list_chargebacks, payment_id, **WALK
        )
        for chargeback in chargebacks:
            try:
                await workflow.execute_child_workflow(
                    ChargebackWorkflow.run,
                    chargeback,
                    id=chargeback_workflow_id(chargeback.chargeback_id),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                continue  # reported by an earlier webhook
            except ChildWorkflowError as error:
                if not workflow.patched(PATCH_REPORT_EVERY_CHARGEBACK):
                    raise
                reason = f"{failure_type(error)}: {failure_message(error)}"
                self._unreported.append(
                    UnreportedChargeback(chargeback_id=chargeback.chargeback_id, error=reason)
                )
                workflow.logger.error(
                    "chargeback %s of Mollie payment %s not reported to Cleeng (%s); "
                    "reporting the payment's other chargebacks",
                    chargeback.chargeback_id,
                    payment_id,
                    reason,
                )
                continue
            self._reported.append(chargeback.chargeback_id)
        return list(self._reported)

    @workflow.query
    def view(self) -> FollowUpView:
        return FollowUpView(
            mollie_payment_id=self._payment_id,
            reported=list(self._reported),
            unreported=list(self._unreported),
        )


@workflow.defn(name="Chargeback")
class ChargebackWorkflow:
    """Report a Mollie chargeback to Cleeng as a `refunded` payment of type `chargeback`."""

    @workflow.run
    async def run(self, chargeback: ChargebackInput) -> str:
        context = await workflow.execute_activity_method(
            MollieActivities.refund_context, chargeback.mollie_payment_id, **CALL
        )
        metadata = await workflow.execute_activity_method(
            MollieActivities.payment_metadata, chargeback.mollie_payment_id, **CALL
        )
        owner = metadata.get("workflowId")
        cleeng_payment_id = (
            await workflow.execute_activity_method(
                WorkflowDirectory.cleeng_payment_recorded_by, owner, **CALL
            )
            if owner
            else None
        )
        if context is None or cleeng_payment_id is None:
            # Core API 3.1 lists no payments by order: the Cleeng payment is known only from
            # the workflow that recorded it, while its history is kept.
            raise ApplicationError(
                f"chargeback {chargeback.chargeback_id}: no Cleeng payment is known for "
                f"Mollie payment {chargeback.mollie_payment_id} (workflow {owner})",
                type=CHARGEBACK_UNMATCHED,
            )
        await workflow.execute_activity_method(
            CleengActivities.record_refund,
            CleengRefundInput(
                cleeng_payment_id=cleeng_payment_id,
                order_id=context.order_id,
                amount=chargeback.amount,
                refund_type=REFUND_TYPE_CHARGEBACK,
                reason=chargeback.reason or "chargeback",
                payment_operation=context.payment_operation,
            ),
            **RECORD,
        )
        return cleeng_payment_id
