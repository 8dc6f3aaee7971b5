"""The money invariants of a chaos run: Mollie's ledger, Cleeng's ledger and Temporal compared.

`check_invariants` is pure: it takes what the emulators' `/_emulator/ledger` endpoints (and
Cleeng's `/_emulator/orders`) answered and the workflow list, and counts, payment by payment,
everything that must never happen (double charges, money taken but not recorded, records
without money, card holds nobody will capture or release, refunds on one side only) next to
the documented residual risks that are only reported. `collect_ledgers` and
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
CLEENG_AUTHORIZED = "authorized"
# Mollie refunds that did (or will) give money back.
MOLLIE_REFUND_LIVE = frozenset({"queued", "pending", "processing", "refunded"})
CLEENG_MONEY_STATUSES = frozenset({"captured", "refunded"})
RECURRING_OPERATION = "recurring-payment"
RUNNING = "running"
FAILED = "failed"


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
            ("open card holds without a live cycle", str(self.open_holds_without_live_cycle),
             "must be 0"),
            ("refunds at Mollie / in Cleeng",
             f"{self.refunds_at_mollie} / {self.refunds_in_cleeng}", "must be equal"),
            ("refunded minor units at Mollie / in Cleeng",
             f"{self.refunded_minor_at_mollie} / {self.refunded_minor_in_cleeng}",
             "must be equal"),
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


def check_invariants(
    ledgers: Ledgers,
    workflows: list[WorkflowRecord],
    *,
    long_lived_ids: frozenset[str] = frozenset(),
    charges_expected: int | None = None,
) -> InvariantReport:
    """Compare the ledgers payment by payment; see the module docstring."""
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
        report.refunds_in_cleeng += len(cleeng_payment.get("refunds", []))
        report.refunded_minor_in_cleeng += int(cleeng_payment.get("refundedMinor", 0))

    running_ids = {w.workflow_id for w in workflows if w.status == RUNNING}
    for payment in ledgers.mollie_payments:
        if payment["status"] != MOLLIE_AUTHORIZED:
            continue
        owner = str((payment.get("metadata") or {}).get("workflowId", ""))
        if owner not in running_ids:
            report.open_holds_without_live_cycle += 1
            evidence["orphan_holds"].append(f"{payment['id']} ({owner or 'no workflow'})")

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
