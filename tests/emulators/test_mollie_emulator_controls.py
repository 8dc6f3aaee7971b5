"""The emulator's own surface: controls, pages, logging, configuration and the entry point."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from starlette.types import Message, Scope

from emulators import KEEP_ALIVE_SECONDS
from emulators.mollie import MollieEmulatorConfig, create_app
from emulators.mollie.__main__ import config_from_args, parse_args
from emulators.mollie.emulator import MollieEmulator
from tests.emulators.test_mollie_support import (
    API_KEY,
    RunningEmulator,
    WebhookReceiver,
    eur,
    running_emulator,
)
from tests.support.servers import free_port

REDIRECT = "https://shop.example/return"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


def api(emulator: RunningEmulator, method: str, path: str, body: Any = None) -> httpx.Response:
    return emulator.http.request(method, f"/v2{path}", json=body, headers=AUTH)


def create_payment(emulator: RunningEmulator, **extra: Any) -> dict[str, Any]:
    body = {"amount": eur("10.00"), "description": "Control test", "redirectUrl": REDIRECT}
    response = api(emulator, "POST", "/payments", body | extra)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# ------------------------------------------------------------------------------ clock


def test_clock_moves_forward_only(emulator: RunningEmulator) -> None:
    before = at(emulator.control("GET", "/clock")["now"])
    moved = emulator.advance(3600)
    assert timedelta(hours=1) <= at(moved["now"]) - before < timedelta(hours=1, seconds=5)
    assert moved["offsetSeconds"] >= 3600

    backwards = emulator.http.post("/_emulator/clock/advance", json={"seconds": -5})
    assert backwards.status_code == 422
    assert backwards.json()["field"] == "seconds"
    assert at(emulator.control("GET", "/clock")["now"]) >= at(moved["now"])


def test_reset_forgets_records_keys_faults_and_clock(emulator: RunningEmulator) -> None:
    create_payment(emulator)
    emulator.set_faults(latencyMs=5)
    emulator.advance(7200)
    emulator.control("POST", "/reset")
    assert emulator.ledger() == []
    assert emulator.control("GET", "/faults")["latencyMs"] == 0
    assert emulator.control("GET", "/clock")["offsetSeconds"] < 5


# ---------------------------------------------------------------------------- ledger


def test_ledger_shows_each_payment_with_its_refunds_and_chargebacks(
    emulator: RunningEmulator,
) -> None:
    payment = create_payment(emulator, metadata={"cleengOrder": 42})
    emulator.checkout(payment["_links"]["checkout"]["href"], "paid")
    refund = api(emulator, "POST", f"/payments/{payment['id']}/refunds", {"amount": eur("1.50")})
    assert refund.status_code == 201
    emulator.control("POST", f"/payments/{payment['id']}/chargeback", {"amount": eur("2.00")})

    (entry,) = emulator.ledger()
    assert entry["id"] == payment["id"]
    assert entry["status"] == "paid"
    assert entry["metadata"] == {"cleengOrder": 42}
    assert entry["amount"] == eur("10.00")
    assert entry["amountRefunded"] == eur("1.50")
    assert entry["amountChargedBack"] == eur("2.00")
    assert [r["id"] for r in entry["refunds"]] == [refund.json()["id"]]
    assert entry["chargebacks"][0]["amount"] == eur("2.00")
    assert entry["sequenceType"] == "oneoff"


# ------------------------------------------------------------------------------ pages


def test_landing_page_lists_payments_with_checkout_links(emulator: RunningEmulator) -> None:
    payment = create_payment(emulator, description="Visible <b>here</b>")
    page = emulator.http.get("/")
    assert page.status_code == 200
    assert payment["id"] in page.text
    assert f'href="/checkout/{payment["id"]}"' in page.text
    assert "Visible &lt;b&gt;here&lt;/b&gt;" in page.text  # escaped, not rendered


def test_checkout_refuses_unknown_closed_and_invalid_choices(emulator: RunningEmulator) -> None:
    assert emulator.http.get("/checkout/tr_unknown").status_code == 404
    payment = create_payment(emulator, cancelUrl="https://shop.example/cancel")
    checkout = payment["_links"]["checkout"]["href"]

    assert emulator.checkout(checkout, "authorized").status_code == 400  # automatic capture
    assert emulator.checkout(checkout, "bogus").status_code == 400
    assert api(emulator, "GET", f"/payments/{payment['id']}").json()["status"] == "open"

    canceled = emulator.checkout(checkout, "canceled")
    assert canceled.status_code == 303
    assert canceled.headers["location"] == "https://shop.example/cancel"

    closed = emulator.http.get(checkout)
    assert closed.status_code == 409
    assert "no longer open" in closed.text


def test_change_payment_state_page_and_form(emulator: RunningEmulator) -> None:
    payment = create_payment(emulator)
    state_url = payment["_links"]["changePaymentState"]["href"]
    page = emulator.http.get(state_url)
    assert page.status_code == 200
    assert 'value="failed"' in page.text

    chosen = emulator.http.post(
        state_url, data={"status": "failed", "failureReason": "possible_fraud"}
    )
    assert chosen.status_code == 303
    failed = api(emulator, "GET", f"/payments/{payment['id']}").json()
    assert failed["status"] == "failed"
    assert failed["details"]["failureReason"] == "possible_fraud"
    assert "changePaymentState" not in failed["_links"]

    again = emulator.http.post(state_url, json={"status": "paid"})
    assert again.status_code == 409
    assert again.json()["detail"].startswith(f"The payment {payment['id']} is already final")


def test_forced_status_notifies_the_webhook(
    emulator: RunningEmulator, receiver: WebhookReceiver
) -> None:
    payment = create_payment(emulator, webhookUrl=receiver.url)
    forced = emulator.control("POST", f"/payments/{payment['id']}/status", {"status": "pending"})
    assert forced["status"] == "pending"
    assert receiver.received() == []  # Mollie does not announce pending
    emulator.control("POST", f"/payments/{payment['id']}/status", {"status": "paid"})
    assert receiver.wait_for(1) == [payment["id"]]
    bad = emulator.http.post(f"/_emulator/payments/{payment['id']}/status", json={"status": "x"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "status"


def test_forced_refund_failure_restores_the_refundable_amount(
    emulator: RunningEmulator, receiver: WebhookReceiver
) -> None:
    payment = create_payment(emulator, webhookUrl=receiver.url)
    emulator.checkout(payment["_links"]["checkout"]["href"], "paid")
    refund = api(emulator, "POST", f"/payments/{payment['id']}/refunds", {"amount": eur("4.00")})
    refund_id = refund.json()["id"]

    failed = emulator.control("POST", f"/refunds/{refund_id}/status", {"status": "failed"})
    assert failed["status"] == "failed"
    after = api(emulator, "GET", f"/payments/{payment['id']}").json()
    assert after["amountRemaining"] == eur("10.00")
    assert receiver.wait_for(2) == [payment["id"], payment["id"]]


def test_authorization_expires_when_capture_before_passes(emulator: RunningEmulator) -> None:
    customer = api(emulator, "POST", "/customers", {"name": "Held"}).json()
    payment = create_payment(
        emulator, captureMode="manual", sequenceType="first", customerId=customer["id"]
    )
    emulator.checkout(payment["_links"]["checkout"]["href"], "authorized")
    held = api(emulator, "GET", f"/payments/{payment['id']}").json()
    assert held["status"] == "authorized"
    emulator.advance(7 * 24 * 3600)
    expired = api(emulator, "GET", f"/payments/{payment['id']}").json()
    assert expired["status"] == "expired"
    assert at(expired["expiredAt"]) == at(held["captureBefore"])


def test_fault_settings_are_validated_and_inspectable(emulator: RunningEmulator) -> None:
    rejected = emulator.http.post("/_emulator/faults", json={"errorRate": 2})
    assert rejected.status_code == 422
    assert rejected.json()["field"] == "errorRate"

    settings = emulator.set_faults(failNext=[{"status": 502, "count": 3}], seed=1)
    assert settings["failNext"][0]["count"] == 3
    api(emulator, "GET", "/payments")
    assert emulator.control("GET", "/faults")["failNext"][0]["count"] == 2
    assert emulator.control("DELETE", "/faults")["failNext"] == []


def test_next_outcomes_for_an_unknown_customer_is_not_found(emulator: RunningEmulator) -> None:
    response = emulator.http.post(
        "/_emulator/customers/cst_nobody/next-outcomes", json={"outcomes": [{"status": "paid"}]}
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "No customer exists with token cst_nobody."


# ---------------------------------------------------------------------------- logging


def test_one_log_line_per_request_without_the_api_key(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # No wait needed: the emulator writes the line before it sends the end of the body, so
    # it is there by the time the client has read the response.
    caplog.set_level(logging.INFO, logger="emulators.mollie")
    create_payment(emulator)
    api(emulator, "GET", "/payments/tr_missing")
    lines = [r.getMessage() for r in caplog.records if r.name == "emulators.mollie"]
    assert any(line.startswith("POST /v2/payments -> 201") for line in lines)
    assert any(line.startswith("GET /v2/payments/tr_missing -> 404") for line in lines)
    assert all(API_KEY not in record.getMessage() for record in caplog.records)


async def test_the_log_line_is_written_before_the_body_is_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ordering the test above relies on, checked at the ASGI boundary: when the last
    body chunk reaches the server, the request's line is already logged (no race to lose)."""
    caplog.set_level(logging.INFO, logger="emulators.mollie")
    config = MollieEmulatorConfig(deliver_webhooks=False)
    app = create_app(config)
    lines_at_last_chunk: list[list[str]] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            lines_at_last_chunk.append(
                [r.getMessage() for r in caplog.records if r.name == "emulators.mollie"]
            )

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v2/payments/tr_missing",
        "raw_path": b"/v2/payments/tr_missing",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {config.api_key}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    await cast(MollieEmulator, app.state.emulator).aclose()
    [lines] = lines_at_last_chunk
    assert any(line.startswith("GET /v2/payments/tr_missing -> 404") for line in lines)


