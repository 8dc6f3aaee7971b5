"""Both emulators, run as real processes with `--state-file`, come back with their state after
a graceful stop (SIGTERM) and after a SIGKILL that follows a periodic save."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.cleeng import persistence as cleeng_persistence
from emulators.mollie import persistence as mollie_persistence
from emulators.state_file import StateFile, StateKeeper
from tests.emulators.cleeng_support import initial_payment_body
from tests.support.servers import free_port

MOLLIE_KEY = "test_emulator0000000000000000000000"
CLEENG_TOKEN = "emulator-publisher-token"
# Periodic saves: often for the SIGKILL cases, which wait for one; never (within a test) for
# the SIGTERM cases, so only the save at shutdown can have written what they read back.
SAVE_OFTEN = 0.2
SAVE_NEVER = 3600.0


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def _await(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.05)


@contextmanager
def emulator_process(
    module: str, state_file: Path, port: int, extra: list[str], save_seconds: float = SAVE_OFTEN
) -> Iterator[EmulatorProcess]:
    """`python -m <module> --state-file ...` as the launcher runs it; killed if still up."""
    url = f"http://127.0.0.1:{port}"
    log = state_file.with_name(f"{module}-{time.monotonic_ns()}.log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port),
             "--public-url", url, "--state-file", str(state_file),
             "--state-save-seconds", str(save_seconds), *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = EmulatorProcess(process=process, url=url, log=log)

    def serving() -> bool:
        assert process.poll() is None, f"{module} exited:\n{log.read_text()}"
        try:
            return httpx.get(f"{url}/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _await(serving, f"{module} serving")
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def stop(running: EmulatorProcess, how: signal.Signals) -> None:
    running.process.send_signal(how)
    # uvicorn shuts down gracefully on SIGTERM, then ends itself with the same signal.
    assert running.process.wait(timeout=30) == -how


def saved_state(path: Path, file_kind: str, schema: Any) -> dict[str, Any]:
    """What the emulator last wrote (the file is replaced atomically, never half written)."""
    state = StateFile(path, kind=file_kind, schema=schema).load() if path.exists() else None
    return state or {}


def _offset_seconds(state: dict[str, Any]) -> float | None:
    offset = state.get("clock_offset")
    return offset.total_seconds() if isinstance(offset, timedelta) else None


# --------------------------------------------------------------------------------- Mollie


def _mollie_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MOLLIE_KEY}"}, timeout=10)


def _create_mollie_state(url: str) -> dict[str, Any]:
    """A customer, a paid first payment (so a mandate), a refund, a webhook that cannot be
    delivered yet, a remembered Idempotency-Key and a moved clock."""
    nobody_listens = f"http://127.0.0.1:{free_port()}/webhooks/mollie"
    with _mollie_client(url) as mollie:
        customer = mollie.post("/v2/customers", json={"name": "Ada", "email": "ada@example.com"})
        assert customer.status_code == 201, customer.text
        payment_body = {
            "amount": {"currency": "EUR", "value": "9.99"},
            "description": "Premium monthly",
            "redirectUrl": "https://shop.example.com/return",
            "webhookUrl": nobody_listens,
            "sequenceType": "first",
            "customerId": customer.json()["id"],
        }
        payment = mollie.post(
            "/v2/payments", json=payment_body, headers={"Idempotency-Key": "pay-once"}
        )
        assert payment.status_code == 201, payment.text
        payment_id = payment.json()["id"]
        paid = mollie.post(f"/_emulator/payments/{payment_id}/status", json={"status": "paid"})
        assert paid.json()["status"] == "paid"
        refund = mollie.post(
            f"/v2/payments/{payment_id}/refunds",
            json={"amount": {"currency": "EUR", "value": "2.00"}},
        )
        assert refund.status_code == 201, refund.text
        mollie.post("/_emulator/clock/advance", json={"seconds": 30})

        def webhook_attempted() -> bool:
            deliveries = mollie.get("/_emulator/webhooks").json()["deliveries"]
            return any(d["attempts"] for d in deliveries)

        _await(webhook_attempted, "a webhook attempt")
        return {
            "customer": mollie.get(f"/v2/customers/{customer.json()['id']}").json(),
            "payment": mollie.get(f"/v2/payments/{payment_id}").json(),
            "payment_body": payment_body,
            "mandates": mollie.get(f"/v2/customers/{customer.json()['id']}/mandates").json(),
            "ledger": mollie.get("/_emulator/ledger").json(),
            "webhooks": mollie.get("/_emulator/webhooks").json()["deliveries"],
            "offset": mollie.get("/_emulator/clock").json()["offsetSeconds"],
        }


def _assert_mollie_state_back(url: str, before: dict[str, Any]) -> None:
    customer_id, payment_id = before["customer"]["id"], before["payment"]["id"]
    with _mollie_client(url) as mollie:
        assert mollie.get(f"/v2/customers/{customer_id}").json() == before["customer"]
        payment = mollie.get(f"/v2/payments/{payment_id}").json()
        assert (payment["status"], payment["mandateId"], payment["amountRefunded"]) == (
            "paid",
            before["payment"]["mandateId"],
            {"currency": "EUR", "value": "2.00"},
        )
        assert mollie.get(f"/v2/customers/{customer_id}/mandates").json() == before["mandates"]
        assert mollie.get("/_emulator/ledger").json() == before["ledger"]
        webhooks = mollie.get("/_emulator/webhooks").json()["deliveries"]
        assert [(d["id"], d["paymentId"]) for d in webhooks] == [
            (d["id"], d["paymentId"]) for d in before["webhooks"]
        ]
        assert mollie.get("/_emulator/clock").json()["offsetSeconds"] == before["offset"] >= 30
        # The connector's retry after the restart gets the first answer back, not a second
        # payment.
        again = mollie.post(
            "/v2/payments", json=before["payment_body"], headers={"Idempotency-Key": "pay-once"}
        )
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == payment_id
        assert mollie.get("/_emulator/ledger").json()["count"] == 1


def test_mollie_state_survives_a_graceful_restart(tmp_path: Path) -> None:
    state_file, port = tmp_path / "mollie-emulator.state", free_port()
    with emulator_process("emulators.mollie", state_file, port, [], SAVE_NEVER) as first:
        before = _create_mollie_state(first.url)
        stop(first, signal.SIGTERM)
    with emulator_process("emulators.mollie", state_file, port, []) as second:
        _assert_mollie_state_back(second.url, before)
        assert "state restored" in second.log.read_text()
        _assert_the_clock_still_moves_what_was_under_way(second.url, before)


def _assert_the_clock_still_moves_what_was_under_way(url: str, before: dict[str, Any]) -> None:
    """The refund still settles and the undelivered webhook is tried again: the restarted
    emulator knows what its clock has yet to change, not only what was saved."""
    payment_id = before["payment"]["id"]
    attempts_before = {d["id"]: len(d["attempts"]) for d in before["webhooks"]}
    with _mollie_client(url) as mollie:
        refunds = mollie.get(f"/v2/payments/{payment_id}/refunds").json()["_embedded"]["refunds"]
        assert [r["status"] for r in refunds] == ["pending"]
        mollie.post("/_emulator/clock/advance", json={"seconds": 2 * 24 * 3600})
        refunds = mollie.get(f"/v2/payments/{payment_id}/refunds").json()["_embedded"]["refunds"]
        assert [r["status"] for r in refunds] == ["refunded"]
        deliveries = mollie.get("/_emulator/webhooks").json()["deliveries"]
        attempts_now = {d["id"]: len(d["attempts"]) for d in deliveries}
        assert all(attempts_now[key] > count for key, count in attempts_before.items())


def test_mollie_state_survives_a_sigkill_after_the_periodic_save(tmp_path: Path) -> None:
    state_file, port = tmp_path / "mollie-emulator.state", free_port()
    with emulator_process("emulators.mollie", state_file, port, []) as first:
        before = _create_mollie_state(first.url)
        payment_id = before["payment"]["id"]

        def all_saved() -> bool:
            state = saved_state(state_file, mollie_persistence.KIND, mollie_persistence.SCHEMA)
            payment = state.get("payments", {}).get(payment_id)
            # The clock moved last: a snapshot with its offset holds everything before it.
            return (
                payment is not None
                and bool(payment.refund_ids)
                and _offset_seconds(state) == before["offset"]
            )

        _await(all_saved, "the periodic save")
        stop(first, signal.SIGKILL)
    with emulator_process("emulators.mollie", state_file, port, []) as second:
        _assert_mollie_state_back(second.url, before)


# --------------------------------------------------------------------------------- Cleeng


def _cleeng_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-Publisher-Token": CLEENG_TOKEN}, timeout=10)


def _create_cleeng_state(url: str, webhook_url: str) -> dict[str, Any]:
    """A seeded purchase paid and partly refunded, a webhook subscription and a moved clock."""
    with _cleeng_client(url) as cleeng:
        seeded = cleeng.post("/_emulator/seed/purchase", json={}).json()
        recorded = cleeng.post(
            "/3.1/payments", json=initial_payment_body(seeded, externalPaymentId="tr_persisted")
        )
        assert recorded.status_code == 200, recorded.text
        payment_id = recorded.json()["payment"]["id"]
        subscribed = cleeng.put(
            "/3.1/webhook_subscriptions/refundPayment", json=[{"url": webhook_url}]
        )
        assert subscribed.status_code == 200, subscribed.text
        refunded = cleeng.patch(
            f"/3.1/payments/{payment_id}",
            json={
                "status": "refunded",
                "orderId": seeded["orderId"],
                "paymentOperation": "initial-payment",
                "refundedReason": "requested by customer",
                "refundedAmount": 2.0,
            },
        )
        assert refunded.status_code == 200, refunded.text
        cleeng.post("/_emulator/clock/advance", json={"seconds": 120})
        return {
            "seeded": seeded,
            "payment_id": payment_id,
            "order": cleeng.get(f"/3.1/orders/{seeded['orderId']}").json(),
            "ledger": cleeng.get("/_emulator/ledger").json(),
            "subscriptions": cleeng.get("/3.1/webhook_subscriptions").json(),
            "offset": cleeng.get("/_emulator/clock").json()["offsetSeconds"],
        }


def _assert_cleeng_state_back(url: str, before: dict[str, Any]) -> None:
    seeded = before["seeded"]
    with _cleeng_client(url) as cleeng:
        assert cleeng.get(f"/3.1/orders/{seeded['orderId']}").json() == before["order"]
        assert cleeng.get("/_emulator/ledger").json() == before["ledger"]
        ledger = before["ledger"]["items"]
        assert [(p["paymentId"], p["status"], p["refundedMinor"]) for p in ledger] == [
            (before["payment_id"], "refunded", 200)
        ]
        assert cleeng.get("/3.1/webhook_subscriptions").json() == before["subscriptions"]
        assert cleeng.get("/_emulator/clock").json()["offsetSeconds"] == before["offset"] > 100
        # The id counters carry on: a new order gets a new id, never an old one again.
        again = cleeng.post(
            "/_emulator/seed/purchase", json={"email": "someone.else@example.com"}
        ).json()
        assert again["orderId"] > seeded["orderId"]
        assert again["customerId"] > seeded["customerId"]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_cleeng_state_survives_a_restart(tmp_path: Path, how: signal.Signals) -> None:
    state_file, port = tmp_path / "cleeng-emulator.state", free_port()
    webhook_url = f"http://127.0.0.1:{free_port()}/webhooks/cleeng"
    extra = ["--publisher-token", CLEENG_TOKEN]
    save_seconds = SAVE_OFTEN if how == signal.SIGKILL else SAVE_NEVER
    with emulator_process("emulators.cleeng", state_file, port, extra, save_seconds) as first:
        before = _create_cleeng_state(first.url, webhook_url)

        def all_saved() -> bool:
            state = saved_state(state_file, cleeng_persistence.KIND, cleeng_persistence.SCHEMA)
            payment = state.get("payments", {}).get(before["payment_id"])
            # The clock moved last: a snapshot with its offset holds everything before it.
            return (
                payment is not None
                and payment.refunded_minor == 200
                and _offset_seconds(state) == before["offset"]
            )

        if how == signal.SIGKILL:
            _await(all_saved, "the periodic save")
        stop(first, how)
    with emulator_process("emulators.cleeng", state_file, port, extra) as second:
        _assert_cleeng_state_back(second.url, before)


def test_an_unreadable_state_file_is_set_aside_and_the_emulator_starts_fresh(
    tmp_path: Path,
) -> None:
    state_file, port = tmp_path / "mollie-emulator.state", free_port()
    state_file.write_bytes(b"not a pickle")
    with (
        emulator_process("emulators.mollie", state_file, port, []) as running,
        _mollie_client(running.url) as mollie,
    ):
        assert mollie.get("/_emulator/ledger").json()["count"] == 0
    assert (tmp_path / "mollie-emulator.state.unusable").read_bytes() == b"not a pickle"


def test_a_slow_save_spaces_out_the_next_ones(tmp_path: Path) -> None:
    """Saving a large state must not take most of the emulator's time: after a save that took
    S seconds the next waits at least 20 S (and never less than the interval)."""
    state_file = StateFile(tmp_path / "x.state", kind="mollie", schema=())
    keeper = StateKeeper(state_file, dict, interval_seconds=2)
    assert keeper.pause_after(0.01) == 2
    assert keeper.pause_after(0.5) == pytest.approx(10)
