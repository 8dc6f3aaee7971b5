"""Reconciliation (started by the `connector-reconciliation` schedule) and its repairs.

A run reads Mollie's payments of its window and checks, for each one the connector made:
- a hold (`authorized`) is owned by a running billing cycle; an orphan is released at Mollie
  and its `authorized` Cleeng record cancelled, once, by `orphan-hold:{molliePaymentId}`;
- money taken (`paid`) was recorded in Cleeng by the workflow that took it, or is still being
  worked on, or was given back; anything else is left for a person (a reset of that workflow
  adopts the payment it made, but why it stopped needs a look first);
- every settled refund and every chargeback reached Cleeng: one made outside the connector
  is recorded once by `mollie-refund:{refundId}`, a chargeback whose webhook was lost by
  `chargeback:{chargebackId}` (the same workflow the webhook starts). Refunds and chargebacks
  come weeks after their payment, so the run also reads Mollie's account-wide lists of
  refunds and chargebacks created in its window, and checks the same way the payments they
  name, however old;
- no Cleeng order and no billing cycle has more than one payment `paid` whose money is kept
  (a double charge, left for a person), and a Dashboard refund of a payment that shares its
  order or cycle with another paid one is not recorded on a Cleeng payment that may not be
  its own.

Repairs are child workflows with those ids (rejecting duplicates), so a repair happens once
however many runs find the drift, and a run changes nothing with `repair=False`. The report
is the workflow's result, one log line, and the `connector_reconciliation_findings` metric.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from domain.operation_keys import orphan_release_key
from domain.operations import (
    CleengPaymentRef,
    MolliePaymentIds,
    MolliePaymentRef,
    ReleaseInput,
    WorkflowIds,
)
from domain.reconciliation import (
    CHARGEBACK_NOT_RECORDED,
    COMPLETED,
    FOR_A_PERSON,
    NOT_FOUND,
    ORPHAN_HOLD,
    REFUND_NOT_RECORDED,
    REFUND_WORKFLOW_PREFIX,
    REPAIRED,
    WINDOW_NOT_COVERED,
    ConnectorPayment,
    Finding,
    OrphanHoldInput,
    OutsideRefundInput,
    PaymentIdsInWindow,
    PaymentsWindowRequest,
    ReconciliationInput,
    ReconciliationReport,
    WorkflowState,
    is_running,
    orphan_hold_workflow_id,
    outside_refund_workflow_id,
    paid_twice_findings,
    payment_finding,
    shares_paid_group,
)
from domain.refunds import (
    MOLLIE_REFUND_DONE,
    REFUND_TYPE_REFUND,
    CleengRefundInput,
    chargeback_workflow_id,
)
from workflows.failures import describe_innermost_failure
from workflows.policies import CALL, RECORD, WALK

with workflow.unsafe.imports_passed_through():
    from activities.cleeng_activities import CleengActivities
    from activities.directory import WorkflowDirectory
    from activities.mollie_activities import MollieActivities
    from workflows.refund import ChargebackWorkflow

HOLD_NOT_RELEASED = "HoldNotReleased"
REFUND_UNMATCHED = "OutsideRefundUnmatched"
OUTSIDE_REFUND_REASON = "Refunded at Mollie outside the connector"
# Workflow ids described per activity call: keeps each payload far below Temporal's limits.
STATES_PER_CALL = 200
# Payments read (one GET each) per activity call, for refunds and chargebacks on payments
# older than the window.
PAYMENTS_PER_CALL = 50
# Versioning: runs also walk Mollie's account-wide refund and chargeback lists, report orders
# and cycles paid twice, and leave for a person a Dashboard refund of a payment that shares its
# order or cycle with another paid one. A run started before replays as it ran (no new
# activities, the same repairs started).
# remove after 2027-01-07: when no workflow started before the release after bf66b6e can still run
PATCH_LATE_EVENTS = "reconciliation-late-refunds-chargebacks-paid-twice"


@workflow.defn(name="Reconciliation")
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, request: ReconciliationInput) -> ReconciliationReport:
        late_events = workflow.patched(PATCH_LATE_EVENTS)
        end = workflow.now()
        start = end - timedelta(hours=request.window_hours)
        report = ReconciliationReport(
            window_start=start.isoformat(), window_end=end.isoformat(), repair=request.repair
        )
        window = await workflow.execute_activity_method(
            MollieActivities.connector_payments_since,
            PaymentsWindowRequest(since=start.isoformat(), max_pages=request.max_pages),
            **WALK,
        )
        report.payments_checked = len(window.payments)
        report.others_skipped = window.others_skipped
        if not window.window_covered:
            report.findings.append(
                Finding(
                    kind=WINDOW_NOT_COVERED,
                    mollie_payment_id="",
                    action=FOR_A_PERSON,
                    detail=(
                        f"read {request.max_pages} pages of payments without reaching "
                        f"{report.window_start}: run again with a shorter window or more pages"
                    ),
                )
            )
        owners = await self._states(sorted({p.owner_workflow_id for p in window.payments}))
        shared: set[str] = set()
        if late_events:
            report.findings.extend(paid_twice_findings(window.payments))
            shared = shares_paid_group(window.payments)
        for payment in window.payments:
            owner = owners[payment.owner_workflow_id]
            if payment.status == "authorized":
                await self._check_hold(payment, owner, request, report)
            elif (finding := payment_finding(payment, owner)) is not None:
                report.findings.append(finding)
            elif is_running(owner):
                report.in_progress += 1
            if payment.refunded is not None and payment.refunded.minor > 0:
                await self._check_refunds(
                    payment, owner, request, report, shared=payment.payment_id in shared
                )
            if payment.charged_back is not None and payment.charged_back.minor > 0:
                await self._check_chargebacks(payment, request, report)
        if late_events:
            await self._check_older_payments(window.payments, start, request, report)
        self._publish(report)
        return report

    async def _check_older_payments(
        self,
        checked: list[ConnectorPayment],
        start: datetime,
        request: ReconciliationInput,
        report: ReconciliationReport,
    ) -> None:
        """Refunds and chargebacks created in the window, on payments the payment walk did
        not check (created before the window, mostly): read from Mollie's account-wide lists
        by their own creation dates, then checked as for a payment in the window."""
        since = PaymentsWindowRequest(since=start.isoformat(), max_pages=request.max_pages)
        refunded = await workflow.execute_activity_method(
            MollieActivities.payments_refunded_since, since, **WALK
        )
        charged_back = await workflow.execute_activity_method(
            MollieActivities.payments_charged_back_since, since, **WALK
        )
        self._note_uncovered(refunded, "refunds", request, report)
        self._note_uncovered(charged_back, "chargebacks", request, report)
        refunds_done = {p.payment_id for p in checked if p.refunded and p.refunded.minor > 0}
        chargebacks_done = {
            p.payment_id for p in checked if p.charged_back and p.charged_back.minor > 0
        }
        refunds_to_check = [i for i in refunded.payment_ids if i not in refunds_done]
        chargebacks_to_check = [i for i in charged_back.payment_ids if i not in chargebacks_done]
        to_read = list(dict.fromkeys(refunds_to_check + chargebacks_to_check))
        payments: list[ConnectorPayment] = []
        for first in range(0, len(to_read), PAYMENTS_PER_CALL):
            payments += await workflow.execute_activity_method(
                MollieActivities.connector_payments,
                MolliePaymentIds(payment_ids=to_read[first : first + PAYMENTS_PER_CALL]),
                **WALK,
            )
        report.older_payments_checked = len(payments)
        owners = await self._states(sorted({p.owner_workflow_id for p in payments}))
        for payment in payments:
            if payment.payment_id in refunds_to_check:
                await self._check_refunds(
                    payment, owners[payment.owner_workflow_id], request, report
                )
            if payment.payment_id in chargebacks_to_check:
                await self._check_chargebacks(payment, request, report)

    def _note_uncovered(
        self,
        listed: PaymentIdsInWindow,
        what: str,
        request: ReconciliationInput,
        report: ReconciliationReport,
    ) -> None:
        if listed.window_covered:
            return
        report.findings.append(
            Finding(
                kind=WINDOW_NOT_COVERED,
                mollie_payment_id="",
                action=FOR_A_PERSON,
                detail=(
                    f"read {request.max_pages} pages of {what} without reaching "
                    f"{report.window_start}: run again with a shorter window or more pages"
                ),
            )
        )

    async def _states(self, workflow_ids: list[str]) -> dict[str, WorkflowState]:
        states: dict[str, WorkflowState] = {}
        for first in range(0, len(workflow_ids), STATES_PER_CALL):
            batch = workflow_ids[first : first + STATES_PER_CALL]
            for state in await workflow.execute_activity_method(
                WorkflowDirectory.workflow_states, WorkflowIds(workflow_ids=batch), **CALL
            ):
                states[state.workflow_id] = state
        return states

    async def _check_hold(
        self,
        payment: ConnectorPayment,
        owner: WorkflowState,
        request: ReconciliationInput,
        report: ReconciliationReport,
    ) -> None:
        report.holds_checked += 1
        if is_running(owner):
            report.in_progress += 1
            return
        if owner.status == NOT_FOUND:
            report.findings.append(
                Finding(
                    kind=ORPHAN_HOLD,
                    mollie_payment_id=payment.payment_id,
                    action=FOR_A_PERSON,
                    workflow_id=owner.workflow_id,
                    detail=(
                        f"{payment.amount} held, and Temporal no longer knows workflow "
                        f"{owner.workflow_id}: whether Cleeng still expects to capture it "
                        "cannot be read from Core API 3.1"
                    ),
                )
            )
            return
        hold = OrphanHoldInput(
            mollie_payment_id=payment.payment_id, cleeng_payment_id=owner.cleeng_payment_id
        )
        repair_id = orphan_hold_workflow_id(payment.payment_id)
        what = f"{payment.amount} held for workflow {owner.workflow_id} ({owner.status})"
        await self._repair(
            report,
            request,
            kind=ORPHAN_HOLD,
            payment_id=payment.payment_id,
            repair_id=repair_id,
            what=what,
            run=ReleaseOrphanHoldWorkflow.run,
            arg=hold,
        )

    async def _check_refunds(
        self,
        payment: ConnectorPayment,
        owner: WorkflowState,
        request: ReconciliationInput,
        report: ReconciliationReport,
        *,
        shared: bool = False,
    ) -> None:
        """`shared`: the payment shares its Cleeng order or billing cycle with another paid
        payment, so the owner's Cleeng payment may record the other one."""
        refunds = await workflow.execute_activity_method(
            MollieActivities.refunds_seen, MolliePaymentRef(payment_id=payment.payment_id), **WALK
        )
        settled = [refund for refund in refunds if refund.status == MOLLIE_REFUND_DONE]
        report.refunds_checked += len(settled)
        by_connector = [r for r in settled if r.operation_key is not None]
        outside = [r for r in settled if r.operation_key is None]
        recorders = [
            r.operation_key
            for r in by_connector
            if r.operation_key and r.operation_key.startswith(REFUND_WORKFLOW_PREFIX)
        ]
        states = await self._states(
            recorders + [outside_refund_workflow_id(r.refund_id) for r in outside]
        )
        for key in recorders:
            state = states[key]
            if state.status == COMPLETED:
                continue
            if is_running(state):
                report.in_progress += 1
                continue
            report.findings.append(
                Finding(
                    kind=REFUND_NOT_RECORDED,
                    mollie_payment_id=payment.payment_id,
                    action=FOR_A_PERSON,
                    workflow_id=key,
                    detail=f"refunded at Mollie, but workflow {key} is {state.status}",
                )
            )
        for refund in outside:
            repair_id = outside_refund_workflow_id(refund.refund_id)
            if not self._needs_repair(
                states[repair_id], payment.payment_id, REFUND_NOT_RECORDED, report
            ):
                continue
            what = f"refund {refund.refund_id} of {refund.amount} made outside the connector"
            if shared:
                report.findings.append(
                    Finding(
                        kind=REFUND_NOT_RECORDED,
                        mollie_payment_id=payment.payment_id,
                        action=FOR_A_PERSON,
                        workflow_id=owner.workflow_id,
                        detail=(
                            f"{what}: {payment.payment_id} shares its Cleeng order or cycle "
                            f"with another paid payment, so Cleeng payment "
                            f"{owner.cleeng_payment_id} may record the other one. If this "
                            "gave back a second charge, there is nothing to record; otherwise "
                            "record it on the Cleeng payment whose externalPaymentId is "
                            f"{payment.payment_id}"
                        ),
                    )
                )
                continue
            if owner.cleeng_payment_id is None:
                report.findings.append(
                    Finding(
                        kind=REFUND_NOT_RECORDED,
                        mollie_payment_id=payment.payment_id,
                        action=FOR_A_PERSON,
                        workflow_id=owner.workflow_id,
                        detail=f"{what}: no Cleeng payment is known for it ({owner.status})",
                    )
                )
                continue
            outside_refund = OutsideRefundInput(
                mollie_payment_id=payment.payment_id,
                refund_id=refund.refund_id,
                amount=refund.amount,
                cleeng_payment_id=owner.cleeng_payment_id,
            )
            await self._repair(
                report,
                request,
                kind=REFUND_NOT_RECORDED,
                payment_id=payment.payment_id,
                repair_id=repair_id,
                what=what,
                run=RecordOutsideRefundWorkflow.run,
                arg=outside_refund,
            )

    async def _check_chargebacks(
        self, payment: ConnectorPayment, request: ReconciliationInput, report: ReconciliationReport
    ) -> None:
        chargebacks = await workflow.execute_activity_method(
            MollieActivities.list_chargebacks,
            MolliePaymentRef(payment_id=payment.payment_id),
            **WALK,
        )
        report.chargebacks_checked += len(chargebacks)
        states = await self._states([chargeback_workflow_id(c.chargeback_id) for c in chargebacks])
        for chargeback in chargebacks:
            repair_id = chargeback_workflow_id(chargeback.chargeback_id)
            if not self._needs_repair(
                states[repair_id], payment.payment_id, CHARGEBACK_NOT_RECORDED, report
            ):
                continue
            await self._repair(
                report,
                request,
                kind=CHARGEBACK_NOT_RECORDED,
                payment_id=payment.payment_id,
                repair_id=repair_id,
                what=f"chargeback {chargeback.chargeback_id} of {chargeback.amount} not reported",
                run=ChargebackWorkflow.run,
                arg=chargeback,
            )

    def _needs_repair(
        self, state: WorkflowState, payment_id: str, kind: str, report: ReconciliationReport
    ) -> bool:
        """True when no workflow ever took this on. One still at it counts as in progress;
        one that ended without success (a repair or a webhook's) is left for a person."""
        if is_running(state):
            report.in_progress += 1
            return False
        if state.status == NOT_FOUND:
            return True
        if state.status != COMPLETED:
            report.findings.append(
                Finding(
                    kind=kind,
                    mollie_payment_id=payment_id,
                    action=FOR_A_PERSON,
                    workflow_id=state.workflow_id,
                    detail=f"workflow {state.workflow_id} ended {state.status}: see its history",
                )
            )
        return False

    async def _repair(
        self,
        report: ReconciliationReport,
        request: ReconciliationInput,
        *,
        kind: str,
        payment_id: str,
        repair_id: str,
        what: str,
        run: Callable[[Any, Any], Awaitable[Any]],
        arg: object,
    ) -> None:
        """Run the repair workflow `run(arg)` as child `repair_id`: at most once per id, ever
        (a failed repair is for a person, not for the next run), and on to its end if this run
        is stopped."""
        if not request.repair:
            report.findings.append(
                Finding(
                    kind=kind,
                    mollie_payment_id=payment_id,
                    action=FOR_A_PERSON,
                    workflow_id=repair_id,
                    detail=f"{what}: not repaired (a run without repairs)",
                )
            )
            return
        try:
            await workflow.execute_child_workflow(
                run,
                arg,
                id=repair_id,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            # Another run (or a late webhook) took it on between our look and our start.
            report.in_progress += 1
            return
        except ChildWorkflowError as error:
            report.findings.append(
                Finding(
                    kind=kind,
                    mollie_payment_id=payment_id,
                    action=FOR_A_PERSON,
                    workflow_id=repair_id,
                    detail=f"{what}: the repair failed ({describe_innermost_failure(error)})",
                )
            )
            return
        report.findings.append(
            Finding(
                kind=kind,
                mollie_payment_id=payment_id,
                action=REPAIRED,
                workflow_id=repair_id,
                detail=f"{what}: repaired by {repair_id}",
            )
        )

    def _publish(self, report: ReconciliationReport) -> None:
        findings = workflow.metric_meter().create_counter(
            "connector_reconciliation_findings",
            description="Drift found by reconciliation runs, by kind and what was done",
        )
        for finding in report.findings:
            findings.add(1, {"kind": finding.kind, "action": finding.action})
            log = (
                workflow.logger.warning if finding.action == FOR_A_PERSON else workflow.logger.info
            )
            log(
                "reconciliation %s %s: %s",
                finding.kind,
                finding.action,
                finding.detail,
                extra={"mollie_payment_id": finding.mollie_payment_id},
            )
        workflow.logger.info(report.summary())


@workflow.defn(name="ReleaseOrphanHold")
class ReleaseOrphanHoldWorkflow:
    """Release a card hold no billing cycle owns, then cancel its `authorized` Cleeng record."""

    @workflow.run
    async def run(self, hold: OrphanHoldInput) -> str:
        payment = await workflow.execute_activity_method(
            MollieActivities.release_authorization,
            ReleaseInput(
                payment_id=hold.mollie_payment_id,
                operation_key=orphan_release_key(workflow.info().workflow_id),
            ),
            **CALL,
        )
        if payment.status == "authorized":
            # Mollie documents that a release "is not guaranteed" to succeed.
            raise ApplicationError(
                f"Mollie did not release the hold on {hold.mollie_payment_id}",
                type=HOLD_NOT_RELEASED,
                non_retryable=True,
            )
        if payment.status == "canceled" and hold.cleeng_payment_id is not None:
            await workflow.execute_activity_method(
                CleengActivities.cancel_payment,
                CleengPaymentRef(payment_id=hold.cleeng_payment_id),
                **RECORD,
            )
        return payment.status


@workflow.defn(name="RecordOutsideRefund")
class RecordOutsideRefundWorkflow:
    """Record in Cleeng, once, a refund made at Mollie without the connector."""

    @workflow.run
    async def run(self, refund: OutsideRefundInput) -> str:
        context = await workflow.execute_activity_method(
            MollieActivities.refund_context,
            MolliePaymentRef(payment_id=refund.mollie_payment_id),
            **CALL,
        )
        if context is None:
            raise ApplicationError(
                f"refund {refund.refund_id}: Mollie payment {refund.mollie_payment_id} names "
                "no Cleeng order",
                type=REFUND_UNMATCHED,
                non_retryable=True,
            )
        return await workflow.execute_activity_method(
            CleengActivities.record_refund,
            CleengRefundInput(
                cleeng_payment_id=refund.cleeng_payment_id,
                order_id=context.order_id,
                amount=refund.amount,
                refund_type=REFUND_TYPE_REFUND,
                reason=OUTSIDE_REFUND_REASON,
                payment_operation=context.payment_operation,
            ),
            **RECORD,
        )
