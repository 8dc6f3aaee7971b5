# The client ships py.typed but leaves most methods unannotated; calling them is the point here.
# mypy: disable-error-code="no-untyped-call"
"""The Mollie emulator is as strict as Mollie's reference, so a connector bug fails in tests.

It answers any endpoint the v2 reference does not document with a 404 in Mollie's error
format, and refuses a missing or mistyped field with a 422 naming the field. Raw HTTP is used
where the official client could not send the mistake. That it stands alone (no import from the
connector) is checked for both emulators in `test_cleeng_independence.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mollie.api.client import Client
from mollie.api.error import NotFoundError, UnprocessableEntityError

from tests.emulators.test_mollie_support import API_KEY, RunningEmulator, eur, running_emulator

AUTH = {"Authorization": f"Bearer {API_KEY}"}
REDIRECT = "https://shop.example/return"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator(deliver_webhooks=False) as running:
        yield running


def api(emulator: RunningEmulator, method: str, path: str, body: Any = None) -> httpx.Response:
    return emulator.http.request(method, path, json=body, headers=AUTH)


def assert_mollie_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    """Mollie's error body: integer status, title, detail, documentation link, and field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/hal+json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["status"], int)
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["_links"]["documentation"]["href"].startswith("https://docs.mollie.com/")
    assert body.get("field") == field


# ------------------------------------------------------------------ unknown endpoints


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/nothing"),
        ("GET", "/v2/orders"),
        ("POST", "/v2/subscriptions"),
        ("GET", "/v1/payments"),
        # Known paths, methods the reference does not document on them.
        ("PUT", "/v2/payments/tr_abc"),
        ("POST", "/v2/payments/tr_abc"),
        ("PATCH", "/v2/customers/cst_abc/mandates/mdt_abc"),
        ("DELETE", "/v2/payments/tr_abc/captures"),
        ("POST", "/v2/payments/tr_abc/chargebacks"),
        ("GET", "/v2/payments/tr_abc/release-authorization"),
        # Mollie does not redirect a trailing slash.
        ("GET", "/v2/payments/"),
        ("POST", "/v2/customers/"),
    ],
)
def test_undocumented_endpoints_answer_404_in_mollies_format(
    emulator: RunningEmulator, method: str, path: str
) -> None:
    response = api(emulator, method, path, {} if method in {"POST", "PUT", "PATCH"} else None)
    assert_mollie_error(response, 404)
    assert "allow" not in response.headers


def test_the_official_client_reads_the_404_of_an_unemulated_endpoint(
    emulator: RunningEmulator,
) -> None:
    client: Client = emulator.client()
    with pytest.raises(NotFoundError) as err:
        client.orders.get("ord_abc")
    assert err.value.status == 404


# --------------------------------------------------------------------- payment fields


def payment_body(**change: Any) -> dict[str, Any]:
    """A valid one-off payment with `change` applied; a value of None removes the field."""
    body: dict[str, Any] = {"amount": eur("10.00"), "description": "Valid", "redirectUrl": REDIRECT}
    body.update(change)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # amount: an object with a currency and a string value with the currency's decimals
        ({"amount": None}, "amount"),
        ({"amount": "10.00"}, "amount"),
        ({"amount": {"value": "10.00"}}, "amount"),
        ({"amount": {"currency": "EUR"}}, "amount"),
        ({"amount": {"currency": "eur", "value": "10.00"}}, "amount"),
        ({"amount": {"currency": "EUR", "value": 10}}, "amount"),
        ({"amount": {"currency": "EUR", "value": "10"}}, "amount"),
        ({"amount": {"currency": "EUR", "value": "10.5"}}, "amount"),
        ({"amount": {"currency": "EUR", "value": "10.000"}}, "amount"),
        ({"amount": {"currency": "EUR", "value": "1,000.00"}}, "amount"),
        ({"amount": {"currency": "EUR", "value": "-1.00"}}, "amount"),
        ({"amount": {"currency": "JPY", "value": "100.00"}}, "amount"),
        # description: a non-empty string of at most 255 characters
        ({"description": None}, "description"),
        ({"description": 42}, "description"),
        ({"description": "   "}, "description"),
        ({"description": "x" * 256}, "description"),
        # redirectUrl: required unless recurring, an http(s) URL
        ({"redirectUrl": None}, "redirectUrl"),
        ({"redirectUrl": None, "sequenceType": "first"}, "redirectUrl"),
        ({"redirectUrl": "shop.example/return"}, "redirectUrl"),
        ({"redirectUrl": 7}, "redirectUrl"),
        ({"webhookUrl": ["https://hook.example"]}, "webhookUrl"),
        ({"cancelUrl": "not a url"}, "cancelUrl"),
        # enumerations
        ({"sequenceType": "sometimes"}, "sequenceType"),
        ({"sequenceType": 1}, "sequenceType"),
        ({"captureMode": "later"}, "captureMode"),
        ({"captureMode": True}, "captureMode"),
        ({"method": "barter"}, "method"),
        ({"method": 7}, "method"),
        ({"method": ["creditcard", "barter"]}, "method"),
        ({"locale": "english"}, "locale"),
        # customers and mandates
        ({"sequenceType": "recurring", "redirectUrl": None}, "customerId"),
        ({"sequenceType": "first"}, "customerId"),
        ({"customerId": 12}, "customerId"),
        ({"customerId": "cst_nobody"}, "customerId"),
        ({"mandateId": "mdt_abc"}, "mandateId"),
        ({"metadata": {"blob": "x" * 2000}}, "metadata"),
    ],
)
def test_payment_fields_are_checked_like_mollie(
    emulator: RunningEmulator, change: dict[str, Any], field: str
) -> None:
    response = api(emulator, "POST", "/v2/payments", payment_body(**change))
    assert_mollie_error(response, 422, field)
    assert emulator.ledger() == []  # refused requests create nothing


