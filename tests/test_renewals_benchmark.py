"""The renewals benchmark: its statistics and tables, its ledger check, and a tiny real run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.cleeng_payloads import CleengEnvelope, DunningData
from api.cleeng_signature import signature_is_valid
from benchmarks.renewal_load import (
    TOPIC_AUTHORISATION,
    TOPIC_CAPTURE,
    Subscriber,
    check_ledgers,
    minor_units,
    signed_headers,
    webhook_body,
)
from benchmarks.renewal_report import (
    BenchmarkReport,
    Correctness,
    LatencySummary,
    StageResult,
    bare_ratios,
    percentile,
    render_markdown,
    render_results_table,
    summarize_latency,
    throughput,
)
from benchmarks.renewals import LoadPlan, parse_variant, plan_loads
from settings import EMULATOR_WEBHOOK_SECRET

REPO = Path(__file__).resolve().parent.parent
DUE = datetime(2031, 3, 1, tzinfo=UTC)


def subscriber(index: int) -> Subscriber:
    return Subscriber(
        customer_id=100 + index,
        subscription_id=200 + index,
        offer_id="S123456789_NL",
        payment_details_id=300 + index,
        mollie_customer_id=f"cst_{index}",
        mandate_id=f"mdt_{index}",
        due=DUE,
    )


def mollie_payment(index: int, payment_id: str, status: str = "paid") -> dict[str, Any]:
    return {
        "id": payment_id,
        "customerId": f"cst_{index}",
        "sequenceType": "recurring",
        "status": status,
        "amount": {"currency": "EUR", "value": "9.99"},
    }


def cleeng_record(index: int, payment_id: str, order_id: int) -> dict[str, Any]:
    return {
        "paymentId": order_id,
        "orderId": order_id,
        "subscriptionId": 200 + index,
        "paymentOperation": "recurring-payment",
        "status": "captured",
        "externalPaymentId": payment_id,
        "amountMinor": 999,
    }


# ---------------------------------------------------------------------------- statistics


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([], 50) is None


def test_a_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_latency_summary_counts_and_ranks() -> None:
    summary = summarize_latency([10.0] * 98 + [500.0, 900.0])
    assert summary == LatencySummary(count=100, p50_ms=10.0, p95_ms=10.0, p99_ms=500.0)


def test_throughput_runs_from_first_send_to_last_close() -> None:
    rate, drain = throughput(100, first_sent=1000.0, last_sent=1004.0, last_closed=1010.0)
    assert rate == 10.0
    assert drain == 6.0
    assert throughput(100, 1000.0, 1004.0, None) == (None, None)
    assert throughput(0, 1000.0, 1004.0, 1010.0) == (None, None)


def test_connector_rows_get_their_ratio_to_the_bare_row_of_the_same_load() -> None:
    connector = StageResult("tuned", "capture", "burst", 100, 100, renewals_per_second=20.0)
    other_size = StageResult("tuned", "capture", "burst", 1000, 1000, renewals_per_second=30.0)
    bare = StageResult("tuned", "bare-compact", "burst", 100, 100, renewals_per_second=80.0)
    bare_ratios([connector, other_size, bare])
    assert connector.ratio_to_bare == {"bare-compact": 0.25}
    assert other_size.ratio_to_bare == {}
    assert bare.ratio_to_bare == {}


# ----------------------------------------------------------------------------- rendering


def correct() -> Correctness:
    return Correctness(
        subscribers=5, mollie_paid_exactly_once=5, cleeng_captured_exactly_once=5,
        ledgers_agree=True,
    )  # fmt: skip


def test_the_table_shows_one_row_per_load_with_its_figures() -> None:
    row = StageResult(
        "baseline", "capture", "paced", 25, 500, sent=500, drained=True,
        ack=LatencySummary(500, 12.25, 40.0, 81.5), renewals_per_second=24.5,
        drain_seconds=1.25, correctness=correct(), completed=500,
    )  # fmt: skip
    bare = StageResult("baseline", "bare-activities", "paced", 25, 500, drained=True)
    table = render_results_table([row, bare]).splitlines()
    assert len(table) == 4  # header, rule, two rows
    assert table[0].startswith("| variant | mode | load | size |")
    assert table[2] == (
        "| baseline | capture | paced | 25/s | 500 | 0 | 12.2 | 40.0 | 81.5 | 24.5 | 1.2 "
        "| - | - | - / - | - | yes |"
    )
    assert "| n/a |" in table[3]


def test_a_load_that_did_not_drain_or_lost_a_renewal_says_so() -> None:
    check = correct()
    check.missing, check.cleeng_captured_exactly_once = 1, 4
    row = StageResult(
        "tuned", "authorise", "burst", 5, 5, completed=4, drained=False, correctness=check
    )
    table = render_results_table([row])
    assert "(not drained: 4/5)" in table
    assert "NO (1 missing, 0 dup)" in table
    assert "| N=5 |" in table


def test_the_markdown_names_the_machine_and_the_command() -> None:
    report = BenchmarkReport(
        machine={"cpu_model": "Test CPU", "cores": 2, "ram_gb": 4.0, "python": "3.11.7",
                 "temporal_cli": "temporal version 1.9.1"},
        command=".venv/bin/python benchmarks/renewals.py --sizes 5",
        settings={},
        stages=[StageResult("tuned", "capture", "burst", 5, 5, notes=["slow start"])],
    )  # fmt: skip
    markdown = render_markdown(report)
    assert "Test CPU, 2 cores, 4.0 GB RAM, Python 3.11.7, temporal version 1.9.1" in markdown
    assert "`.venv/bin/python benchmarks/renewals.py --sizes 5`" in markdown
    assert "- tuned capture burst N=5: slow start" in markdown


# ------------------------------------------------------------------------ inputs and ledgers


def test_variants_parse_with_and_without_overrides() -> None:
    baseline = parse_variant("baseline:RENEWAL_COMPACT_HISTORY=false,MOLLIE_THREADS=0")
    assert baseline.name == "baseline"
    assert baseline.env == {"RENEWAL_COMPACT_HISTORY": "false", "MOLLIE_THREADS": "0"}
    assert parse_variant("tuned:").env == {}
    with pytest.raises(argparse.ArgumentTypeError, match="not KEY=value"):
        parse_variant("broken:WORKER_PROCESSES")


def test_loads_are_bursts_then_paced_and_paced_ones_count_rate_times_seconds() -> None:
    plans = plan_loads(["capture"], [100], [10, 25])
    assert plans == [
        LoadPlan("capture", "burst", 100),
        LoadPlan("capture", "paced", 10),
        LoadPlan("capture", "paced", 25),
    ]
    assert [p.count(20) for p in plans] == [100, 200, 500]


def test_the_webhooks_are_signed_and_parse_as_the_shim_parses_them() -> None:
    for topic in (TOPIC_AUTHORISATION, TOPIC_CAPTURE):
        body = webhook_body(subscriber(1), topic)
        signature = signed_headers(body)["X-Cleeng-Signature"]
        assert signature_is_valid(EMULATOR_WEBHOOK_SECRET, body, signature)
        envelope = CleengEnvelope.model_validate(json.loads(body))
        data = DunningData.model_validate(envelope.data)
        assert envelope.topic == topic
        assert data.subscription_id == "201"
        assert data.token == "mollie:cst_1:mdt_1"
        assert data.expiration_date == DUE
    authorise = DunningData.model_validate(
        json.loads(webhook_body(subscriber(1), TOPIC_AUTHORISATION))["data"]
    )
    assert authorise.dunning_attempt_date is not None
    assert authorise.dunning_attempt_date < DUE


def test_matching_ledgers_agree() -> None:
    subscribers = [subscriber(1), subscriber(2)]
    mollie = {
        "payments": [
            mollie_payment(1, "tr_a"),
            mollie_payment(2, "tr_b"),
            # The zero-amount card check that made the mandate is not a renewal.
            {**mollie_payment(1, "tr_first"), "sequenceType": "first"},
        ]
    }
    cleeng = {"items": [cleeng_record(1, "tr_a", 11), cleeng_record(2, "tr_b", 12)]}
    check = check_ledgers(subscribers, mollie, cleeng)
    assert check.ledgers_agree
    assert check.all_recorded
    assert (check.missing, check.duplicates) == (0, 0)


def test_a_double_charge_a_missing_record_and_a_mismatch_are_all_caught() -> None:
    subscribers = [subscriber(1), subscriber(2), subscriber(3)]
    mollie = {
        "payments": [
            mollie_payment(1, "tr_a"),
            mollie_payment(1, "tr_a2"),  # charged twice
            mollie_payment(2, "tr_b"),  # never recorded in Cleeng
            mollie_payment(3, "tr_c"),
        ]
    }
    cleeng = {
        "items": [cleeng_record(1, "tr_a", 11), cleeng_record(3, "tr_other", 13)],
        "duplicates": [{"orderId": 11}],
    }
    check = check_ledgers(subscribers, mollie, cleeng)
    assert check.duplicates == 1
    assert check.missing == 1
    assert check.cleeng_duplicate_records == 1
    assert check.cleeng_captured_exactly_once == 2
    assert not check.all_recorded
    assert not check.ledgers_agree
    assert any("disagree" in line for line in check.evidence)


def test_mollie_amounts_become_minor_units() -> None:
    assert minor_units({"currency": "EUR", "value": "9.99"}) == 999
    assert minor_units({"currency": "JPY", "value": "1000"}) == 1000


# ------------------------------------------------------------------------------ a real run


@pytest.mark.long_running(seconds=40)
def test_a_tiny_benchmark_run_renews_every_subscriber_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    command = [
        sys.executable, "benchmarks/renewals.py",
        "--sizes", "5", "--rates", "5", "--paced-seconds", "2",
        "--modes", "capture,authorise", "--warmup", "2", "--deadline-minutes", "2.5",
        "--out", str(out),
    ]  # fmt: skip
    finished = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=175, check=False
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads(out.with_name("tiny.json").read_text())
    assert {"machine", "command", "settings", "stages", "notes"} <= set(report)
    assert {"cpu_model", "cores", "ram_gb", "python", "temporal_cli"} <= set(report["machine"])
    connector = [s for s in report["stages"] if s["mode"] in ("capture", "authorise")]
    bare = [s for s in report["stages"] if s["mode"].startswith("bare-")]
    assert {(s["mode"], s["load"]) for s in connector} == {
        ("capture", "burst"), ("capture", "paced"), ("authorise", "burst"), ("authorise", "paced")
    }  # fmt: skip
    assert {s["mode"] for s in bare} == {"bare-activities", "bare-compact", "bare-one-activity"}
    for stage in connector:
        assert stage["drained"], stage
        assert stage["errors"] == 0, stage["error_samples"]
        assert stage["failed_workflows"] == 0
        assert stage["completed"] == stage["expected"] == stage["correctness"]["subscribers"]
        assert stage["correctness"]["duplicates"] == 0
        assert stage["correctness"]["cleeng_duplicate_records"] == 0
        assert stage["correctness"]["ledgers_agree"]
        assert stage["correctness"]["all_recorded"]
        assert {"p50_ms", "p95_ms", "p99_ms"} <= set(stage["ack"])
        assert stage["renewals_per_second"] is not None
        assert stage["history_events_per_renewal"] is not None
        assert {p["name"] for p in stage["processes"]} >= {"temporal", "worker", "api"}
    for stage in connector:
        if stage["mode"] == "authorise":
            assert stage["waiting"]["cycles"] == stage["expected"]
    for stage in bare:
        assert stage["drained"]
        assert stage["completed"] == stage["expected"]
    assert out.with_name("tiny.md").read_text().startswith("# Renewals benchmark")
    assert out.with_name("tiny.png").stat().st_size > 0
