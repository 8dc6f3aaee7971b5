"""Reconciliation of Mollie against what the connector recorded: inputs, findings, report.

Core API 3.1 has no call that lists or finds payments, so "is this Mollie payment recorded in
Cleeng?" is answered by the workflow that made it (named in the payment's metadata), through
its state and its `CleengPaymentId` search attribute, while Temporal keeps its history.
Payload dataclasses: add fields only with defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from domain.money import Money

# What can drift between Mollie and Cleeng.
ORPHAN_HOLD: Final = "orphan_hold"
"""An `authorized` Mollie payment (a card hold) that no running billing cycle owns."""
PAID_NOT_RECORDED: Final = "paid_not_recorded"
"""Money taken at Mollie whose workflow ended without recording it in Cleeng."""
REFUND_NOT_RECORDED: Final = "refund_not_recorded"
"""A refund Mollie settled that Cleeng was not told about."""
CHARGEBACK_NOT_RECORDED: Final = "chargeback_not_recorded"
"""A chargeback at Mollie that Cleeng was not told about."""
WINDOW_NOT_COVERED: Final = "window_not_covered"
"""The run read its page limit before reaching the start of its window."""
PAID_TWICE: Final = "paid_twice"
"""More than one Mollie payment kept as paid for one Cleeng order or one billing cycle."""

REPAIRED: Final = "repaired"
FOR_A_PERSON: Final = "left_for_a_person"

# Temporal's names for a workflow that is no longer running, and the one that is.
RUNNING: Final = "RUNNING"
COMPLETED: Final = "COMPLETED"
NOT_FOUND: Final = "NOT_FOUND"

# The prefix of the ids of workflows that refund at Cleeng's request and record the refund
# (domain.refunds.refund_workflow_id). Other refunds the connector makes are compensations for
# payments Cleeng never recorded, so there is nothing to record for them.
REFUND_WORKFLOW_PREFIX: Final = "refund:"


def orphan_hold_workflow_id(mollie_payment_id: str) -> str:
    return f"orphan-hold:{mollie_payment_id}"


def outside_refund_workflow_id(mollie_refund_id: str) -> str:
    return f"mollie-refund:{mollie_refund_id}"


@dataclass(frozen=True, kw_only=True)
class ReconciliationInput:
    window_hours: int = 72
    """How far back the run looks at Mollie's payments, by their creation time."""
    repair: bool = True
    """False: report what would be repaired, change nothing."""
    max_pages: int = 40
    """Pages of Mollie's payment list (250 each) one run reads at most."""


@dataclass(frozen=True, kw_only=True)
class ConnectorPayment:
    """A Mollie payment the connector made (its metadata names the workflow)."""

    payment_id: str
    status: str
    amount: Money
    created_at: str
    owner_workflow_id: str
    order_id: str | None = None
    refunded: Money | None = None
    charged_back: Money | None = None


@dataclass(frozen=True, kw_only=True)
class PaymentsInWindow:
    payments: list[ConnectorPayment]
    others_skipped: int
    """Payments in the window the connector did not make (no workflow in their metadata)."""
    window_covered: bool


@dataclass(frozen=True, kw_only=True)
class WorkflowState:
    workflow_id: str
    status: str
    """RUNNING, COMPLETED, FAILED, TERMINATED, ... as Temporal names it, or NOT_FOUND."""
    cleeng_payment_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MollieRefundSeen:
    refund_id: str
    status: str
    amount: Money
    operation_key: str | None
    """The connector's operation key in the refund's metadata; None for a refund made
    outside the connector (in Mollie's Dashboard, say)."""


@dataclass(frozen=True, kw_only=True)
class OrphanHoldInput:
    mollie_payment_id: str
    cleeng_payment_id: str | None
    """The `authorized` Cleeng record of the hold, cancelled after the release, if known."""


@dataclass(frozen=True, kw_only=True)
class OutsideRefundInput:
    mollie_payment_id: str
    refund_id: str
    amount: Money
    cleeng_payment_id: str


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: str
    mollie_payment_id: str
    action: str
    """REPAIRED, or FOR_A_PERSON (with the reason in `detail`)."""
    detail: str
    workflow_id: str | None = None
    """The workflow that owns the payment, or the one that made the repair."""


@dataclass(kw_only=True)
class ReconciliationReport:
    window_start: str
    window_end: str
    repair: bool
    payments_checked: int = 0
    holds_checked: int = 0
    refunds_checked: int = 0
    chargebacks_checked: int = 0
    in_progress: int = 0
    """Payments whose workflow is still working on them: not drift."""
    others_skipped: int = 0
    findings: list[Finding] = field(default_factory=list)
    older_payments_checked: int = 0
    """Payments created before the window whose refunds or chargebacks were created in it."""

    @property
    def repaired(self) -> int:
        return sum(1 for finding in self.findings if finding.action == REPAIRED)

    @property
    def left_for_a_person(self) -> int:
        return sum(1 for finding in self.findings if finding.action == FOR_A_PERSON)

    def summary(self) -> str:
        return (
            f"reconciliation {self.window_start}..{self.window_end}: "
            f"{self.payments_checked} payments, {self.holds_checked} holds, "
            f"{self.refunds_checked} refunds, {self.chargebacks_checked} chargebacks checked"
            f" ({self.older_payments_checked} older payments); "
            f"{self.in_progress} in progress; {len(self.findings)} drift found, "
            f"{self.repaired} repaired, {self.left_for_a_person} left for a person"
        )


