"""The chaos run: its invariant checker counts what it must, and a small run holds them all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


SEPA_CYCLE = "billing:8:2026-12-01T00:00:00Z"
PAYPAL_CYCLE = "billing:9:2026-12-01T00:00:00Z"


def mixed_ledgers() -> Ledgers:
    """A clean ledger with every method: a SEPA renewal that sat pending, was captured and was
    later reversed (reported to Cleeng as a chargeback); a PayPal renewal partly refunded on
    Cleeng's request; a card hold released at termination (its Cleeng record cancelled)."""
    ledgers = clean_ledgers()
    ledgers.mollie_payments[0]["method"] = "creditcard"
    ledgers.mollie_payments[1]["method"] = "creditcard"
    sepa_first = mollie_payment("tr_ideal", "paid", {"workflowId": "purchase:4", "orderId": "4"})
    sepa = mollie_payment("tr_sepa", "paid", {"workflowId": SEPA_CYCLE, "orderId": "5"})
    sepa_failed = mollie_payment(
        "tr_sepa_failed",
        "failed",
        {"workflowId": "billing:10:2026-12-01T00:00:00Z", "orderId": "6"},
    )
    paypal = mollie_payment("tr_paypal", "paid", {"workflowId": PAYPAL_CYCLE, "orderId": "7"})
    released = mollie_payment(
        "tr_released", "canceled", {"workflowId": "billing:11:2026-12-01T00:00:00Z", "orderId": "8"}
    )
    sepa_first["method"] = "ideal"
    sepa_first["sequenceType"] = "first"
    for payment in (sepa, sepa_failed):
        payment["method"] = "directdebit"
        payment["pendingAt"] = "2026-11-28T00:01:00+00:00"
    sepa["chargebacks"] = [
        {"id": "chb_1", "amount": {"currency": "EUR", "value": "9.99"}, "reason": {"code": "AM04"}}
    ]
    paypal["method"] = "paypal"
    paypal["refunds"] = [
        {
            "id": "re_asked",
            "amount": {"currency": "EUR", "value": "2.00"},
            "status": "refunded",
            "metadata": {"cleengPaymentId": "7", "operation": "refund:7:abc"},
        }
    ]
    released["method"] = "creditcard"
    ledgers.mollie_payments.extend([sepa_first, sepa, sepa_failed, paypal, released])
    ledgers.cleeng_payments.extend([
        cleeng_payment(4, 4, "tr_ideal", paymentOperation="initial-payment"),
        cleeng_payment(
            5, 5, "tr_sepa", status="refunded", refundedMinor=999,
            refunds=[{"amountMinor": 999, "refundType": "chargeback"}],
        ),
        cleeng_payment(6, 6, "tr_sepa_failed", status="rejected"),
        cleeng_payment(
            7, 7, "tr_paypal", status="refunded", refundedMinor=200,
            refunds=[{"amountMinor": 200, "refundType": "refund"}],
        ),
        cleeng_payment(8, 8, "tr_released", status="cancelled"),
    ])  # fmt: skip
    return ledgers


def test_a_clean_ledger_with_every_method_holds_and_counts_per_method() -> None:
    report = check_invariants(mixed_ledgers(), [])
    assert report.violations() == {}
    assert (report.refunds_at_mollie, report.refunds_in_cleeng) == (1, 1)
    assert (report.refunded_minor_at_mollie, report.refunded_minor_in_cleeng) == (200, 200)
    assert (report.chargebacks_at_mollie, report.chargebacks_in_cleeng) == (1, 1)
    assert (report.chargeback_minor_at_mollie, report.chargeback_minor_in_cleeng) == (999, 999)
    assert report.per_method == {
        "creditcard": {"subscribers": 1, "renewals": 1},
        "directdebit": {
            "subscribers": 1,
            "renewals": 1,
            "pending_then_captured": 1,
            "settlement_failures": 1,
            "reversed_after_paid": 1,
        },
        "paypal": {"renewals": 1},
    }
    table = report.table()
    assert (
        "method directdebit: 1 subscribers, 1 renewals, 1 pending then captured, "
        "1 failed at settlement, 1 reversed after paid"
    ) in table
    assert "INVARIANTS HOLD" in table


def test_a_settled_renewal_refunded_by_its_cycle_is_counted() -> None:
    """The cycle's compensating refund (its metadata names the billing workflow) of a renewal
    Mollie settled; a refund Cleeng asked for (the PayPal one) is not counted."""
    ledgers = mixed_ledgers()
    sepa = next(p for p in ledgers.mollie_payments if p["id"] == "tr_sepa")
    sepa["refunds"] = [
        {
            "id": "re_comp",
            "amount": {"currency": "EUR", "value": "9.99"},
            "status": "pending",
            "metadata": {
                "workflowId": SEPA_CYCLE,
                "operation": f"{SEPA_CYCLE}:compensating-refund",
            },
        }
    ]
    report = check_invariants(ledgers, [])
    assert report.settled_renewals_refunded == 1
    assert report.evidence["settled_renewals_refunded"] == [
        f"tr_sepa ({SEPA_CYCLE}): re_comp pending"
    ]
    assert "settled_renewals_refunded" in report.violations()


