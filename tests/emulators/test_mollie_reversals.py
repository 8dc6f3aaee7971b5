"""A charge that is taken back after it was paid: a SEPA debit failing late, reported as a
chargeback (Mollie's SEPA Direct Debit pages: a debit can still fail up to five business days
after it was paid, and a customer may dispute it for eight weeks).

The control is the customer's next-outcomes list: `{"status": "paid", "reversal": {"reason":
"AM04", "afterDays": 2}}` settles the debit paid, then, once the emulator clock passes the
moment, creates a chargeback on it and fires the payment's webhook.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.mollie import MollieEmulatorConfig, create_app
from emulators.mollie import persistence as mollie_persistence
from emulators.mollie.emulator import MollieEmulator
from emulators.state_file import StateFile
from tests.emulators.test_mollie_support import (
    API_KEY,
    RunningEmulator,
    WebhookReceiver,
    eur,
    running_emulator,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
DAY = 24 * 3600
SETTLE_DAYS = 3  # the emulator's default pending_settle_seconds


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


def api(emulator: RunningEmulator, method: str, path: str, body: Any = None) -> httpx.Response:
    return emulator.http.request(method, f"/v2{path}", json=body, headers=AUTH)


def customer_with_mandate(emulator: RunningEmulator, method: str = "directdebit") -> str:
    customer = api(emulator, "POST", "/customers", {"name": "Late Failure"}).json()["id"]
    body: dict[str, Any] = {"method": method, "consumerName": "Late Failure"}
    if method == "directdebit":
        body["consumerAccount"] = "NL55INGB0000000000"
    assert api(emulator, "POST", f"/customers/{customer}/mandates", body).status_code == 201
    return str(customer)


def charge(emulator: RunningEmulator, customer: str, webhook_url: str) -> dict[str, Any]:
    body = {
        "amount": eur("9.99"),
        "description": "Renewal",
        "sequenceType": "recurring",
        "customerId": customer,
        "webhookUrl": webhook_url,
    }
    response = api(emulator, "POST", "/payments", body)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


def next_outcomes(emulator: RunningEmulator, customer: str, *outcomes: Any) -> Any:
    return emulator.control("POST", f"/customers/{customer}/next-outcomes", {"outcomes": outcomes})


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def ledger_entry(emulator: RunningEmulator, payment_id: str) -> dict[str, Any]:
    return next(p for p in emulator.ledger() if p["id"] == payment_id)


def test_a_sepa_debit_settles_paid_then_is_charged_back_when_its_reversal_falls_due(
    emulator: RunningEmulator, receiver: WebhookReceiver
) -> None:
    customer = customer_with_mandate(emulator)
    stored = next_outcomes(
        emulator, customer, {"status": "paid", "reversal": {"reason": "AM04", "afterDays": 2}}
    )
    assert stored["nextOutcomes"] == [
        {
            "status": "paid",
            "failureReason": None,
            "reversal": {"reason": "AM04", "afterDays": 2},
        }
    ]
    payment = charge(emulator, customer, receiver.url)
    assert payment["status"] == "pending"
    assert payment["method"] == "directdebit"
    assert ledger_entry(emulator, payment["id"])["pendingAt"] is not None

    emulator.advance(SETTLE_DAYS * DAY)
    paid = api(emulator, "GET", f"/payments/{payment['id']}").json()
    assert paid["status"] == "paid"
    assert receiver.wait_for(1) == [payment["id"]]
    assert "chargebacks" not in paid["_links"]
    entry = ledger_entry(emulator, payment["id"])
    assert at(entry["reversalDueAt"]) == at(paid["paidAt"]) + timedelta(days=2)

    emulator.advance(DAY)  # not yet: one day after it was paid
    assert ledger_entry(emulator, payment["id"])["chargebacks"] == []
    emulator.advance(DAY)

    # Mollie announces the chargeback through the payment's webhook; the payment stays paid.
    assert receiver.wait_for(2) == [payment["id"], payment["id"]]
    after = api(emulator, "GET", f"/payments/{payment['id']}").json()
    assert after["status"] == "paid"
    assert after["amountChargedBack"] == eur("9.99")
    assert after["amountRemaining"] == eur("0.00")
    listed = api(emulator, "GET", f"/payments/{payment['id']}/chargebacks").json()
    (chargeback,) = listed["_embedded"]["chargebacks"]
    assert chargeback["reason"] == {"code": "AM04", "description": "Insufficient funds"}
    assert chargeback["amount"] == eur("9.99")
    assert at(chargeback["createdAt"]) == at(paid["paidAt"]) + timedelta(days=2)
    entry = ledger_entry(emulator, payment["id"])
    assert entry["reversalDueAt"] is None
    assert entry["chargebacks"][0]["reason"]["code"] == "AM04"

    # Nothing is left to give back, and the reversal happens once.
    refund = api(emulator, "POST", f"/payments/{payment['id']}/refunds", {"amount": eur("1.00")})
    assert refund.status_code == 422
    emulator.advance(10 * DAY)
    assert len(ledger_entry(emulator, payment["id"])["chargebacks"]) == 1


def test_only_the_charge_the_outcome_was_given_to_is_reversed(emulator: RunningEmulator) -> None:
    customer = customer_with_mandate(emulator)
    next_outcomes(
        emulator,
        customer,
        {"status": "paid", "reversal": {"reason": "MD06", "afterDays": 1}},
        {"status": "failed"},
    )
    reversed_one = charge(emulator, customer, "http://127.0.0.1:9/never")
    failing = charge(emulator, customer, "http://127.0.0.1:9/never")
    untouched = charge(emulator, customer, "http://127.0.0.1:9/never")
    emulator.advance((SETTLE_DAYS + 2) * DAY)
    by_id = {p["id"]: p for p in emulator.ledger()}
    assert [c["reason"]["code"] for c in by_id[reversed_one["id"]]["chargebacks"]] == ["MD06"]
    assert by_id[failing["id"]]["status"] == "failed"
    assert by_id[untouched["id"]]["status"] == "paid"
    assert by_id[untouched["id"]]["chargebacks"] == []
    assert by_id[untouched["id"]]["reversalDueAt"] is None


def test_a_paypal_charge_paid_at_once_is_reversed_too(
    emulator: RunningEmulator, receiver: WebhookReceiver
) -> None:
    customer = customer_with_mandate(emulator, "paypal")
    next_outcomes(emulator, customer, {"status": "paid", "reversal": {"afterDays": 0.5}})
    payment = charge(emulator, customer, receiver.url)
    assert payment["status"] == "paid"
    assert receiver.wait_for(1) == [payment["id"]]
    emulator.advance(DAY / 2)
    assert receiver.wait_for(2) == [payment["id"], payment["id"]]
    (chargeback,) = ledger_entry(emulator, payment["id"])["chargebacks"]
    assert chargeback["reason"]["code"] == "AM04"  # the default reason


def test_an_operator_chargeback_first_leaves_nothing_to_reverse(emulator: RunningEmulator) -> None:
    customer = customer_with_mandate(emulator, "paypal")
    next_outcomes(emulator, customer, {"status": "paid", "reversal": {"afterDays": 1}})
    payment = charge(emulator, customer, "http://127.0.0.1:9/never")
    made = emulator.control("POST", f"/payments/{payment['id']}/chargeback", {"reasonCode": "MD06"})
    assert made["reason"]["code"] == "MD06"
    emulator.advance(2 * DAY)
    assert len(ledger_entry(emulator, payment["id"])["chargebacks"]) == 1


@pytest.mark.parametrize(
    ("outcome", "status", "field"),
    [
        ({"status": "failed", "reversal": {"afterDays": 1}}, 400, "reversal"),
        ({"status": "canceled", "reversal": {"afterDays": 1}}, 400, "reversal"),
        ({"status": "paid", "reversal": {"afterDays": 0}}, 422, None),
        ({"status": "paid", "reversal": {"afterDays": 57}}, 422, None),
        ({"status": "paid", "reversal": {"reason": "late", "afterDays": 1}}, 422, None),
        ({"status": "paid", "reversal": {"reason": "AM04"}}, 422, None),
    ],
)
def test_a_reversal_is_refused_where_it_cannot_happen(
    emulator: RunningEmulator, outcome: dict[str, Any], status: int, field: str | None
) -> None:
    customer = customer_with_mandate(emulator)
    response = emulator.http.post(
        f"/_emulator/customers/{customer}/next-outcomes", json={"outcomes": [outcome]}
    )
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["field"] == field
    assert (
        emulator.control("POST", f"/customers/{customer}/next-outcomes", {"outcomes": []})[
            "nextOutcomes"
        ]
        == []
    )


async def test_a_scheduled_reversal_survives_a_restart(tmp_path: Path) -> None:
    """Saved while the debit is paid and its reversal still ahead, restored into a new
    emulator: the new one's clock creates the chargeback (and a forced outcome not yet used
    comes back with its reversal)."""
    config = MollieEmulatorConfig(api_key=API_KEY, deliver_webhooks=False)
    first_app = create_app(config)
    first: MollieEmulator = first_app.state.emulator
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=first_app), base_url="http://testserver"
    ) as http:
        customer = (await http.post("/v2/customers", json={}, headers=AUTH)).json()["id"]
        mandate = {
            "method": "directdebit",
            "consumerName": "A",
            "consumerAccount": "NL55INGB0000000000",
        }
        await http.post(f"/v2/customers/{customer}/mandates", json=mandate, headers=AUTH)
        reversal = {"status": "paid", "reversal": {"reason": "AC04", "afterDays": 2}}
        await http.post(
            f"/_emulator/customers/{customer}/next-outcomes",
            json={"outcomes": [reversal, reversal]},
        )
        body = {
            "amount": eur("5.00"),
            "description": "Renewal",
            "sequenceType": "recurring",
            "customerId": customer,
        }
        payment_id = (await http.post("/v2/payments", json=body, headers=AUTH)).json()["id"]
    await first.advance(SETTLE_DAYS * DAY + 60)
    assert first.store.payment(payment_id).status == "paid"
    assert first.store.payment(payment_id).chargeback_ids == []

    state_file = StateFile(
        tmp_path / "mollie.state", kind=mollie_persistence.KIND, schema=mollie_persistence.SCHEMA
    )
    state_file.write(state_file.encode(mollie_persistence.capture(first)))
    await first.aclose()
    saved = state_file.load()
    assert saved is not None
    second = MollieEmulator(config)
    mollie_persistence.restore(second, pickle.loads(pickle.dumps(saved)))
    try:
        await second.advance(2 * DAY)
        payment = second.store.payment(payment_id)
        (chargeback,) = second.store.list_chargebacks(payment_id)
        assert chargeback.reason == {"code": "AC04", "description": "Account closed"}
        assert payment.reverse_at is None
        (left,) = second.store.customer(customer).next_outcomes
        assert left.reversal is not None
        assert left.reversal.reason_code == "AC04"
    finally:
        await second.aclose()


def test_the_account_wide_refund_and_chargeback_lists_page_by_creation_date() -> None:
    """Mollie's "List all refunds" and "List all chargebacks": every payment's items, newest
    first by default, `sort=asc` oldest first, cursor pages with `from` and `limit`."""
    with running_emulator(deliver_webhooks=False) as emulator:
        payments = []
        for n in range(2):
            created = api(
                emulator,
                "POST",
                "/payments",
                {
                    "amount": eur("9.99"),
                    "description": f"Paid {n}",
                    "redirectUrl": "https://x.example/",
                },
            ).json()
            emulator.control("POST", f"/payments/{created['id']}/status", {"status": "paid"})
            payments.append(created["id"])
        refunds, chargebacks = [], []
        for payment_id in payments:
            emulator.advance(60)
            refund = api(
                emulator, "POST", f"/payments/{payment_id}/refunds", {"amount": eur("1.00")}
            )
            refunds.append(refund.json()["id"])
            emulator.advance(60)
            chargeback = emulator.control(
                "POST", f"/payments/{payment_id}/chargeback", {"amount": eur("2.00")}
            )
            chargebacks.append(chargeback["id"])

        first = api(emulator, "GET", "/refunds?limit=1").json()
        [newest] = first["_embedded"]["refunds"]
        assert (newest["id"], newest["paymentId"]) == (refunds[1], payments[1])
        assert first["_links"]["documentation"]["href"].endswith("/list-all-refunds")
        following = emulator.http.get(first["_links"]["next"]["href"], headers=AUTH).json()
        assert [r["id"] for r in following["_embedded"]["refunds"]] == [refunds[0]]
        assert following["_links"]["next"] is None

        oldest_first = api(emulator, "GET", "/refunds?sort=asc").json()
        assert [r["id"] for r in oldest_first["_embedded"]["refunds"]] == refunds

        listed = api(emulator, "GET", "/chargebacks").json()
        assert [(c["id"], c["paymentId"]) for c in listed["_embedded"]["chargebacks"]] == [
            (chargebacks[1], payments[1]),
            (chargebacks[0], payments[0]),
        ]
        created_at = [at(c["createdAt"]) for c in listed["_embedded"]["chargebacks"]]
        assert created_at == sorted(created_at, reverse=True)
        assert listed["_links"]["documentation"]["href"].endswith("/list-all-chargebacks")

        refused = api(emulator, "GET", "/chargebacks?sort=sideways")
        assert refused.status_code == 400
        assert refused.json()["field"] == "sort"