def test_the_request_journal_lists_api_calls_in_order(emulator: RunningEmulator) -> None:
    payment = create_payment(emulator)
    api(emulator, "GET", f"/payments/{payment['id']}")
    emulator.http.get(f"/checkout/{payment['id']}")  # not an API call: not journaled
    api(emulator, "GET", "/payments?limit=5")
    journal = emulator.control("GET", "/requests")
    assert journal["requests"] == [
        {"method": "POST", "path": "/v2/payments", "query": "", "status": 201},
        {"method": "GET", "path": f"/v2/payments/{payment['id']}", "query": "", "status": 200},
        {"method": "GET", "path": "/v2/payments", "query": "limit=5", "status": 200},
    ]
    assert journal["count"] == 3
    assert API_KEY not in str(journal)
    assert emulator.control("DELETE", "/requests")["count"] == 0
    assert emulator.control("GET", "/requests")["requests"] == []
    api(emulator, "GET", "/payments")
    emulator.control("POST", "/reset")
    assert emulator.control("GET", "/requests")["count"] == 0


# --------------------------------------------------------------------- in-process app


async def test_in_process_app_uses_public_url_and_exposes_state() -> None:
    config = MollieEmulatorConfig(public_url="http://mollie.local:9999", deliver_webhooks=False)
    app = create_app(config)
    emulator: MollieEmulator = app.state.emulator
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        created = await http.post(
            "/v2/payments",
            json={
                "amount": eur("3.00"),
                "description": "In process",
                "redirectUrl": REDIRECT,
                "webhookUrl": "http://127.0.0.1:9/never",
            },
            headers={"Authorization": f"Bearer {config.api_key}"},
        )
        assert created.status_code == 201
        links = created.json()["_links"]
        assert links["self"]["href"].startswith("http://mollie.local:9999/v2/payments/tr_")
        assert links["checkout"]["href"].startswith("http://mollie.local:9999/checkout/tr_")

        payment_id = created.json()["id"]
        assert emulator.store.payment(payment_id).status == "open"
        chosen = await http.post(f"/checkout/{payment_id}", data={"status": "paid"})
        assert chosen.status_code == 303
        assert emulator.store.payment(payment_id).status == "paid"
        assert emulator.webhooks.deliveries == []  # deliver_webhooks=False
    await emulator.aclose()


