"""The money invariants of a chaos run: Mollie's ledger, Cleeng's ledger and Temporal compared.

`check_invariants` is pure: it takes what the emulators' `/_emulator/ledger` endpoints (and
Cleeng's `/_emulator/orders`) answered and the workflow list, and counts, payment by payment,
everything that must never happen (double charges, money taken but not recorded, records
without money, card holds nobody will capture or release, refunds or chargebacks on one side
only, a settled renewal refunded by its own billing cycle, a Cleeng record under another order
than its Mollie payment names, a cycle paid twice, a Cleeng record cancelled while its money
was taken) next to the documented residual risks that are only reported, and what happened per
mandate method (SEPA Direct Debit, PayPal, card). `collect_ledgers` and
`collect_workflows` fetch those inputs from a running stack.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

MOLLIE_PAID = "paid"
MOLLIE_AUTHORIZED = "authorized"
MOLLIE_EXPIRED = "expired"
CLEENG_AUTHORIZED = "authorized"
CLEENG_CANCELLED = "cancelled"
CLEENG_CHARGEBACK = "chargeback"
# Mollie refunds that did (or will) give money back.
MOLLIE_REFUND_LIVE = frozenset({"queued", "pending", "processing", "refunded"})
CLEENG_MONEY_STATUSES = frozenset({"captured", "refunded"})
RECURRING_OPERATION = "recurring-payment"
RUNNING = "running"
FAILED = "failed"
BILLING_PREFIX = "billing:"
PURCHASE_PREFIX = "purchase:"
# First-payment methods that leave a SEPA Direct Debit mandate, so their renewals are debits.
SEPA_METHODS = frozenset(
    {"directdebit", "ideal", "bancontact", "belfius", "kbc", "eps", "trustly", "sofort"}
)


@dataclass(frozen=True)
class WorkflowRecord:
    """One workflow execution as the invariants need it."""

    workflow_id: str
    workflow_type: str
    status: str  # running | completed | failed | terminated | canceled | timed_out | ...
    failure_type: str | None = None


@dataclass(frozen=True)
class Ledgers:
    """What the two emulators hold: Mollie's payments and Cleeng's payments and orders."""

    mollie_payments: list[dict[str, Any]]
    cleeng_payments: list[dict[str, Any]]
    cleeng_duplicates: list[dict[str, Any]]
    cleeng_orders: list[dict[str, Any]]


@dataclass
class InvariantReport:
    """The table a chaos run prints; `holds` is True only when every must-be-zero count is 0."""

    charges_at_mollie: int = 0
    charges_expected: int | None = None
    double_charges: int = 0
    paid_not_recorded_in_cleeng: int = 0
    cleeng_records_without_money: int = 0
    open_holds_without_live_cycle: int = 0
    refunds_at_mollie: int = 0
    refunds_in_cleeng: int = 0
    refunded_minor_at_mollie: int = 0
    refunded_minor_in_cleeng: int = 0
    compensated_at_mollie: int = 0
    chargebacks_at_mollie: int = 0
    chargebacks_in_cleeng: int = 0
    chargeback_minor_at_mollie: int = 0
    chargeback_minor_in_cleeng: int = 0
    # Per payment, chargebacks (count and minor units) Cleeng lacks or has too many of; those
    # on a payment whose last Mollie webhook was lost are counted apart: only the scheduled
    # reconciliation (off in the chaos run) finds a chargeback nobody announced.
    chargeback_mismatch: int = 0
    chargebacks_unannounced: int = 0
    settled_renewals_refunded: int = 0
    cleeng_order_differs_from_mollie: int = 0
    cycles_paid_more_than_once: int = 0
    cleeng_cancelled_with_money: int = 0
    # Per mandate method: subscribers, renewals, pending_then_captured, settlement_failures,
    # reversed_after_paid.
    per_method: dict[str, dict[str, int]] = field(default_factory=dict)
    money_recorded_only_on_duplicate: int = 0
    stale_authorized_cleeng_records: int = 0
    orphan_renewal_orders: int = 0
    duplicate_cleeng_records: int = 0
    workflows_running: dict[str, int] = field(default_factory=dict)
    workflows_long_lived: dict[str, int] = field(default_factory=dict)
    workflows_failed: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    faults_injected: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def refund_mismatch(self) -> int:
        return abs(self.refunds_at_mollie - self.refunds_in_cleeng) + abs(
            self.refunded_minor_at_mollie - self.refunded_minor_in_cleeng
        )

    def violations(self) -> dict[str, int]:
        """Every must-be-zero count that is not zero."""
        counts = {
            "double_charges": self.double_charges,
            "paid_not_recorded_in_cleeng": self.paid_not_recorded_in_cleeng,
            "cleeng_records_without_money": self.cleeng_records_without_money,
            "open_holds_without_live_cycle": self.open_holds_without_live_cycle,
            "refund_mismatch": self.refund_mismatch,
            "chargeback_mismatch": self.chargeback_mismatch,
            "settled_renewals_refunded": self.settled_renewals_refunded,
            "cleeng_order_differs_from_mollie": self.cleeng_order_differs_from_mollie,
            "cycles_paid_more_than_once": self.cycles_paid_more_than_once,
            "cleeng_cancelled_with_money": self.cleeng_cancelled_with_money,
            "workflows_failed": sum(self.workflows_failed.values()),
            "workflows_still_running": sum(self.workflows_running.values()),
        }
        return {name: count for name, count in counts.items() if count}

    @property
    def holds(self) -> bool:
        return not self.violations()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["refund_mismatch"] = self.refund_mismatch
        data["violations"] = self.violations()
        data["holds"] = self.holds
        return data

    def table(self) -> str:
        rows: list[tuple[str, str, str]] = [
            ("charges made at Mollie", str(self.charges_at_mollie), ""),
            (
                "charges expected",
                "-" if self.charges_expected is None else str(self.charges_expected),
                "",
            ),
            ("double charges (order/cycle charged twice)", str(self.double_charges), "must be 0"),
            ("paid at Mollie, not recorded in Cleeng", str(self.paid_not_recorded_in_cleeng),
             "must be 0"),
            ("Cleeng records without money at Mollie", str(self.cleeng_records_without_money),
             "must be 0"),
            ("card holds without a live cycle (open or lapsed)",
             str(self.open_holds_without_live_cycle), "must be 0"),
            ("refunds at Mollie / in Cleeng",
             f"{self.refunds_at_mollie} / {self.refunds_in_cleeng}", "must be equal"),
            ("refunded minor units at Mollie / in Cleeng",
             f"{self.refunded_minor_at_mollie} / {self.refunded_minor_in_cleeng}",
             "must be equal"),
            ("chargebacks at Mollie / in Cleeng",
             f"{self.chargebacks_at_mollie} / {self.chargebacks_in_cleeng}", ""),
            ("charged back minor units at Mollie / in Cleeng",
             f"{self.chargeback_minor_at_mollie} / {self.chargeback_minor_in_cleeng}", ""),
            ("chargebacks announced but not (or twice) in Cleeng", str(self.chargeback_mismatch),
             "must be 0"),
            ("chargebacks whose webhook was lost (reconciliation's)",
             str(self.chargebacks_unannounced), "report"),
            ("settled renewals refunded by their cycle", str(self.settled_renewals_refunded),
             "must be 0"),
            ("Cleeng order differs from the Mollie metadata order",
             str(self.cleeng_order_differs_from_mollie), "must be 0"),
            ("more than one paid payment per cycle", str(self.cycles_paid_more_than_once),
             "must be 0"),
            ("Cleeng record cancelled with money taken", str(self.cleeng_cancelled_with_money),
             "must be 0"),
            ("unrecorded payments given back (compensated)", str(self.compensated_at_mollie),
             "report"),
            ("money recorded only on a duplicate Cleeng record",
             str(self.money_recorded_only_on_duplicate), "residual risk, report"),
            ("Cleeng 'authorized' records left open (money settled)",
             str(self.stale_authorized_cleeng_records), "residual risk, report"),
            ("orphan renewal orders (reply lost after POST /orders)",
             str(self.orphan_renewal_orders), "residual risk, report"),
            ("duplicate Cleeng records", str(self.duplicate_cleeng_records),
             "residual risk, report"),
            ("workflows still running", _grouped(self.workflows_running), "must be none"),
            ("long-lived workflows (expected)", _grouped(self.workflows_long_lived), "report"),
            ("workflows failed (type: failure)", _grouped(self.workflows_failed), "must be none"),
            ("wall time", f"{self.wall_seconds:.1f} s", ""),
            ("faults injected", _grouped(self.faults_injected), ""),
        ]  # fmt: skip
        width = max(len(r[0]) for r in rows)
        # Long values (fault counts) run past the column instead of widening it for all.
        value_width = max(len(r[1]) for r in rows if len(r[1]) <= 24)
        lines = [f"{name.ljust(width)}  {value.ljust(value_width)}  {rule}".rstrip()
                 for name, value, rule in rows]  # fmt: skip
        for method, counts in sorted(self.per_method.items()):
            lines.append(
                f"method {method}: {counts.get('subscribers', 0)} subscribers, "
                f"{counts.get('renewals', 0)} renewals, "
                f"{counts.get('pending_then_captured', 0)} pending then captured, "
                f"{counts.get('settlement_failures', 0)} failed at settlement, "
                f"{counts.get('reversed_after_paid', 0)} reversed after paid"
            )
        for name, items in self.evidence.items():
            if items:
                lines.append(f"{name}: {', '.join(items[:20])}")
        lines += self.notes
        lines.append("INVARIANTS HOLD" if self.holds else f"VIOLATED: {self.violations()}")
        return "\n".join(lines)


def _grouped(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return ", ".join(f"{key}={value}" for key, value in sorted(counts.items()))


def _minor(amount: dict[str, Any] | None) -> int:
    """Mollie amount ({"value": "9.99", "currency": "EUR"}) in minor units (2-decimal money)."""
    if not amount:
        return 0
    whole, _, fraction = str(amount["value"]).partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int((fraction + "00")[:2]))


def charge_key(payment: dict[str, Any]) -> str:
    """What one Mollie charge pays for: the billing cycle (its workflow) or the order."""
    metadata = payment.get("metadata") or {}
    workflow_id = str(metadata.get("workflowId", ""))
    if workflow_id.startswith("billing:"):
        return workflow_id
    if metadata.get("orderId"):
        return f"order:{metadata['orderId']}"
    return f"payment:{payment['id']}"


def owner_of(payment: dict[str, Any]) -> str:
    """The workflow that made a Mollie payment (its metadata), or ''."""
    return str((payment.get("metadata") or {}).get("workflowId", ""))


def names_billing_cycle(metadata: Any) -> bool:
    """Whether a refund's metadata says a billing cycle made it (the cycle's compensation),
    as opposed to a refund Cleeng asked for (the Refund workflow's)."""
    if not isinstance(metadata, dict):
        return False
    return any(
        str(metadata.get(key, "")).startswith(BILLING_PREFIX) for key in ("workflowId", "operation")
    )


def method_kind(method: str | None) -> str:
    """The mandate a payment's method leaves or charges: directdebit, paypal or creditcard."""
    if method in SEPA_METHODS:
        return "directdebit"
    return method or "unknown"


def per_method_counts(
    mollie_payments: list[dict[str, Any]], recorded_external: set[str]
) -> dict[str, dict[str, int]]:
    """What each mandate method went through: paid purchases (subscribers), renewals paid and
    recorded in Cleeng, of those the ones that sat `pending` first (SEPA), renewals that
    failed at settlement, and renewals charged back after they were paid."""
    counts: dict[str, Counter[str]] = {}
    for payment in mollie_payments:
        owner = owner_of(payment)
        paid = payment["status"] == MOLLIE_PAID
        kind = counts.setdefault(method_kind(payment.get("method")), Counter())
        if owner.startswith(PURCHASE_PREFIX) and paid:
            kind["subscribers"] += 1
        if not owner.startswith(BILLING_PREFIX):
            continue
        if paid and str(payment["id"]) in recorded_external:
            kind["renewals"] += 1
            if payment.get("pendingAt"):
                kind["pending_then_captured"] += 1
        if payment["status"] == FAILED and payment.get("pendingAt"):
            kind["settlement_failures"] += 1
        if paid and payment.get("chargebacks"):
            kind["reversed_after_paid"] += 1
    return {method: dict(c) for method, c in counts.items() if c}


def check_invariants(
    ledgers: Ledgers,
    workflows: list[WorkflowRecord],
    *,
    long_lived_ids: frozenset[str] = frozenset(),
    charges_expected: int | None = None,
    unannounced: frozenset[str] = frozenset(),
) -> InvariantReport:
    """Compare the ledgers payment by payment; see the module docstring. `unannounced` names
    the Mollie payments whose last webhook was lost (dropped by a fault)."""
    report = InvariantReport(charges_expected=charges_expected)
    evidence: dict[str, list[str]] = {
        "double_charges": [],
        "paid_not_recorded": [],
        "money_only_on_duplicate": [],
        "stale_authorized": [],
        "records_without_money": [],
        "orphan_holds": [],
        "failed_workflows": [],
        "running_workflows": [],
        "chargeback_mismatch": [],
        "chargebacks_unannounced": [],
        "settled_renewals_refunded": [],
        "order_differs": [],
        "cycle_paid_more_than_once": [],
        "cancelled_with_money": [],
    }
    recorded = [p for p in ledgers.cleeng_payments if p.get("duplicateOf") is None]

    def money_records(records: list[dict[str, Any]]) -> set[str]:
        return {
            str(p["externalPaymentId"])
            for p in records
            if p["status"] in CLEENG_MONEY_STATUSES and p.get("externalPaymentId")
        }

    # A duplicate record still tells Cleeng the money came in (a lost reply made the connector
    # write twice, the documented residual risk); it is counted apart, not as unrecorded.
    recorded_external = money_records(ledgers.cleeng_payments)
    on_original = money_records(recorded)
    mollie_by_id = {str(p["id"]): p for p in ledgers.mollie_payments}

    # Money taken: paid with a non-zero amount (0.00 card checks move no money).
    charges = [
        p for p in ledgers.mollie_payments if p["status"] == MOLLIE_PAID and _minor(p["amount"]) > 0
    ]
    report.charges_at_mollie = len(charges)
    per_key = Counter(charge_key(p) for p in charges)
    for key, count in per_key.items():
        if count > 1:
            report.double_charges += count - 1
            evidence["double_charges"].append(
                f"{key}: " + "+".join(str(p["id"]) for p in charges if charge_key(p) == key)
            )

    refunded_at_mollie: list[tuple[str, int]] = []
    for payment in charges:
        live_refunds = [r for r in payment.get("refunds", []) if r["status"] in MOLLIE_REFUND_LIVE]
        given_back = sum(_minor(r["amount"]) for r in live_refunds)
        if str(payment["id"]) in recorded_external:
            if str(payment["id"]) not in on_original:
                report.money_recorded_only_on_duplicate += 1
                evidence["money_only_on_duplicate"].append(
                    f"{payment['id']} ({charge_key(payment)})"
                )
            refunded_at_mollie += [(str(payment["id"]), _minor(r["amount"])) for r in live_refunds]
            chargebacks = payment.get("chargebacks", [])
            report.chargebacks_at_mollie += len(chargebacks)
            report.chargeback_minor_at_mollie += sum(_minor(c["amount"]) for c in chargebacks)
        elif given_back >= _minor(payment["amount"]):
            report.compensated_at_mollie += 1  # Cleeng refused it for good; money returned
        else:
            report.paid_not_recorded_in_cleeng += 1
            evidence["paid_not_recorded"].append(f"{payment['id']} ({charge_key(payment)})")
    report.refunds_at_mollie = len(refunded_at_mollie)
    report.refunded_minor_at_mollie = sum(minor for _, minor in refunded_at_mollie)

    for cleeng_payment in ledgers.cleeng_payments:
        external_id = cleeng_payment.get("externalPaymentId")
        money = mollie_by_id.get(str(external_id))
        if cleeng_payment["status"] == CLEENG_AUTHORIZED and (
            money is None or money["status"] != MOLLIE_AUTHORIZED
        ):
            report.stale_authorized_cleeng_records += 1
            evidence["stale_authorized"].append(
                f"cleeng payment {cleeng_payment['paymentId']} (order {cleeng_payment['orderId']})"
                f" authorized; {external_id} is {money['status'] if money else 'unknown'}"
            )
        if cleeng_payment["status"] not in CLEENG_MONEY_STATUSES:
            continue
        if money is None or money["status"] != MOLLIE_PAID:
            report.cleeng_records_without_money += 1
            evidence["records_without_money"].append(
                f"cleeng payment {cleeng_payment['paymentId']} -> {external_id}"
            )
        # Cleeng keeps refunds and chargebacks alike (refundType tells them apart).
        refunds = cleeng_payment.get("refunds", [])
        chargebacks = [r for r in refunds if r.get("refundType") == CLEENG_CHARGEBACK]
        charged_back = sum(int(r["amountMinor"]) for r in chargebacks)
        report.refunds_in_cleeng += len(refunds) - len(chargebacks)
        report.refunded_minor_in_cleeng += (
            int(cleeng_payment.get("refundedMinor", 0)) - charged_back
        )
        report.chargebacks_in_cleeng += len(chargebacks)
        report.chargeback_minor_in_cleeng += charged_back

    # Per payment: (count, minor units) of chargebacks at Mollie and in Cleeng.
    mollie_chargebacks: dict[str, tuple[int, int]] = {
        str(p["id"]): (len(p["chargebacks"]), sum(_minor(c["amount"]) for c in p["chargebacks"]))
        for p in charges
        if p.get("chargebacks") and str(p["id"]) in recorded_external
    }
    cleeng_chargebacks: dict[str, tuple[int, int]] = {}
    for cleeng_payment in ledgers.cleeng_payments:
        for refund in cleeng_payment.get("refunds", []):
            if refund.get("refundType") == CLEENG_CHARGEBACK:
                key = str(cleeng_payment.get("externalPaymentId"))
                count, minor = cleeng_chargebacks.get(key, (0, 0))
                cleeng_chargebacks[key] = (count + 1, minor + int(refund["amountMinor"]))
    for payment_id in sorted(set(mollie_chargebacks) | set(cleeng_chargebacks)):
        at_mollie = mollie_chargebacks.get(payment_id, (0, 0))
        in_cleeng = cleeng_chargebacks.get(payment_id, (0, 0))
        if at_mollie == in_cleeng:
            continue
        line = f"{payment_id}: {at_mollie[0]} at Mollie, {in_cleeng[0]} in Cleeng"
        if payment_id in unannounced and in_cleeng[0] < at_mollie[0]:
            report.chargebacks_unannounced += at_mollie[0] - in_cleeng[0]
            evidence["chargebacks_unannounced"].append(line)
        else:
            report.chargeback_mismatch += abs(at_mollie[0] - in_cleeng[0]) + abs(
                at_mollie[1] - in_cleeng[1]
            )
            evidence["chargeback_mismatch"].append(line)

    # A renewal Mollie settled must stay paid for: its cycle never gives it back (the Cleeng
    # order having aged while a SEPA debit was pending is no reason). Refunds Cleeng asked
    # for are the Refund workflow's and name no billing cycle.
    for payment in ledgers.mollie_payments:
        owner = owner_of(payment)
        if payment["status"] != MOLLIE_PAID or not owner.startswith(BILLING_PREFIX):
            continue
        by_cycle = [r for r in payment.get("refunds", []) if names_billing_cycle(r.get("metadata"))]
        if by_cycle:
            report.settled_renewals_refunded += 1
            evidence["settled_renewals_refunded"].append(
                f"{payment['id']} ({owner}): "
                + ", ".join(f"{r.get('id', 'refund')} {r['status']}" for r in by_cycle)
            )

    paid_per_cycle = Counter(
        owner_of(p)
        for p in ledgers.mollie_payments
        if p["status"] == MOLLIE_PAID and owner_of(p).startswith(BILLING_PREFIX)
    )
    for cycle, count in sorted(paid_per_cycle.items()):
        if count > 1:
            report.cycles_paid_more_than_once += count - 1
            evidence["cycle_paid_more_than_once"].append(
                f"{cycle}: "
                + "+".join(
                    str(p["id"])
                    for p in ledgers.mollie_payments
                    if p["status"] == MOLLIE_PAID and owner_of(p) == cycle
                )
            )

    for cleeng_payment in ledgers.cleeng_payments:
        money = mollie_by_id.get(str(cleeng_payment.get("externalPaymentId")))
        if money is None:
            continue  # a rejection recorded before Mollie made any payment
        named = (money.get("metadata") or {}).get("orderId")
        if named is None or str(named) != str(cleeng_payment["orderId"]):
            report.cleeng_order_differs_from_mollie += 1
            evidence["order_differs"].append(
                f"cleeng payment {cleeng_payment['paymentId']} (order "
                f"{cleeng_payment['orderId']}) -> {money['id']} (metadata order {named})"
            )
        if (
            cleeng_payment["status"] == CLEENG_CANCELLED
            and money["status"] == MOLLIE_PAID
            and _minor(money["amount"]) > 0
        ):
            report.cleeng_cancelled_with_money += 1
            evidence["cancelled_with_money"].append(
                f"cleeng payment {cleeng_payment['paymentId']} cancelled; {money['id']} paid "
                f"({owner_of(money) or 'no workflow'})"
            )
    report.per_method = per_method_counts(ledgers.mollie_payments, recorded_external)

    running_ids = {w.workflow_id for w in workflows if w.status == RUNNING}
    for payment in ledgers.mollie_payments:
        owner = owner_of(payment)
        if payment["status"] == MOLLIE_AUTHORIZED and owner not in running_ids:
            report.open_holds_without_live_cycle += 1
            evidence["orphan_holds"].append(f"{payment['id']} ({owner or 'no workflow'})")
        elif (
            payment["status"] == MOLLIE_EXPIRED
            and payment.get("authorizedAt")
            and owner.startswith(BILLING_PREFIX)
        ):
            # A renewal hold nobody captured or released until Mollie let it lapse: the run
            # moves Mollie's clock for days, so an orphan hold ends here rather than open.
            report.open_holds_without_live_cycle += 1
            evidence["orphan_holds"].append(f"{payment['id']} ({owner}, lapsed)")

    paid_orders = {str(p["orderId"]) for p in ledgers.cleeng_payments}
    report.orphan_renewal_orders = sum(
        1
        for order in ledgers.cleeng_orders
        if order.get("paymentOperation") == RECURRING_OPERATION
        and str(order["id"]) not in paid_orders
    )
    report.duplicate_cleeng_records = len(ledgers.cleeng_duplicates)

    running: Counter[str] = Counter()
    long_lived: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for record in workflows:
        if record.status == RUNNING:
            if record.workflow_id in long_lived_ids:
                long_lived[record.workflow_type] += 1
            else:
                running[record.workflow_type] += 1
                evidence["running_workflows"].append(record.workflow_id)
        elif record.status != "completed":
            failed[f"{record.workflow_type}: {record.failure_type or record.status}"] += 1
            evidence["failed_workflows"].append(
                f"{record.workflow_id} ({record.failure_type or record.status})"
            )
    report.workflows_running = dict(running)
    report.workflows_long_lived = dict(long_lived)
    report.workflows_failed = dict(failed)
    report.evidence = {name: items for name, items in evidence.items() if items}
    return report


async def collect_ledgers(http: httpx.AsyncClient, mollie: str, cleeng: str) -> Ledgers:
    """Read both emulators' ledgers (operator endpoints, never subject to faults)."""
    mollie_ledger = (await http.get(f"{mollie}/_emulator/ledger")).raise_for_status().json()
    cleeng_ledger = (await http.get(f"{cleeng}/_emulator/ledger")).raise_for_status().json()
    orders = (await http.get(f"{cleeng}/_emulator/orders")).raise_for_status().json()
    return Ledgers(
        mollie_payments=list(mollie_ledger["payments"]),
        cleeng_payments=list(cleeng_ledger["items"]),
        cleeng_duplicates=list(cleeng_ledger.get("duplicates", [])),
        cleeng_orders=list(orders["items"]),
    )


_STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: RUNNING,
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: FAILED,
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "completed",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


async def collect_workflows(client: Client) -> list[WorkflowRecord]:
    """Every workflow of the namespace; for failed ones the failure's type (from history)."""
    records: list[WorkflowRecord] = []
    async for execution in client.list_workflows():
        status = _STATUS_NAMES.get(execution.status, "unknown") if execution.status else RUNNING
        failure_type: str | None = None
        if status == FAILED:
            failure_type = await _failure_type(client, execution.id, execution.run_id)
        records.append(WorkflowRecord(execution.id, execution.workflow_type, status, failure_type))
    return records


async def _failure_type(client: Client, workflow_id: str, run_id: str | None) -> str:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    for event in reversed(history.events):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = event.workflow_execution_failed_event_attributes.failure
            while failure.HasField("cause") and not failure.application_failure_info.type:
                failure = failure.cause
            return failure.application_failure_info.type or failure.message[:80]
    return "unknown"


def dump(report: InvariantReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True)