def test_the_official_client_reads_the_field_of_a_422(emulator: RunningEmulator) -> None:
    client: Client = emulator.client()
    with pytest.raises(UnprocessableEntityError) as err:
        client.payments.create(payment_body(sequenceType="recurring", redirectUrl=None))
    assert err.value.status == 422
    assert err.value.field == "customerId"


def test_a_request_body_must_be_a_json_object(emulator: RunningEmulator) -> None:
    assert_mollie_error(api(emulator, "POST", "/v2/payments", [payment_body()]), 400)
    raw = emulator.http.post(
        "/v2/payments", content=b"{not json", headers=AUTH | {"content-type": "application/json"}
    )
    assert_mollie_error(raw, 400)


# ---------------------------------------------------------- captures, refunds, customers


def paid_payment(emulator: RunningEmulator) -> str:
    created = api(emulator, "POST", "/v2/payments", payment_body())
    payment_id: str = created.json()["id"]
    emulator.checkout(created.json()["_links"]["checkout"]["href"], "paid")
    return payment_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "No amount"}, "amount"),
        ({"amount": {"currency": "EUR", "value": 4}, "description": "R"}, "amount"),
        ({"amount": eur("4.0"), "description": "R"}, "amount"),
        ({"amount": {"currency": "USD", "value": "4.00"}, "description": "R"}, "amount"),
        ({"amount": eur("4.00"), "description": 4}, "description"),
        ({"amount": eur("4.00"), "description": "x" * 256}, "description"),
        ({"amount": eur("4.00"), "description": "R", "metadata": "x" * 2000}, "metadata"),
    ],
)
def test_refund_fields_are_checked_like_mollie(
    emulator: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    payment_id = paid_payment(emulator)
    response = api(emulator, "POST", f"/v2/payments/{payment_id}/refunds", body)
    assert_mollie_error(response, 422, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": {"currency": "EUR", "value": 10}}, "amount"),
        ({"amount": eur("10")}, "amount"),
        ({"description": 10}, "description"),
        ({"description": "x" * 256}, "description"),
    ],
)
def test_capture_fields_are_checked_like_mollie(
    emulator: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    created = api(emulator, "POST", "/v2/payments", payment_body(captureMode="manual"))
    payment_id = created.json()["id"]
    emulator.checkout(created.json()["_links"]["checkout"]["href"], "authorized")
    response = api(emulator, "POST", f"/v2/payments/{payment_id}/captures", body)
    assert_mollie_error(response, 422, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"email": "not-an-address"}, "email"),
        ({"locale": "dutch"}, "locale"),
        ({"metadata": {"blob": "x" * 2000}}, "metadata"),
    ],
)
def test_customer_fields_are_checked_like_mollie(
    emulator: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    assert_mollie_error(api(emulator, "POST", "/v2/customers", body), 422, field)