def test_config_rejects_keys_the_client_would_refuse() -> None:
    with pytest.raises(ValueError, match="api_key"):
        MollieEmulatorConfig(api_key="sk_live_123")
    with pytest.raises(ValueError, match="public_url"):
        MollieEmulatorConfig(public_url="mollie.local")


# ------------------------------------------------------------------------ entry point


def test_cli_arguments_fall_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLLIE_EMULATOR_PORT", "9123")
    monkeypatch.setenv("MOLLIE_EMULATOR_API_KEY", "test_fromenvironment000000000000000")
    config = config_from_args(parse_args(["--refund-settle-seconds", "60"]))
    assert config.api_key == "test_fromenvironment000000000000000"
    assert config.public_url == "http://127.0.0.1:9123"
    assert config.refund_settle_seconds == 60
    assert config.deliver_webhooks is True


def test_python_dash_m_serves_the_api() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.mollie", "--port", str(port), "--api-key", API_KEY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/_emulator/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "emulator exited early"
            assert time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.05)
        customer = httpx.post(f"{base}/v2/customers", json={"name": "Cli"}, headers=AUTH)
        assert customer.status_code == 201
        assert customer.json()["_links"]["self"]["href"].startswith(f"{base}/v2/customers/cst_")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    log = output.decode()
    assert "POST /v2/customers -> 201" in log
    assert API_KEY not in log


def test_the_api_page_introduces_the_emulator_and_says_its_clock_is_its_own() -> None:
    """The Swagger page opens with what the emulator speaks, how outcomes are chosen, and that
    its clock moves apart from the Cleeng emulator's (demos move one and not the other)."""
    spec = create_app(MollieEmulatorConfig()).openapi()
    intro = spec["info"]["description"]
    assert "/v2/" in intro
    assert "Authorization: Bearer" in intro
    assert "/_emulator" in intro
    assert "own clock" in intro
    assert "Cleeng emulator" in intro


@pytest.mark.parametrize("emulator", ["mollie", "cleeng"])
def test_an_emulator_keeps_idle_connections_longer_than_a_client_reuses_them(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the server's keep-alive equal to the client's reuse window (uvicorn and httpx both
    5 s), the server closed idle connections just as clients sent on them, and those requests
    were lost ("Server disconnected without sending a response")."""
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(options))
    entry_point = importlib.import_module(f"emulators.{emulator}.__main__")
    # The process's logging set-up is not under test, and would outlive this test.
    monkeypatch.setattr(entry_point, "configure_logging", lambda *args, **kwargs: None)

    entry_point.main(["--port", "1"])

    client_reuse_seconds = httpx.AsyncClient()._transport._pool._keepalive_expiry  # type: ignore[attr-defined]
    assert served["timeout_keep_alive"] == KEEP_ALIVE_SECONDS
    assert 2 * client_reuse_seconds < KEEP_ALIVE_SECONDS
