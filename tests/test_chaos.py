"""The chaos run: its invariant checker counts what it must, and a small run holds them all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.chaos_invariants import Ledgers, WorkflowRecord, check_invariants

REPO = Path(__file__).resolve().parent.parent
CYCLE = "billing:7:2026-12-01T00:00:00Z"


def mollie_payment(payment_id: str, status: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": payment_id,
        "status": status,
        "amount": {"currency": "EUR", "value": "9.99"},
        "metadata": metadata,
        "refunds": [],
    }


def cleeng_payment(
    payment_id: int, order_id: int, external_id: str, **extra: Any
) -> dict[str, Any]:
    return {
        "paymentId": payment_id,
        "orderId": order_id,
        "externalPaymentId": external_id,
        "status": "captured",
        "refundedMinor": 0,
        "refunds": [],
        "duplicateOf": None,
        **extra,
    }


def clean_ledgers() -> Ledgers:
    return Ledgers(
        mollie_payments=[
            mollie_payment("tr_first", "paid", {"workflowId": "purchase:1", "orderId": "1"}),
            mollie_payment("tr_renewal", "paid", {"workflowId": CYCLE, "orderId": "2"}),
            mollie_payment("tr_declined", "failed", {"workflowId": CYCLE, "orderId": "2"}),
        ],
        cleeng_payments=[
            cleeng_payment(1, 1, "tr_first", paymentOperation="initial-payment"),
            cleeng_payment(2, 2, "tr_renewal", paymentOperation="recurring-payment"),
        ],
        cleeng_duplicates=[],
        cleeng_orders=[{"id": 1}, {"id": 2, "paymentOperation": "recurring-payment"}],
    )


def test_clean_ledgers_hold_every_invariant() -> None:
    report = check_invariants(clean_ledgers(), [], charges_expected=2)
    assert report.charges_at_mollie == 2
    assert report.violations() == {}
    assert report.holds


def test_a_double_charge_and_an_unrecorded_payment_are_both_counted() -> None:
    ledgers = clean_ledgers()
    # The same cycle charged a second time, and that second charge never reached Cleeng.
    ledgers.mollie_payments.append(
        mollie_payment("tr_again", "paid", {"workflowId": CYCLE, "orderId": "3"})
    )
    report = check_invariants(ledgers, [])
    assert report.double_charges == 1
    assert report.paid_not_recorded_in_cleeng == 1
    assert report.evidence["double_charges"] == [f"{CYCLE}: tr_renewal+tr_again"]
    assert report.evidence["paid_not_recorded"] == [f"tr_again ({CYCLE})"]
    assert not report.holds
    assert "VIOLATED" in report.table()


def test_a_capture_recorded_only_on_a_duplicate_record_is_reported_not_lost() -> None:
    """A lost reply to POST /3.1/payments: the retry wrote a second record, which the capture
    then updated; the first stays `authorized`. Money is recorded, the residual risk shows."""
    ledgers = clean_ledgers()
    ledgers.cleeng_payments[1] = cleeng_payment(
        2, 2, "tr_renewal", status="authorized", paymentOperation="recurring-payment"
    )
    ledgers.cleeng_payments.append(
        cleeng_payment(3, 2, "tr_renewal", duplicateOf=2, paymentOperation="recurring-payment")
    )
    report = check_invariants(ledgers, [])
    assert report.paid_not_recorded_in_cleeng == 0
    assert report.money_recorded_only_on_duplicate == 1
    assert report.stale_authorized_cleeng_records == 1
    assert report.holds


def test_records_without_money_holds_refunds_and_workflows_are_counted() -> None:
    ledgers = clean_ledgers()
    ledgers.cleeng_payments.append(cleeng_payment(3, 4, "tr_missing"))
    ledgers.mollie_payments.append(
        mollie_payment("tr_hold", "authorized", {"workflowId": "billing:8:2026-12-01T00:00:00Z"})
    )
    ledgers.mollie_payments[0]["refunds"] = [
        {"amount": {"currency": "EUR", "value": "5.00"}, "status": "refunded"}
    ]
    ledgers.cleeng_orders.append({"id": 9, "paymentOperation": "recurring-payment"})
    workflows = [
        WorkflowRecord("refund:1:x", "Refund", "failed", "CleengRefused"),
        WorkflowRecord("purchase:5", "InitialPurchase", "running"),
        WorkflowRecord(CYCLE, "RecurringBilling", "running"),
    ]
    report = check_invariants(ledgers, workflows, long_lived_ids=frozenset({CYCLE}))
    assert report.cleeng_records_without_money == 1
    assert report.open_holds_without_live_cycle == 1
    assert (report.refunds_at_mollie, report.refunds_in_cleeng) == (1, 0)
    assert report.refunded_minor_at_mollie == 500
    assert report.orphan_renewal_orders == 1
    assert report.workflows_failed == {"Refund: CleengRefused": 1}
    assert report.workflows_running == {"InitialPurchase": 1}
    assert report.workflows_long_lived == {"RecurringBilling": 1}
    assert set(report.violations()) == {
        "cleeng_records_without_money",
        "open_holds_without_live_cycle",
        "refund_mismatch",
        "workflows_failed",
        "workflows_still_running",
    }


def test_a_small_chaos_run_loses_nothing_and_charges_nobody_twice(tmp_path: Path) -> None:
    """End to end: 12 subscribers, faults on, one worker kill (when the launcher supervises).

    Fault rates are gentler than the benchmark's defaults (15% of requests instead of 25%).
    A capture is three requests; after seven failed attempts in a row its back-off passes a
    minute and doubles from there, and the run waits for it before moving Cleeng's clock on
    (a run once took 12 minutes so). At 25% that happens to 2.2% of captures, at 15% to
    0.14%, and every kind of fault still occurs."""
    out = tmp_path / "chaos.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "chaos.py"),
            "--subscribers=12",
            "--seed=5",
            "--rounds=1",
            "--worker-kills=1",
            "--no-temporal-restart",
            "--deadline-minutes=12",
            "--error-rate=0.06",
            "--rate-limit-rate=0.06",
            "--timeout-after-commit-rate=0.03",
            f"--json={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.exists(), result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["violations"] == {}, result.stdout[-4000:]
    assert report["charges_at_mollie"] > 0
    assert sum(report["faults_injected"].values()) > 0
    assert "kills ['worker']" in report["notes"][0], report["notes"]
    assert result.returncode == 0, result.stdout[-4000:]