def test_a_cleeng_record_under_another_order_than_its_mollie_payment_is_counted() -> None:
    ledgers = mixed_ledgers()
    paypal = next(p for p in ledgers.mollie_payments if p["id"] == "tr_paypal")
    paypal["metadata"] = {"workflowId": PAYPAL_CYCLE, "orderId": "70"}
    report = check_invariants(ledgers, [])
    assert report.cleeng_order_differs_from_mollie == 1
    assert report.evidence["order_differs"] == [
        "cleeng payment 7 (order 7) -> tr_paypal (metadata order 70)"
    ]
    assert report.violations() == {"cleeng_order_differs_from_mollie": 1}


def test_a_cycle_with_two_paid_payments_is_counted() -> None:
    """A reversed SEPA debit charged again in the same cycle, say: the second is recorded too,
    so only the per-cycle count (and the double charge) shows it."""
    ledgers = mixed_ledgers()
    again = mollie_payment("tr_sepa_again", "paid", {"workflowId": SEPA_CYCLE, "orderId": "9"})
    again["method"] = "directdebit"
    ledgers.mollie_payments.append(again)
    ledgers.cleeng_payments.append(cleeng_payment(9, 9, "tr_sepa_again"))
    report = check_invariants(ledgers, [])
    assert report.cycles_paid_more_than_once == 1
    assert report.evidence["cycle_paid_more_than_once"] == [f"{SEPA_CYCLE}: tr_sepa+tr_sepa_again"]
    assert set(report.violations()) == {"cycles_paid_more_than_once", "double_charges"}


def test_a_cleeng_record_cancelled_while_its_money_was_taken_is_counted() -> None:
    """A hold released at termination whose capture went through after all: Mollie says paid,
    Cleeng holds the record cancelled."""
    ledgers = mixed_ledgers()
    released = next(p for p in ledgers.mollie_payments if p["id"] == "tr_released")
    released["status"] = "paid"
    report = check_invariants(ledgers, [])
    assert report.cleeng_cancelled_with_money == 1
    assert report.evidence["cancelled_with_money"] == [
        "cleeng payment 8 cancelled; tr_released paid (billing:11:2026-12-01T00:00:00Z)"
    ]
    assert set(report.violations()) == {
        "cleeng_cancelled_with_money",
        "paid_not_recorded_in_cleeng",
    }


def test_a_chargeback_not_reported_to_cleeng_is_counted_apart_from_refunds() -> None:
    ledgers = mixed_ledgers()
    sepa_record = next(p for p in ledgers.cleeng_payments if p["paymentId"] == 5)
    sepa_record.update(status="captured", refundedMinor=0, refunds=[])
    report = check_invariants(ledgers, [])
    assert (report.chargebacks_at_mollie, report.chargebacks_in_cleeng) == (1, 0)
    assert report.evidence["chargeback_mismatch"] == ["tr_sepa: 1 at Mollie, 0 in Cleeng"]
    assert report.violations() == {"chargeback_mismatch": 1000}

    # Its only webhook lost: no flow of the connector can know of it (the scheduled
    # reconciliation finds such chargebacks), so it is reported, not counted as a violation.
    report = check_invariants(ledgers, [], unannounced=frozenset({"tr_sepa"}))
    assert report.chargebacks_unannounced == 1
    assert report.evidence["chargebacks_unannounced"] == ["tr_sepa: 1 at Mollie, 0 in Cleeng"]
    assert report.holds


def test_a_renewal_hold_left_to_lapse_at_mollie_counts_as_an_orphan_hold() -> None:
    ledgers = mixed_ledgers()
    lapsed = mollie_payment(
        "tr_lapsed", "expired", {"workflowId": "billing:12:2026-12-01T00:00:00Z", "orderId": "9"}
    )
    lapsed["authorizedAt"] = "2026-11-28T00:01:00+00:00"
    never_held = mollie_payment("tr_unpaid", "expired", {"workflowId": "purchase:13"})
    ledgers.mollie_payments.extend([lapsed, never_held])
    report = check_invariants(ledgers, [])
    assert report.open_holds_without_live_cycle == 1
    assert report.evidence["orphan_holds"] == [
        "tr_lapsed (billing:12:2026-12-01T00:00:00Z, lapsed)"
    ]


@pytest.mark.long_running(seconds=130)
def test_a_small_chaos_run_loses_nothing_and_charges_nobody_twice(tmp_path: Path) -> None:
    """End to end: 12 subscribers (4 paying with iDEAL, so renewing by SEPA Direct Debit, 1
    with PayPal, the rest by card), faults on, one worker kill (when the launcher supervises),
    SEPA debits failing at settlement and one reversed after it was paid; the driver moves
    Mollie's clock with Cleeng's past every settlement and reversal.

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
    per_method = report["per_method"]
    assert {"creditcard", "directdebit", "paypal"} <= set(per_method), per_method
    assert all(per_method[m].get("subscribers", 0) > 0 for m in ("creditcard", "paypal"))
    # SEPA debits sat pending and were settled within the run: the clocks moved together.
    assert per_method["directdebit"].get("pending_then_captured", 0) > 0, per_method
    assert sum(report["faults_injected"].values()) > 0
    assert "kills ['worker']" in report["notes"][0], report["notes"]
    assert result.returncode == 0, result.stdout[-4000:]
