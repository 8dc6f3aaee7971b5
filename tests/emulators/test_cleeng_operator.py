"""The Cleeng emulator's operator endpoints over real HTTP: seeding, clock, inspection,
reset, dunning settings and fault injection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from emulators.cleeng.config import DEFAULT_OFFER_ID, CleengEmulatorConfig
from tests.emulators.cleeng_support import (
    MOLLIE,
    CleengServer,
    initial_payment_body,
    running_cleeng,
)

TOKEN = "operator-test-token"


@pytest.fixture(scope="module")
def cleeng() -> Iterator[CleengServer]:
    config = CleengEmulatorConfig(publisher_token=TOKEN, id_seed=5, timeout_fault_hang_seconds=5)
    with running_cleeng(config) as server:
        yield server


def emulator_now(ops: httpx.Client) -> datetime:
    return datetime.fromisoformat(ops.get("/_emulator/clock").json()["now"])


def order_id(ops: httpx.Client, **body: Any) -> int:
    value: int = ops.post("/_emulator/seed/purchase", json=body).json()["orderId"]
    return value


def payment_body(ops: httpx.Client, status: str = "captured", **extra: Any) -> dict[str, Any]:
    """A create-a-payment body for a freshly seeded order, with inline payment details."""
    seeded = ops.post("/_emulator/seed/purchase", json={}).json()
    return initial_payment_body(seeded, status, **extra)


# ---------------------------------------------------------------------------- seeding


def test_defaults_are_seeded_so_a_demo_works_at_once(ops: httpx.Client) -> None:
    offers = ops.get("/_emulator/offers").json()["items"]
    assert [(o["offerId"], o["title"], o["price"], o["currency"], o["period"]) for o in offers] == [
        (DEFAULT_OFFER_ID, "Premium monthly", 9.99, "EUR", "month")
    ]
    customers = ops.get("/_emulator/customers").json()["items"]
    assert [c["email"] for c in customers] == ["demo@example.com"]


def test_seed_purchase_reuses_the_customer_and_offers(ops: httpx.Client) -> None:
    first = ops.post("/_emulator/seed/purchase", json={}).json()
    second = ops.post("/_emulator/seed/purchase", json={}).json()
    assert first["customerId"] == second["customerId"]
    assert first["offerId"] == second["offerId"] == DEFAULT_OFFER_ID
    assert first["orderId"] != second["orderId"]
    assert first["order"]["id"] == first["orderId"]

    priced = ops.post(
        "/_emulator/seed/purchase",
        json={"email": "zoe@example.com", "price": 4.99, "currency": "usd"},
    ).json()
    assert priced["order"]["totalPrice"] == 4.99
    assert priced["order"]["currency"] == "USD"
    assert priced["customerId"] != first["customerId"]
    again = ops.post("/_emulator/seed/purchase", json={"price": 4.99, "currency": "USD"}).json()
    assert again["offerId"] == priced["offerId"]
    assert len(ops.get("/_emulator/offers").json()["items"]) == 2


def test_customers_are_unique_by_email(ops: httpx.Client) -> None:
    created = ops.post("/_emulator/customers", json={"email": "x@example.com", "country": "be"})
    assert created.status_code == 201
    assert created.json()["country"] == "BE"
    again = ops.post("/_emulator/customers", json={"email": "X@example.com"})
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": "x"}, "Field 'price' or 'priceMinor' is required"),
        ({"price": 1.234}, "Field 'price' is invalid"),
        ({"price": 1, "period": "fortnight"}, "Field 'period' must be one of"),
        ({"price": 1, "bogus": 1}, "Field 'bogus' is invalid"),
    ],
)
def test_offer_validation(ops: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = ops.post("/_emulator/offers", json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith(message)


def test_offers_accept_minor_units_and_generate_ids(ops: httpx.Client) -> None:
    offer = ops.post(
        "/_emulator/offers", json={"title": "Weekly", "priceMinor": 1500, "currency": "JPY"}
    )
    assert offer.status_code == 201
    body = offer.json()
    assert body["price"] == 1500
    assert body["offerId"].startswith("S")
    assert body["offerId"].endswith("_NL")


def test_seed_order_and_subscription(ops: httpx.Client, api: httpx.Client) -> None:
    customer = ops.get("/_emulator/customers").json()["items"][0]
    order = ops.post(
        "/_emulator/orders", json={"customerId": customer["id"], "offerId": DEFAULT_OFFER_ID}
    )
    assert order.status_code == 201
    assert api.get(f"/3.1/orders/{order.json()['id']}").status_code == 200

    details = api.post(
        "/3.1/payment_details",
        json={"customerId": customer["id"], "token": "t", "paymentMethodId": 555000001},
    ).json()["data"]
    due = emulator_now(ops) + timedelta(days=2)
    subscription = ops.post(
        "/_emulator/subscriptions",
        json={
            "customerId": customer["id"],
            "offerId": DEFAULT_OFFER_ID,
            "paymentDetailsId": details["id"],
            "dateTo": due.isoformat(),
        },
    )
    assert subscription.status_code == 201
    body = subscription.json()
    assert body["dateTo"] == int(due.replace(microsecond=0).timestamp())
    assert body["status"] == "active"
    assert (body["terminationReason"], body["terminatedVia"]) == (None, None)
    fetched = api.get(f"/3.1/subscriptions/{body['subscriptionId']}").json()["subscription"]
    assert fetched == {
        k: v for k, v in body.items() if k not in ("terminationReason", "terminatedVia")
    }
    assert ops.get("/_emulator/subscriptions").json()["items"] == [body]

    unknown = ops.post(
        "/_emulator/subscriptions",
        json={"customerId": customer["id"], "offerId": DEFAULT_OFFER_ID, "paymentDetailsId": 1},
    )
    assert unknown.status_code == 404


# ------------------------------------------------------------------------------ clock


def test_clock_advances_by_seconds_or_to_an_instant(ops: httpx.Client) -> None:
    start = emulator_now(ops)
    assert abs(start - datetime.now(UTC)) < timedelta(seconds=5)
    moved = ops.post("/_emulator/clock/advance", json={"seconds": 3600}).json()
    assert timedelta(seconds=3599) <= datetime.fromisoformat(moved["now"]) - start
    assert moved["offsetSeconds"] >= 3599

    target = start + timedelta(days=10)
    jumped = ops.post("/_emulator/clock/advance", json={"to": target.isoformat()}).json()
    assert abs(datetime.fromisoformat(jumped["now"]) - target) < timedelta(seconds=2)
    # Answers are dated by the emulator's clock, as a real server dates them by its own.
    [stamp] = ops.get("/_emulator/ledger").headers.get_list("date")
    assert abs(parsedate_to_datetime(stamp) - target) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Exactly one of 'seconds' and 'to' is required"),
        ({"seconds": 1, "to": "2030-01-01T00:00:00Z"}, "Exactly one of"),
        ({"to": "2000-01-01T00:00:00Z"}, "Clock cannot go backwards"),
        ({"seconds": -5}, "Field 'seconds' is invalid"),
        ({"to": "yesterday"}, "Field 'to' must be an ISO-8601 date"),
    ],
)
def test_clock_refusals(ops: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = ops.post("/_emulator/clock/advance", json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith(message)


def test_reset_forgets_data_and_time(ops: httpx.Client, api: httpx.Client) -> None:
    placed = order_id(ops)
    api.put("/3.1/webhook_subscriptions/refundPayment", json=[{"url": "http://x.example/"}])
    ops.post("/_emulator/clock/advance", json={"seconds": 86400 * 3})

    ops.post("/_emulator/reset")
    assert api.get(f"/3.1/orders/{placed}").status_code == 404
    assert abs(emulator_now(ops) - datetime.now(UTC)) < timedelta(seconds=5)
    assert len(ops.get("/_emulator/offers").json()["items"]) == 1
    # Webhook subscriptions survive by default (a running connector registered them) ...
    assert api.get("/3.1/webhook_subscriptions").json()["refundPayment"] != []
    ops.post("/_emulator/reset", json={"keepWebhookSubscriptions": False})
    assert api.get("/3.1/webhook_subscriptions").json()["refundPayment"] == []
    # ... and ids are never reused after a reset.
    assert order_id(ops) != placed


# ------------------------------------------------------------------------- inspection


def test_inspection_filters_and_ledger(ops: httpx.Client, api: httpx.Client) -> None:
    captured = api.post("/3.1/payments", json=payment_body(ops, externalPaymentId="tr_1")).json()[
        "payment"
    ]
    first = captured["orderId"]
    api.post("/3.1/payments", json=payment_body(ops, "authorized"))
    refunded = api.patch(
        f"/3.1/payments/{captured['id']}",
        json={
            "status": "refunded",
            "orderId": first,
            "paymentOperation": "initial-payment",
            "refundedReason": "goodwill",
            "refundedAmount": 2.5,
        },
    )
    assert refunded.status_code == 200, refunded.text

    only_first = ops.get("/_emulator/payments", params={"orderId": first}).json()["items"]
    assert [p["id"] for p in only_first] == [captured["id"]]
    assert only_first[0]["duplicateOf"] is None
    by_subscription = ops.get(
        "/_emulator/payments", params={"subscriptionId": captured["subscriptionId"]}
    ).json()["items"]
    assert [p["id"] for p in by_subscription] == [captured["id"]]

    ledger = ops.get("/_emulator/ledger").json()
    entry = next(e for e in ledger["items"] if e["paymentId"] == captured["id"])
    assert entry["externalPaymentId"] == "tr_1"
    assert (entry["amountMinor"], entry["amount"], entry["currency"]) == (999, "9.99", "EUR")
    assert (entry["refundedMinor"], entry["netMinor"]) == (250, 749)
    assert entry["duplicateOf"] is None
    assert (ledger["duplicateRecords"], ledger["duplicates"]) == (0, [])
    assert ledger["totals"]["EUR"] == {
        "capturedMinor": 999,
        "refundedMinor": 250,
        "netMinor": 749,
        "authorizedMinor": 999,
    }


def test_landing_page_and_docs(ops: httpx.Client) -> None:
    order_id(ops, email="landing@example.com")
    page = ops.get("/")
    assert page.status_code == 200
    assert "landing@example.com" in page.text
    assert "Orders: 1" in page.text
    paths = ops.get("/openapi.json").json()["paths"]
    for path in (
        "/_emulator/seed/purchase",
        "/_emulator/clock/advance",
        "/_emulator/faults",
        "/_emulator/dunning-settings",
        "/3.1/payments",
    ):
        assert path in paths


def test_dunning_settings_read_and_write(ops: httpx.Client) -> None:
    initial = ops.get("/_emulator/dunning-settings").json()
    monthly = next(i for i in initial["items"] if i["billingCycle"] == "monthly")
    assert monthly == {
        "paymentMethodId": 555000001,
        "billingCycle": "monthly",
        "authorizedFirst": True,
        "paymentAttempts": [72, 48, 24, 0],
        "gracePeriodHours": 2,
    }
    updated = ops.put(
        "/_emulator/dunning-settings",
        json={"billingCycle": "monthly", "authorizedFirst": False, "paymentAttempts": [0, 24, -1]},
    ).json()
    monthly = next(i for i in updated["items"] if i["billingCycle"] == "monthly")
    annual = next(i for i in updated["items"] if i["billingCycle"] == "annual")
    assert monthly["authorizedFirst"] is False
    assert monthly["paymentAttempts"] == [24, 0, -1]
    assert annual["authorizedFirst"] is True

    bad_cycle = ops.put("/_emulator/dunning-settings", json={"billingCycle": "daily"})
    assert bad_cycle.json()["message"].startswith("Field 'billingCycle' must be one of")
    too_late = ops.put(
        "/_emulator/dunning-settings", json={"paymentAttempts": [-5], "gracePeriodHours": 2}
    )
    assert too_late.status_code == 422


# ----------------------------------------------------------------------------- faults


def test_fail_next_before_commit_performs_nothing(ops: httpx.Client, api: httpx.Client) -> None:
    body = payment_body(ops)
    ops.post(
        "/_emulator/faults",
        json={"failNext": [{"method": "POST", "pathPrefix": "/3.1/payments", "count": 2}]},
    )
    assert api.get(f"/3.1/orders/{body['orderId']}").status_code == 200  # unaffected
    for _ in range(2):
        failed = api.post("/3.1/payments", json=body)
        assert failed.status_code == 503
        assert "message" in failed.json()
    assert ops.get("/_emulator/payments").json()["items"] == []
    assert api.post("/3.1/payments", json=body).status_code == 200
    assert ops.get("/_emulator/faults").json()["failNext"] == []


def test_fail_next_after_commit_loses_the_reply_not_the_write(
    ops: httpx.Client, api: httpx.Client
) -> None:
    body = payment_body(ops, externalPaymentId="tr_1")
    ops.post(
        "/_emulator/faults",
        json={"failNext": [{"pathPrefix": "/3.1/payments", "status": 500, "afterCommit": True}]},
    )
    assert api.post("/3.1/payments", json=body).status_code == 500
    recorded = ops.get("/_emulator/payments").json()["items"]
    assert [p["externalPaymentId"] for p in recorded] == ["tr_1"]
    assert ops.get("/_emulator/ledger").json()["duplicateRecords"] == 0
    # A blind retry is accepted (Cleeng documents no refusal) and shows up as a duplicate.
    retried = api.post("/3.1/payments", json=body)
    assert retried.status_code == 200
    ledger = ops.get("/_emulator/ledger").json()
    assert ledger["duplicateRecords"] == 1
    assert ledger["duplicates"][0]["duplicateOf"] == recorded[0]["id"]


def test_timeout_after_commit_hangs_until_the_client_gives_up(
    ops: httpx.Client, api: httpx.Client
) -> None:
    body = payment_body(ops)
    ops.post(
        "/_emulator/faults",
        json={
            "failNext": [{"pathPrefix": "/3.1/payments", "status": "timeout", "afterCommit": True}]
        },
    )
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        api.post("/3.1/payments", json=body, timeout=0.5)
    assert time.monotonic() - started < 4
    assert len(ops.get("/_emulator/payments").json()["items"]) == 1


def _write(ops: httpx.Client, api: httpx.Client, kind: str) -> tuple[str, str, dict[str, Any]]:
    """Method, path and body of one Core API write the connector makes, ready to send."""
    seeded = ops.post("/_emulator/seed/purchase", json={}).json()
    if kind == "order":
        body = {
            "customerId": seeded["customerId"],
            "offerId": DEFAULT_OFFER_ID,
            "currency": "EUR",
            "country": "NL",
        }
        return "POST", "/3.1/orders", body
    if kind == "details":
        body = {"customerId": seeded["customerId"], "token": "cst_2:mdt_2", "paymentMethodId": 7}
        return "POST", "/3.1/payment_details", body
    payment = api.post("/3.1/payments", json=payment_body(ops)).json()["payment"]
    body = {"status": "captured", "externalPaymentId": "tr_after_commit"}
    return "PATCH", f"/3.1/payments/{payment['id']}", body


def _written(ops: httpx.Client, kind: str) -> int:
    if kind == "order":
        return len(ops.get("/_emulator/orders").json()["items"])
    if kind == "details":
        return len(ops.get("/_emulator/payment-details").json()["items"])
    payments = ops.get("/_emulator/payments").json()["items"]
    return sum(p["externalPaymentId"] == "tr_after_commit" for p in payments)


@pytest.mark.parametrize("kind", ["order", "details", "patch"])
@pytest.mark.parametrize("fault", ["failNext", "timeoutAfterCommitRate"])
def test_after_commit_faults_on_every_write(
    ops: httpx.Client, api: httpx.Client, kind: str, fault: str
) -> None:
    method, path, body = _write(ops, api, kind)
    before = _written(ops, kind)
    if fault == "failNext":
        rule = {"method": method, "pathPrefix": path, "status": 502, "afterCommit": True}
        ops.post("/_emulator/faults", json={"failNext": [rule]})
        assert api.request(method, path, json=body).status_code == 502
    else:
        ops.post("/_emulator/faults", json={"timeoutAfterCommitRate": 1.0})
        with pytest.raises(httpx.ReadTimeout):
            api.request(method, path, json=body, timeout=0.5)
        ops.delete("/_emulator/faults")
    assert _written(ops, kind) == before + 1


def test_operator_reads_single_payment_details(ops: httpx.Client, api: httpx.Client) -> None:
    customer = ops.get("/_emulator/customers").json()["items"][0]
    created = api.post(
        "/3.1/payment_details",
        json={"customerId": customer["id"], "token": "cst_1:mdt_1", "paymentMethodId": MOLLIE},
    ).json()["data"]
    assert ops.get(f"/_emulator/payment-details/{created['id']}").json() == created
    assert ops.get("/_emulator/payment-details/1").status_code == 404


def test_timeout_before_commit_writes_nothing(ops: httpx.Client, api: httpx.Client) -> None:
    body = payment_body(ops)
    ops.post("/_emulator/faults", json={"failNext": [{"status": "timeout"}]})
    with pytest.raises(httpx.ReadTimeout):
        api.post("/3.1/payments", json=body, timeout=0.5)
    assert ops.get("/_emulator/payments").json()["items"] == []


def test_rate_limit_answers_carry_retry_after(ops: httpx.Client, api: httpx.Client) -> None:
    ops.post("/_emulator/faults", json={"rateLimitRate": 1.0})
    limited = api.get("/3.1/orders/1")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    # Operator endpoints are never faulted, so a test can always clean up.
    assert ops.get("/_emulator/clock").status_code == 200
    ops.delete("/_emulator/faults")
    assert api.get("/3.1/orders/1").status_code == 404


def test_error_rate_is_reproducible_with_a_seed(ops: httpx.Client, api: httpx.Client) -> None:
    def run() -> list[int]:
        ops.post("/_emulator/faults", json={"errorRate": 0.5, "seed": 42})
        codes = [api.get("/3.1/orders/1").status_code for _ in range(12)]
        ops.delete("/_emulator/faults")
        return codes

    first = run()
    assert set(first) == {503, 404}
    assert run() == first


def test_latency_delays_core_api_answers(ops: httpx.Client, api: httpx.Client) -> None:
    ops.post("/_emulator/faults", json={"latencyMs": 300})
    started = time.monotonic()
    api.get("/3.1/orders/1")
    assert time.monotonic() - started >= 0.3
    snapshot = ops.get("/_emulator/faults").json()
    assert snapshot["latencyMs"] == 300
    assert ops.delete("/_emulator/faults").json()["latencyMs"] == 0


def test_fault_settings_are_validated(ops: httpx.Client) -> None:
    response = ops.post("/_emulator/faults", json={"errorRate": 2})
    assert response.status_code == 422
    assert response.json()["message"].startswith("Field 'errorRate' is invalid")
    unknown = ops.post("/_emulator/faults", json={"chaos": True})
    assert unknown.status_code == 422
