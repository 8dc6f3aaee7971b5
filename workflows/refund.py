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
from domain.money import Money
from domain.operations import (
    MolliePaymentRef,
    PaymentNotice,
    RefundInput,
    RefundView,
    WorkflowIds,
    WorkflowRef,
)
from domain.reconciliation import NOT_FOUND
from domain.refunds import (
    CHARGEBACK_NOTHING_TO_RECORD,
    CHARGEBACK_RECORDED,
    CHARGEBACK_RECORDING,
    CHARGEBACK_REVERSED,
    CHARGEBACK_REVERSED_AFTER_REPORT,
    CHARGEBACK_UNMATCHED_STATUS,
    CLEENG_RECORD_UNKNOWN,
    MOLLIE_REFUND_DONE,
    REFUND_CHARGED_BACK,
    REFUND_PENDING,
    REFUND_RECORD_UNKNOWN,
    REFUND_REFUNDED,
    REFUND_REQUESTED,
    REFUND_TYPE_CHARGEBACK,
    RESOLVE_RECORD_SIGNAL,
    ChargebackInput,
    ChargebackShare,
    ChargebackView,
    CleengRefundInput,
    FollowUpView,
    RecordResolution,
    RefundLookup,
    RefundRecordContext,
    RefundRequest,
    RefundStatusView,
    RefundWaitState,
    UnreportedChargeback,
    chargeback_workflow_id,
    follow_up_workflow_id,
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

# Versioning (docs/development.md "Patches and their removal dates"). Deprecated, the release
# that shipped (bf66b6e) always took the new side and its histories carry these markers, which
# only a call of `deprecate_patch` lets replay: the wait for Mollie has a deadline and continues
# as new; one chargeback failing to report does not stop the follow-up's others.
# remove after 2027-02-05: when no workflow started before the release after bf66b6e can still run
PATCH_SETTLE_DEADLINE = "refund-settle-deadline"
# remove after 2027-01-07: when no workflow started before the release after bf66b6e can still run
PATCH_REPORT_EVERY_CHARGEBACK = "report-every-chargeback"
# Versioning: a refund an earlier run of the request made and Mollie settled is no longer
# counted as recorded in Cleeng (that run may have failed RefundNotSettled before it settled):
# it is held for a person. Runs from before completed `refunded` at once.
# remove after 2027-02-05: when no workflow started before the release after bf66b6e can still run
PATCH_INHERITED_REFUND_UNCONFIRMED = "inherited-refund-unconfirmed"
# Versioning: a chargeback child that failed is started again (ALLOW_DUPLICATE_FAILED_ONLY), and
# one already started counts as reported only once it completed. Runs from before started it
# with REJECT_DUPLICATE and counted any earlier start as reported.
# remove after 2027-01-07: when no workflow started before the release after bf66b6e can still run
PATCH_RETRY_FAILED_CHARGEBACK = "retry-failed-chargeback"
# Versioning: a chargeback is recorded in Cleeng only for the part of the payment its refunds
# and earlier chargebacks (Mollie's ledger) had not given back, and not at all when nothing is
# left; Cleeng refuses a refunded total above the payment. Runs from before recorded Mollie's
# whole amount.
# remove after 2027-01-07: when no workflow started before the release after bf66b6e can still run
PATCH_CHARGEBACK_AFTER_REFUNDS = "chargeback-after-refunds"
# Versioning: a refund Mollie refuses is checked for chargebacks: they are reported to Cleeng,
# and when they gave back at least the refund's amount the request completes `charged_back`
# instead of failing. Runs from before failed `RefundRefused` at once.
# remove after 2027-02-05: when no workflow started before this release can still run
PATCH_REFUSED_AFTER_CHARGEBACK = "refund-refused-after-chargeback"


class CleengRecordHold:
    """A refund whose record in Cleeng is in doubt, waiting for a person's answer.

    Core API 3.1 documents no read of a payment, and the refunded amount a PATCH carries is one
    refund's: writing again after a lost reply could record the refund twice, and not writing
    could leave it unrecorded. Neither is guessed: the workflow logs the question, shows it in
    its view and waits for the `resolve_record` signal (`{"recorded": true}` when Cleeng's
    payment shows the refund, `false` to write it now)."""

    def __init__(self) -> None:
        self.question: str | None = None
        self._answer: RecordResolution | None = None

    def resolve(self, answer: RecordResolution) -> None:
        if self.question is not None:
            self._answer = answer

    async def ask(self, question: str) -> bool:
        """Wait for the answer; True when Cleeng holds the record already."""
        self.question, self._answer = question, None
        workflow.logger.error(question)
        await workflow.wait_condition(lambda: self._answer is not None)
        assert self._answer is not None
        recorded = self._answer.recorded
        self.question, self._answer = None, None
        return recorded

    async def record(self, record: CleengRefundInput) -> None:
        """PATCH the refund in Cleeng once; a lost reply is put to a person, never repeated
        blindly."""
        while True:
            try:
                await workflow.execute_activity_method(
                    CleengActivities.record_refund, record, **RECORD
                )
                return
            except ActivityError as error:
                if failure_type(error) != CLEENG_RECORD_UNKNOWN:
                    raise
                question = (
                    f"{failure_message(error)}. Check Cleeng payment {record.cleeng_payment_id}, "
                    f"then signal {RESOLVE_RECORD_SIGNAL} with recorded=true if it shows this "
                    f"{record.refund_type} of {record.amount}, recorded=false to write it again"
                )
            if await self.ask(question):
                return


@workflow.defn(name="Refund")
class RefundWorkflow:
    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        self._request = request
        self._status = REFUND_REQUESTED
        self._refund: RefundView | None = None
        self._error: str | None = None
        self._watch = PaymentWatch()
        self._hold = CleengRecordHold()

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
                if workflow.patched(
                    PATCH_REFUSED_AFTER_CHARGEBACK
                ) and await self._charged_back_instead(request, cause.message):
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return self.view()
                raise ApplicationError(self._error, type=REFUND_REFUSED) from error
            raise
        self._refund = refund
        inherited = refund.made_by_run not in (None, info.run_id)
        if inherited and refund.status == MOLLIE_REFUND_DONE:
            if workflow.patched(PATCH_INHERITED_REFUND_UNCONFIRMED):
                # An earlier run of this request (its history since expired) made this refund.
                # Whether it recorded it in Cleeng is not known: it may have ended before Mollie
                # settled (RefundNotSettled) or failed recording. Cleeng cannot be read, and a
                # second PATCH could count the refund twice: a person looks.
                recorded = await self._hold.ask(
                    f"Mollie refund {refund.refund_id} of payment {request.external_payment_id} "
                    f"was made by an earlier run ({refund.made_by_run}) of this request and is "
                    "refunded; whether that run recorded it in Cleeng is not known. Check Cleeng "
                    f"payment {request.cleeng_payment_id}, then signal {RESOLVE_RECORD_SIGNAL} "
                    f"with recorded=true if it shows this refund of {request.amount}, "
                    "recorded=false to record it now"
                )
                if not recorded:
                    await self._hold.record(self._record_input(request, context))
                self._status = REFUND_REFUNDED
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self.view()
            # Before the patch: counted as recorded by the earlier run.
            workflow.logger.info(
                "refund %s was made and recorded by run %s", refund.refund_id, refund.made_by_run
            )
            self._status = REFUND_REFUNDED
            return self.view()
        self._status = REFUND_PENDING
        workflow.deprecate_patch(PATCH_SETTLE_DEADLINE)
        settle_by = workflow.now() + timedelta(seconds=request.settle_within_seconds)
        return await self._settle(request, context, refund, settle_by=settle_by, polls_done=0)

    async def _settle(
        self,
        request: RefundRequest,
        context: RefundRecordContext,
        refund: RefundView,
        *,
        settle_by: datetime,
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
            polls_per_run=request.polls_per_run,
            polls_done=polls_done,
        )
        refund = waited.last_seen
        if waited.end is WaitEnd.CONTINUE_AS_NEW:
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
        await self._hold.record(self._record_input(request, context))
        self._status = REFUND_REFUNDED
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _charged_back_instead(self, request: RefundRequest, refusal: str) -> bool:
        """Mollie refused the refund. When the payment's money went back by chargeback (a
        chargeback whose webhook was lost leaves Cleeng thinking it can still be refunded),
        the chargebacks are reported to Cleeng by a follow-up, each once by its own workflow.
        True when those recorded gave back at least what the refund asked: then nothing is
        owed and the request ends `charged_back`; otherwise the refusal stands, for a person,
        naming the chargebacks."""
        chargebacks = await workflow.execute_activity_method(
            MollieActivities.list_chargebacks,
            MolliePaymentRef(payment_id=request.external_payment_id),
            **WALK,
        )
        standing = [c for c in chargebacks if c.reversed_at is None]
        if not standing:
            return False
        reported = await workflow.execute_child_workflow(
            PaymentFollowUpWorkflow.run,
            request.external_payment_id,
            id=follow_up_workflow_id(request.external_payment_id, workflow.info().workflow_id),
            # The follow-up reports each chargeback once whoever starts it: a later run of
            # this request may start it again.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        named = ", ".join(f"{c.chargeback_id} of {c.amount}" for c in standing)
        given_back = sum(
            c.amount.minor
            for c in standing
            if c.chargeback_id in reported and c.amount.currency == request.amount.currency
        )
        if given_back >= request.amount.minor:
            self._status = REFUND_CHARGED_BACK
            self._error = (
                f"nothing refunded: the money of Mollie payment {request.external_payment_id} "
                f"went back by chargeback ({named}), recorded in Cleeng payment "
                f"{request.cleeng_payment_id} by its chargeback workflow; Mollie: {refusal}"
            )
            workflow.logger.warning(self._error)
            return True
        self._error = (
            f"{refusal}; the payment's chargebacks ({named}) were reported to Cleeng "
            f"({len(reported)} recorded) and give back less than this refund of {request.amount}"
        )
        return False

    @staticmethod
    def _record_input(request: RefundRequest, context: RefundRecordContext) -> CleengRefundInput:
        return CleengRefundInput(
            cleeng_payment_id=request.cleeng_payment_id,
            order_id=context.order_id,
            amount=request.amount,
            refund_type=request.refund_type,
            reason=request.reason,
            payment_operation=context.payment_operation,
        )

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
            MollieActivities.refund_context,
            MolliePaymentRef(payment_id=request.external_payment_id),
            **CALL,
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

    @workflow.signal(name=RESOLVE_RECORD_SIGNAL)
    def resolve_record(self, answer: RecordResolution) -> None:
        """A person checked Cleeng for a refund whose record was in doubt."""
        self._hold.resolve(answer)

    @workflow.query
    def view(self) -> RefundStatusView:
        held = self._hold.question
        return RefundStatusView(
            cleeng_payment_id=self._request.cleeng_payment_id,
            status=REFUND_RECORD_UNKNOWN if held is not None else self._status,
            amount_minor=self._request.amount.minor,
            currency=self._request.amount.currency,
            mollie_refund_id=self._refund.refund_id if self._refund else None,
            error=held if held is not None else self._error,
        )


@workflow.defn(name="PaymentFollowUp")
class PaymentFollowUpWorkflow:
    """A Mollie webhook for a payment whose own workflow has finished: report chargebacks.

    Each chargeback is reported once, by its own child workflow `chargeback:{id}`. One that
    cannot be reported (`ChargebackUnmatched`: no Cleeng payment is known) fails its child,
    is logged and listed in `view`, and the payment's other chargebacks are still reported; a
    later webhook starts the failed child again, so a failure is never taken for a report.
    A chargeback Mollie reversed (`reversedAt`: the merchant won the dispute) is not reported;
    one reported before its reversal is listed for a person, since Core API 3.1 documents no
    call that takes a refund back.
    """

    @workflow.init
    def __init__(self, payment_id: str) -> None:
        self._payment_id = payment_id
        self._reported: list[str] = []
        self._unreported: list[UnreportedChargeback] = []
        self._reversed: list[str] = []

    @workflow.run
    async def run(self, payment_id: str) -> list[str]:
        chargebacks = await workflow.execute_activity_method(
            MollieActivities.list_chargebacks, MolliePaymentRef(payment_id=payment_id), **WALK
        )
        for chargeback in chargebacks:
            child_id = chargeback_workflow_id(chargeback.chargeback_id)
            # No patch: the release that shipped (bf66b6e) read no reversal, so the chargebacks
            # its histories list never carry one.
            if chargeback.reversed_at is not None:
                await self._note_reversal(chargeback, child_id)
                continue
            retry_failed = workflow.patched(PATCH_RETRY_FAILED_CHARGEBACK)
            try:
                await workflow.execute_child_workflow(
                    ChargebackWorkflow.run,
                    chargeback,
                    id=child_id,
                    id_reuse_policy=(
                        WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
                        if retry_failed
                        else WorkflowIDReusePolicy.REJECT_DUPLICATE
                    ),
                )
            except WorkflowAlreadyStartedError:
                if not retry_failed:
                    continue  # before the patch: counted as reported by an earlier webhook
                # Completed (reported), or running under another follow-up; a failed one would
                # have been started again above.
                if await self._child_status(child_id) == "COMPLETED":
                    self._reported.append(chargeback.chargeback_id)
                else:
                    workflow.logger.info(
                        "chargeback %s is being reported by another follow-up", child_id
                    )
                continue
            except ChildWorkflowError as error:
                workflow.deprecate_patch(PATCH_REPORT_EVERY_CHARGEBACK)
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

    async def _child_status(self, child_id: str) -> str:
        [state] = await workflow.execute_activity_method(
            WorkflowDirectory.workflow_states, WorkflowIds(workflow_ids=[child_id]), **CALL
        )
        return state.status

    async def _note_reversal(self, chargeback: ChargebackInput, child_id: str) -> None:
        """Mollie reversed the chargeback: never report it as a refund. If it was reported
        before the reversal, Cleeng shows money given back that came back: a person corrects
        Cleeng (no documented call takes a refund back)."""
        status = await self._child_status(child_id)
        if status in ("COMPLETED", "RUNNING"):
            reason = (
                f"{CHARGEBACK_REVERSED_AFTER_REPORT}: Mollie reversed chargeback "
                f"{chargeback.chargeback_id} of {chargeback.amount} at {chargeback.reversed_at}, "
                f"after workflow {child_id} ({status}) reported it to Cleeng as refunded; correct "
                "the Cleeng payment by hand"
            )
            self._unreported.append(
                UnreportedChargeback(chargeback_id=chargeback.chargeback_id, error=reason)
            )
            workflow.logger.error(reason)
            return
        workflow.logger.info(
            "chargeback %s was reversed at %s (%s): nothing to report",
            chargeback.chargeback_id,
            chargeback.reversed_at,
            "no report made" if status == NOT_FOUND else f"its report {status}",
        )
        self._reversed.append(chargeback.chargeback_id)

    @workflow.query
    def view(self) -> FollowUpView:
        return FollowUpView(
            mollie_payment_id=self._payment_id,
            reported=list(self._reported),
            unreported=list(self._unreported),
            reversed=list(self._reversed),
        )


@workflow.defn(name="Chargeback")
class ChargebackWorkflow:
    """Report a Mollie chargeback to Cleeng as a `refunded` payment of type `chargeback`.

    The dispute takes back what was paid, and Cleeng cannot hold more than the payment: the
    chargeback is recorded for the part of the payment that Mollie's ledger shows no refund (or
    earlier chargeback) gave back, with Mollie's amount and the overlap named in the refunded
    reason. When refunds gave the whole payment back, nothing is written and the workflow
    completes saying so (query `view`, the Web UI's current details, a log line).

    A reversed chargeback (`reversedAt`) is never reported, whoever starts this (a follow-up, or
    reconciliation's repair): the workflow completes with no Cleeng payment (an empty result),
    as it does when nothing was left to record."""

    @workflow.init
    def __init__(self, chargeback: ChargebackInput) -> None:
        self._chargeback = chargeback
        self._hold = CleengRecordHold()
        self._status = CHARGEBACK_RECORDING
        self._recorded_minor = 0
        self._cleeng_payment_id: str | None = None
        self._note: str | None = None

    @workflow.run
    async def run(self, chargeback: ChargebackInput) -> str:
        if chargeback.reversed_at is not None:
            # Only a chargeback listed with `reversedAt` carries it (inputs from before never
            # do), so no running workflow takes this branch on replay.
            workflow.logger.info(
                "chargeback %s was reversed at %s: not reported",
                chargeback.chargeback_id,
                chargeback.reversed_at,
            )
            self._status = CHARGEBACK_REVERSED
            self._note = f"reversed at {chargeback.reversed_at}: not reported"
            return ""
        paid_by = MolliePaymentRef(payment_id=chargeback.mollie_payment_id)
        context = await workflow.execute_activity_method(
            MollieActivities.refund_context, paid_by, **CALL
        )
        metadata = await workflow.execute_activity_method(
            MollieActivities.payment_metadata, paid_by, **CALL
        )
        owner = metadata.get("workflowId")
        cleeng_payment_id = (
            await workflow.execute_activity_method(
                WorkflowDirectory.cleeng_payment_recorded_by, WorkflowRef(workflow_id=owner), **CALL
            )
            if owner
            else None
        )
        if context is None or cleeng_payment_id is None:
            # Core API 3.1 lists no payments by order: the Cleeng payment is known only from
            # the workflow that recorded it, while its history is kept.
            self._status = CHARGEBACK_UNMATCHED_STATUS
            self._note = (
                f"chargeback {chargeback.chargeback_id}: no Cleeng payment is known for "
                f"Mollie payment {chargeback.mollie_payment_id} (workflow {owner})"
            )
            raise ApplicationError(self._note, type=CHARGEBACK_UNMATCHED)
        self._cleeng_payment_id = cleeng_payment_id
        amount, reason = chargeback.amount, chargeback.reason or "chargeback"
        if workflow.patched(PATCH_CHARGEBACK_AFTER_REFUNDS):
            share = await workflow.execute_activity_method(
                MollieActivities.chargeback_share, chargeback, **CALL
            )
            if share.to_record.minor == 0:
                self._status = CHARGEBACK_NOTHING_TO_RECORD
                self._note = f"{self._given_back(share, cleeng_payment_id)}: nothing written"
                workflow.logger.info(self._note)
                workflow.set_current_details(self._note)
                return ""
            if share.to_record.minor < amount.minor:
                self._note = (
                    f"{self._given_back(share, cleeng_payment_id)}: recorded the remaining "
                    f"{share.to_record}"
                )
                overlap = Money(
                    minor=amount.minor - share.to_record.minor, currency=amount.currency
                )
                reason = (
                    f"{reason} (Mollie chargeback {chargeback.chargeback_id} of {amount}; "
                    f"{overlap} of it given back already by {self._given_back_by(share)}: "
                    f"recorded {share.to_record})"
                )
                workflow.logger.info(self._note)
                workflow.set_current_details(self._note)
            amount = share.to_record
        self._recorded_minor = amount.minor
        await self._hold.record(
            CleengRefundInput(
                cleeng_payment_id=cleeng_payment_id,
                order_id=context.order_id,
                amount=amount,
                refund_type=REFUND_TYPE_CHARGEBACK,
                reason=reason,
                payment_operation=context.payment_operation,
            )
        )
        self._status = CHARGEBACK_RECORDED
        return cleeng_payment_id

    def _given_back(self, share: ChargebackShare, cleeng_payment_id: str) -> str:
        chargeback = self._chargeback
        given_back = share.refunded.minor + share.charged_back_before.minor
        return (
            f"chargeback {chargeback.chargeback_id} of {chargeback.amount} on Mollie payment "
            f"{chargeback.mollie_payment_id} (Cleeng payment {cleeng_payment_id}): of the "
            f"payment's {share.paid}, {Money(minor=given_back, currency=share.paid.currency)} "
            f"was given back already ({self._given_back_by(share)}), and Cleeng cannot hold "
            "more than the payment"
        )

    @staticmethod
    def _given_back_by(share: ChargebackShare) -> str:
        parts = [f"refunds {share.refunded}"] if share.refunded.minor else []
        if share.charged_back_before.minor:
            parts.append(f"earlier chargebacks {share.charged_back_before}")
        return ", ".join(parts)

    @workflow.signal(name=RESOLVE_RECORD_SIGNAL)
    def resolve_record(self, answer: RecordResolution) -> None:
        """A person checked Cleeng for a chargeback whose record was in doubt."""
        self._hold.resolve(answer)

    @workflow.query
    def record_in_doubt(self) -> str | None:
        """The question put to a person while the record is in doubt, else None."""
        return self._hold.question

    @workflow.query
    def view(self) -> ChargebackView:
        """What was recorded in Cleeng for the chargeback, and why less or nothing."""
        chargeback = self._chargeback
        return ChargebackView(
            chargeback_id=chargeback.chargeback_id,
            mollie_payment_id=chargeback.mollie_payment_id,
            status=REFUND_RECORD_UNKNOWN if self._hold.question is not None else self._status,
            amount_minor=chargeback.amount.minor,
            currency=chargeback.amount.currency,
            recorded_minor=self._recorded_minor,
            cleeng_payment_id=self._cleeng_payment_id,
            note=self._hold.question or self._note,
        )