def is_running(state: WorkflowState) -> bool:
    return state.status == RUNNING


def payment_finding(payment: ConnectorPayment, owner: WorkflowState) -> Finding | None:
    """What is wrong with a paid payment, judged by its owner, or None when nothing is.

    Only payments for a Cleeng order are recorded in Cleeng (a card check made while changing
    payment details carries no order and is refunded by its own workflow)."""
    if payment.status != "paid" or payment.order_id is None or is_running(owner):
        return None
    if owner.status == COMPLETED and owner.cleeng_payment_id is not None:
        return None
    if payment.refunded is not None and payment.refunded.minor >= payment.amount.minor:
        return None  # given back (Cleeng refused the record, and the workflow refunded)
    return Finding(
        kind=PAID_NOT_RECORDED,
        mollie_payment_id=payment.payment_id,
        action=FOR_A_PERSON,
        workflow_id=owner.workflow_id,
        detail=(
            f"{payment.amount} paid for order {payment.order_id}, but workflow "
            f"{owner.workflow_id} is {owner.status} without a Cleeng payment: find out why it "
            "stopped, then reset it (it adopts the payment it made) or record it by hand"
        ),
    )


@dataclass(frozen=True, kw_only=True)
class PaymentsWindowRequest:
    since: str
    """ISO 8601 with offset: the oldest creation time the run looks at."""
    max_pages: int


@dataclass(frozen=True, kw_only=True)
class PaymentIdsInWindow:
    """The payments named by the refunds (or chargebacks) Mollie created since the window's
    start, read from the account-wide list by the items' own creation dates."""

    payment_ids: list[str]
    """Distinct, newest item first."""
    items: int
    """Refunds (or chargebacks) created in the window."""
    window_covered: bool


def money_kept(payment: ConnectorPayment) -> bool:
    """Paid, and not all of it given back (refunded or charged back)."""
    if payment.status != "paid" or payment.amount.minor <= 0:
        return False
    returned = sum(
        amount.minor for amount in (payment.refunded, payment.charged_back) if amount is not None
    )
    return returned < payment.amount.minor


def _paid_groups(
    payments: Sequence[ConnectorPayment], keep: bool
) -> list[tuple[str, list[ConnectorPayment]]]:
    """Groups of two or more `paid` payments for one Cleeng order (`metadata.orderId`) or one
    workflow (`metadata.workflowId`: a billing cycle, a purchase), each group once, oldest
    payment first. `payments` come as "list-payments" gives them, newest first, which also
    orders payments created in the same second. `keep`: count only payments whose money is
    kept."""
    groups: dict[str, list[ConnectorPayment]] = {}
    for payment in payments:
        if payment.status != "paid" or payment.amount.minor <= 0:
            continue
        if keep and not money_kept(payment):
            continue
        if payment.order_id is not None:
            groups.setdefault(f"Cleeng order {payment.order_id}", []).append(payment)
        groups.setdefault(f"workflow {payment.owner_workflow_id}", []).append(payment)
    seen: set[frozenset[str]] = set()
    found: list[tuple[str, list[ConnectorPayment]]] = []
    for what, group in sorted(groups.items()):
        ids = frozenset(payment.payment_id for payment in group)
        if len(ids) < 2 or ids in seen:
            continue  # one payment, or the same payments already named by their other key
        seen.add(ids)
        # Oldest first; within one second (createdAt has no finer grain), as Mollie listed them.
        found.append((what, sorted(reversed(group), key=lambda p: p.created_at)))
    return found


def paid_twice_findings(payments: Sequence[ConnectorPayment]) -> list[Finding]:
    """One finding per Cleeng order or billing cycle for which Mollie shows more than one
    payment `paid` whose money is kept. A cycle's declined attempts followed by a paid one
    are fine, as is a payment given back in full; two paid are a double charge."""
    findings = []
    for what, group in _paid_groups(payments, keep=True):
        latest = group[-1]
        listed = ", ".join(f"{p.payment_id} {p.amount} (created {p.created_at})" for p in group)
        findings.append(
            Finding(
                kind=PAID_TWICE,
                mollie_payment_id=latest.payment_id,
                action=FOR_A_PERSON,
                workflow_id=latest.owner_workflow_id,
                detail=(
                    f"{len(group)} payments paid for {what}: {listed}. The customer paid "
                    "more than once: find the payment Cleeng recorded (its externalPaymentId; "
                    "connector_ops subscription/purchase shows the cycle's), then refund the "
                    "other one in full at Mollie"
                ),
            )
        )
    return findings


def shares_paid_group(payments: Sequence[ConnectorPayment]) -> set[str]:
    """The payments that share a Cleeng order or a workflow with another `paid` payment
    (refunded or not): which Cleeng record is theirs cannot be told from the workflow."""
    return {p.payment_id for _, group in _paid_groups(payments, keep=False) for p in group}
