# The client ships py.typed but leaves most methods unannotated; calling them is the point here.
# mypy: disable-error-code="no-untyped-call"
"""Contract tests: the official `mollie-api-python` client, unchanged, against the emulator.

Each test drives a behaviour the connector relies on through the real client, so a change
that breaks the wire format (field names, HAL links, error bodies, status codes) fails here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from mollie.api.client import Client
from mollie.api.error import (
    BadRequestError,
    ConflictError,
    IdentifierError,
    NotFoundError,
    RequestError,
    ResponseError,
    ResponseHandlingError,
    UnauthorizedError,
    UnprocessableEntityError,
)
from mollie.api.objects.customer import Customer
from mollie.api.objects.payment import Payment

from tests.emulators.test_mollie_support import (
    RunningEmulator,
    WebhookReceiver,
    eur,
    running_emulator,
    wait_until,
)

REDIRECT = "https://shop.example/return"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture
def client(emulator: RunningEmulator) -> Client:
    return emulator.client()


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def new_customer(client: Client, name: str = "Ada Lovelace") -> Customer:
    customer: Customer = client.customers.create({"name": name, "email": "ada@example.com"})
    return customer


def paid_first_payment(
    emulator: RunningEmulator, client: Client, customer: Customer, **extra: Any
) -> Payment:
    """A `first` payment the customer completed on the checkout page: leaves a mandate."""
    payment = client.payments.create(
        {
            "amount": eur("10.00"),
            "description": "First month",
            "redirectUrl": REDIRECT,
            "sequenceType": "first",
            "customerId": customer.id,
            **extra,
        }
    )
    assert emulator.checkout(payment.checkout_url, "paid").status_code == 303
    paid: Payment = client.payments.get(payment.id)
    return paid


def recurring(client: Client, customer: Customer, value: str = "10.00", **extra: Any) -> Payment:
    payment: Payment = client.payments.create(
        {
            "amount": eur(value),
            "description": "Renewal",
            "sequenceType": "recurring",
            "customerId": customer.id,
            **extra,
        }
    )
    return payment


# ----------------------------------------------------------------------- customers


def test_customers_create_get_update_list_and_delete(client: Client) -> None:
    created = client.customers.create(
        {"name": "Ada", "email": "ada@example.com", "locale": "nl_NL", "metadata": {"ref": 7}}
    )
    assert created.id.startswith("cst_")
    assert created.mode == "test"

    fetched = client.customers.get(created.id)
    assert (fetched.name, fetched.email, fetched.locale) == ("Ada", "ada@example.com", "nl_NL")
    assert fetched.metadata == {"ref": 7}

    updated = client.customers.update(created.id, {"name": "Ada L."})
    assert updated.name == "Ada L."
    assert updated.email == "ada@example.com"

    other = new_customer(client, "Grace")
    listed = client.customers.list()
    assert [c.id for c in listed] == [other.id, created.id]  # newest first

    assert client.customers.delete(other.id) == {}
    with pytest.raises(ResponseError) as gone:
        client.customers.get(other.id)
    assert gone.value.status == 410
    assert [c.id for c in client.customers.list()] == [created.id]


def test_invalid_customer_email_names_the_field(client: Client) -> None:
    with pytest.raises(UnprocessableEntityError) as err:
        client.customers.create({"name": "X", "email": "not-an-email"})
    assert err.value.field == "email"


# ---------------------------------------------------------- first payment & mandates


def test_first_payment_through_checkout_creates_a_card_mandate(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    payment = client.payments.create(
        {
            "amount": eur("12.50"),
            "description": "Premium, first month",
            "redirectUrl": REDIRECT,
            "sequenceType": "first",
            "customerId": customer.id,
            "metadata": {"order": "ord-1", "lines": [1, 2]},
        }
    )
    assert payment.status == "open"
    assert payment.is_open()
    assert payment.checkout_url == f"{emulator.base_url}/checkout/{payment.id}"
    assert payment.expires_at is not None
    assert payment.metadata == {"order": "ord-1", "lines": [1, 2]}

    page = emulator.http.get(payment.checkout_url)
    assert page.status_code == 200
    assert "12.50" in page.text
    assert "Premium, first month" in page.text
    assert 'value="paid"' in page.text
    assert 'value="authorized"' not in page.text  # only for manual capture

    answer = emulator.checkout(payment.checkout_url, "paid")
    assert answer.status_code == 303
    assert answer.headers["location"] == REDIRECT

    paid = client.payments.get(payment.id)
    assert paid.status == "paid"
    assert paid.is_paid()
    assert paid.method == "creditcard"
    assert paid.checkout_url is None
    assert paid.details["cardNumber"] == "6787"
    assert paid.amount_remaining == eur("12.50")
    assert paid.mandate_id is not None

    mandates = customer.mandates.list()
    assert len(mandates) == 1
    mandate = mandates[0]
    assert mandate.id == paid.mandate_id
    assert mandate.is_valid()
    assert mandate.method == "creditcard"
    assert mandate.details["cardHolder"] == "Ada Lovelace"
    assert mandate.details["cardNumber"] == "6787"
    assert mandate.details["cardLabel"] == "Mastercard"
    assert len(mandate.details["cardExpiryDate"]) == 10
    assert paid.get_mandate().id == mandate.id

    # A second choice on the same page is refused: the payment is no longer open.
    again = emulator.checkout(payment.checkout_url, "failed")
    assert again.status_code == 409
    assert client.payments.get(payment.id).status == "paid"


def test_first_payment_by_ideal_leaves_a_directdebit_mandate(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    paid_first_payment(emulator, client, customer, method="ideal")
    (mandate,) = customer.mandates.list()
    assert mandate.method == "directdebit"
    assert set(mandate.details) == {"consumerName", "consumerAccount", "consumerBic"}


def test_revoked_mandate_can_no_longer_be_charged(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    first = paid_first_payment(emulator, client, customer)

    assert customer.mandates.delete(first.mandate_id) == {}
    assert customer.mandates.get(first.mandate_id).status == "invalid"

    with pytest.raises(UnprocessableEntityError) as err:
        recurring(client, customer)
    assert str(err.value) == "No suitable mandates found for customer"
    with pytest.raises(UnprocessableEntityError) as named:
        recurring(client, customer, mandateId=first.mandate_id)
    assert named.value.field == "mandateId"


def test_mandate_of_another_customer_is_refused(emulator: RunningEmulator, client: Client) -> None:
    owner = new_customer(client)
    first = paid_first_payment(emulator, client, owner)
    stranger = new_customer(client, "Mallory")
    with pytest.raises(UnprocessableEntityError) as err:
        recurring(client, stranger, mandateId=first.mandate_id)
    assert err.value.field == "mandateId"
    with pytest.raises(NotFoundError):
        stranger.mandates.get(first.mandate_id)


# -------------------------------------------------------------------------- recurring


def test_recurring_card_payment_is_paid_at_creation(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    customer = new_customer(client)
    first = paid_first_payment(emulator, client, customer)

    renewal = recurring(client, customer, "9.99", webhookUrl=receiver.url, metadata={"n": 2})
    assert renewal.status == "paid"
    assert renewal.paid_at is not None
    assert renewal.mandate_id == first.mandate_id
    assert renewal.method == "creditcard"
    assert renewal.checkout_url is None
    assert renewal.redirect_url is None
    assert renewal.sequence_type == "recurring"
    assert renewal.metadata == {"n": 2}
    assert receiver.wait_for(1) == [renewal.id]

    by_customer = customer.payments.list()
    assert [p.id for p in by_customer] == [renewal.id, first.id]


def test_recurring_magic_amount_fails_with_the_failure_reason(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    paid_first_payment(emulator, client, customer)

    failed = recurring(client, customer, "1007.00")
    assert failed.status == "failed"
    assert failed.is_failed()
    assert not failed.is_paid()
    assert failed.failed_at is not None
    assert failed.details["failureReason"] == "insufficient_funds"
    assert client.payments.get(failed.id).details["failureReason"] == "insufficient_funds"


def test_magic_amount_on_checkout_fails_instead_of_paying(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    payment = client.payments.create(
        {
            "amount": eur("1011.00"),
            "description": "Declined card",
            "redirectUrl": REDIRECT,
            "sequenceType": "first",
            "customerId": customer.id,
        }
    )
    assert emulator.checkout(payment.checkout_url, "paid").status_code == 303
    failed = client.payments.get(payment.id)
    assert failed.status == "failed"
    assert failed.details["failureReason"] == "card_declined"
    assert failed.mandate_id is None
    assert len(customer.mandates.list()) == 0


def test_next_outcomes_decide_a_customers_next_charges(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    paid_first_payment(emulator, client, customer)
    emulator.control(
        "POST",
        f"/customers/{customer.id}/next-outcomes",
        {"outcomes": [{"status": "failed", "failureReason": "card_expired"}, {"status": "paid"}]},
    )
    outcomes = [recurring(client, customer) for _ in range(3)]
    assert [p.status for p in outcomes] == ["failed", "paid", "paid"]
    assert outcomes[0].details["failureReason"] == "card_expired"


def test_sepa_recurring_stays_pending_until_the_clock_passes_settlement(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    customer = new_customer(client)
    mandate = customer.mandates.create(
        {
            "method": "directdebit",
            "consumerName": "Ada Lovelace",
            "consumerAccount": "NL55 INGB 0000 0000 00",
            "consumerBic": "INGBNL2A",
        }
    )
    assert mandate.status == "valid"
    assert mandate.details["consumerAccount"] == "NL55INGB0000000000"

    debit = recurring(client, customer, "25.00", webhookUrl=receiver.url)
    assert debit.status == "pending"
    assert debit.method == "directdebit"
    assert debit.is_cancelable
    assert debit.changepaymentstate_url is not None

    emulator.advance(3 * 24 * 3600 - 60)
    assert client.payments.get(debit.id).status == "pending"
    assert receiver.received() == []

    emulator.advance(120)
    settled = client.payments.get(debit.id)
    assert settled.status == "paid"
    assert at(settled.paid_at) == at(settled.created_at) + timedelta(days=3)
    assert receiver.received() == [debit.id]


def test_sepa_magic_amount_fails_when_the_debit_settles(
    emulator: RunningEmulator, client: Client
) -> None:
    customer = new_customer(client)
    customer.mandates.create(
        {"method": "directdebit", "consumerName": "A", "consumerAccount": "NL55INGB0000000000"}
    )
    debit = recurring(client, customer, "1006.00")
    assert debit.status == "pending"
    emulator.advance(3 * 24 * 3600)
    failed = client.payments.get(debit.id)
    assert failed.status == "failed"
    assert failed.details["failureReason"] == "refused_by_issuer"


# ------------------------------------------------------------ manual capture & release


def authorized_payment(emulator: RunningEmulator, client: Client, value: str = "30.00") -> Payment:
    customer = new_customer(client)
    payment = client.payments.create(
        {
            "amount": eur(value),
            "description": "Held",
            "redirectUrl": REDIRECT,
            "method": "creditcard",
            "captureMode": "manual",
            "sequenceType": "first",
            "customerId": customer.id,
        }
    )
    page = emulator.http.get(payment.checkout_url).text
    assert 'value="authorized"' in page
    assert 'value="paid"' not in page
    assert emulator.checkout(payment.checkout_url, "authorized").status_code == 303
    return client.payments.get(payment.id)


def test_manual_capture_authorizes_then_capture_pays(
    emulator: RunningEmulator, client: Client
) -> None:
    held = authorized_payment(emulator, client)
    assert held.status == "authorized"
    assert held.is_authorized()
    assert not held.is_paid()
    assert held.capture_mode == "manual"
    assert at(held.capture_before) == at(held.authorized_at) + timedelta(days=7)
    assert held.mandate_id is not None

    captures = Payment({"id": held.id}, client).captures
    capture = captures.create({"amount": eur("20.00"), "description": "Ship #1"})
    assert capture.id.startswith("cpt_")
    assert capture.payment_id == held.id
    assert capture.amount == eur("20.00")
    assert capture["status"] in {"pending", "succeeded"}

    wait_until(lambda: client.payments.get(held.id).status == "paid", what="capture settles")
    paid = client.payments.get(held.id)
    assert paid.amount_captured == eur("20.00")
    assert paid.amount_remaining == eur("20.00")
    assert paid.has_captures()
    assert captures.get(capture.id)["status"] == "succeeded"
    assert [c.id for c in captures.list()] == [capture.id]

    with pytest.raises(UnprocessableEntityError):
        captures.create({})


def test_capture_needs_an_authorized_payment(client: Client) -> None:
    payment = client.payments.create(
        {"amount": eur("5.00"), "description": "Open", "redirectUrl": REDIRECT}
    )
    with pytest.raises(UnprocessableEntityError) as err:
        Payment({"id": payment.id}, client).captures.create({})
    assert "not authorized" in str(err.value)


def test_release_authorization_answers_an_empty_202_and_cancels(
    emulator: RunningEmulator, client: Client
) -> None:
    held = authorized_payment(emulator, client)

    # Mollie answers 202 with no body; the client cannot parse that and raises, although the
    # release succeeded. Callers must treat this as accepted and confirm with a GET.
    with pytest.raises(ResponseHandlingError) as err:
        client.payments.release_authorization(held.id, idempotency_key="release-1")
    assert "status code: 202" in str(err.value)

    released = client.payments.get(held.id)
    assert released.status == "canceled"
    assert released.canceled_at is not None
    assert released.capture_before is None

    with pytest.raises(UnprocessableEntityError):
        client.payments.release_authorization(held.id)


# --------------------------------------------------------------------- cancel & update


def test_cancel_an_open_payment_and_refuse_a_second_cancel(client: Client) -> None:
    payment = client.payments.create(
        {"amount": eur("5.00"), "description": "To cancel", "redirectUrl": REDIRECT}
    )
    assert payment.is_cancelable is True

    canceled = client.payments.delete(payment.id)
    assert isinstance(canceled, Payment)
    assert canceled.status == "canceled"
    assert canceled.is_cancelable is False
    assert canceled.canceled_at is not None

    with pytest.raises(UnprocessableEntityError):
        client.payments.delete(payment.id)


def test_update_payment_changes_description_and_metadata(client: Client) -> None:
    payment = client.payments.create(
        {"amount": eur("5.00"), "description": "Before", "redirectUrl": REDIRECT}
    )
    updated = client.payments.update(
        payment.id, {"description": "After", "metadata": {"attempt": 2}}
    )
    assert (updated.description, updated.metadata) == ("After", {"attempt": 2})
    assert client.payments.get(payment.id).description == "After"


def test_open_payment_expires_after_fifteen_minutes(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    payment = client.payments.create(
        {
            "amount": eur("5.00"),
            "description": "Abandoned",
            "redirectUrl": REDIRECT,
            "webhookUrl": receiver.url,
        }
    )
    assert at(payment.expires_at) == at(payment.created_at) + timedelta(minutes=15)
    emulator.advance(14 * 60)
    assert client.payments.get(payment.id).status == "open"
    emulator.advance(61)
    expired = client.payments.get(payment.id)
    assert expired.status == "expired"
    assert expired.expired_at is not None
    assert receiver.received() == [payment.id]


# ---------------------------------------------------------------------------- refunds


def paid_oneoff(emulator: RunningEmulator, client: Client, **extra: Any) -> Payment:
    payment = client.payments.create(
        {"amount": eur("10.00"), "description": "Order", "redirectUrl": REDIRECT, **extra}
    )
    emulator.checkout(payment.checkout_url, "paid")
    return client.payments.get(payment.id)


def test_refunds_create_list_get_cancel_and_settle(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    payment = paid_oneoff(emulator, client, webhookUrl=receiver.url)
    receiver.wait_for(1)

    refund = payment.refunds.create(
        {"amount": eur("4.00"), "description": "Partial", "metadata": {"r": 1}}
    )
    assert refund.id.startswith("re_")
    assert refund.status == "pending"
    assert refund.payment_id == payment.id
    assert refund.metadata == {"r": 1}

    after = client.payments.get(payment.id)
    assert after.amount_refunded == eur("4.00")
    assert after.amount_remaining == eur("6.00")
    assert after.has_refunds()
    assert [r.id for r in after.refunds.list()] == [refund.id]
    assert after.refunds.get(refund.id).amount == eur("4.00")

    assert payment.refunds.delete(refund.id) == {}
    assert payment.refunds.get(refund.id).status == "canceled"
    assert client.payments.get(payment.id).amount_remaining == eur("10.00")

    second = payment.refunds.create({"amount": eur("3.00"), "description": "Goodwill"})
    emulator.advance(2 * 3600)
    assert payment.refunds.get(second.id).is_refunded()
    assert receiver.wait_for(2) == [payment.id, payment.id]
    with pytest.raises(UnprocessableEntityError):
        payment.refunds.delete(second.id)  # settled refunds cannot be canceled

    assert {r.id for r in client.refunds.list()} == {refund.id, second.id}


def test_over_refund_and_duplicate_refund_are_refused(
    emulator: RunningEmulator, client: Client
) -> None:
    payment = paid_oneoff(emulator, client)
    with pytest.raises(UnprocessableEntityError) as over:
        payment.refunds.create({"amount": eur("10.01")})
    assert over.value.field == "amount"
    assert "higher than the remaining refundable amount" in str(over.value)

    payment.refunds.create({"amount": eur("2.00"), "description": "Oops"})
    with pytest.raises(ConflictError) as duplicate:
        payment.refunds.create({"amount": eur("2.00"), "description": "Oops"})
    assert "duplicate refund" in str(duplicate.value)

    emulator.advance(61)  # outside the double-click window the same refund is accepted
    payment.refunds.create({"amount": eur("2.00"), "description": "Oops"})
    assert client.payments.get(payment.id).amount_remaining == eur("6.00")


def test_refund_of_an_unpaid_payment_is_refused(client: Client) -> None:
    payment = client.payments.create(
        {"amount": eur("5.00"), "description": "Open", "redirectUrl": REDIRECT}
    )
    with pytest.raises(UnprocessableEntityError):
        payment.refunds.create({"amount": eur("1.00")})


def test_chargeback_reduces_the_refundable_amount_and_notifies(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    payment = paid_oneoff(emulator, client, webhookUrl=receiver.url)
    chargeback = emulator.control("POST", f"/payments/{payment.id}/chargeback", {})
    assert chargeback["id"].startswith("chb_")

    listed = Payment({"id": payment.id}, client).chargebacks.list()
    assert [c.id for c in listed] == [chargeback["id"]]
    assert listed[0].amount == eur("10.00")
    after = client.payments.get(payment.id)
    assert after.amount_chargedback == eur("10.00")
    assert after.amount_remaining == eur("0.00")
    assert receiver.wait_for(2) == [payment.id, payment.id]


# -------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": eur("10")}, "amount"),
        ({"amount": {"currency": "EUR", "value": 10.0}}, "amount"),
        ({"amount": {"currency": "JPY", "value": "1000.00"}}, "amount"),
        ({"amount": eur("0.00")}, "amount"),
        ({"description": ""}, "description"),
        ({"description": "x" * 256}, "description"),
        ({"redirectUrl": None}, "redirectUrl"),
        ({"sequenceType": "sometimes"}, "sequenceType"),
        ({"captureMode": "later"}, "captureMode"),
        ({"method": "barter"}, "method"),
        ({"metadata": {"blob": "x" * 2000}}, "metadata"),
        ({"sequenceType": "first"}, "customerId"),
    ],
)
def test_invalid_payment_requests_name_the_field(
    client: Client, change: dict[str, Any], field: str
) -> None:
    body = {"amount": eur("10.00"), "description": "Valid", "redirectUrl": REDIRECT} | change
    with pytest.raises(UnprocessableEntityError) as err:
        client.payments.create({k: v for k, v in body.items() if v is not None})
    assert err.value.status == 422
    assert err.value.field == field


def test_zero_decimal_currency_and_zero_amount_first_payment_are_accepted(
    client: Client,
) -> None:
    yen = client.payments.create(
        {
            "amount": {"currency": "JPY", "value": "1000"},
            "description": "Y",
            "redirectUrl": REDIRECT,
        }
    )
    assert yen.amount == {"currency": "JPY", "value": "1000"}
    customer = new_customer(client)
    verify = client.payments.create(
        {
            "amount": eur("0.00"),
            "description": "Card check",
            "redirectUrl": REDIRECT,
            "sequenceType": "first",
            "method": "creditcard",
            "customerId": customer.id,
        }
    )
    assert verify.amount == eur("0.00")


def test_recurring_without_a_mandate_is_refused(client: Client) -> None:
    customer = new_customer(client)
    with pytest.raises(UnprocessableEntityError) as err:
        recurring(client, customer)
    assert str(err.value) == "No suitable mandates found for customer"


# -------------------------------------------------------------------------------- errors


def test_unknown_ids_raise_not_found_with_mollies_message(client: Client) -> None:
    with pytest.raises(NotFoundError) as err:
        client.payments.get("tr_doesnotexist")
    assert err.value.status == 404
    assert str(err.value) == "No payment exists with token tr_doesnotexist."
    with pytest.raises(NotFoundError):
        client.customers.get("cst_nobody")
    # The client rejects a wrong prefix before sending anything.
    with pytest.raises(IdentifierError):
        client.payments.get("pay_123")


def test_error_bodies_are_mollies_format(emulator: RunningEmulator) -> None:
    response = emulator.http.get(
        "/v2/payments/xyz", headers={"Authorization": f"Bearer {emulator.state.config.api_key}"}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/hal+json")
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["detail"] == "No payment exists with token xyz."
    assert body["_links"]["documentation"]["type"] == "text/html"


def test_wrong_api_key_is_unauthorized(emulator: RunningEmulator) -> None:
    intruder = emulator.client(api_key="test_somebodyelse00000000000000000")
    with pytest.raises(UnauthorizedError) as err:
        intruder.payments.list()
    assert err.value.status == 401
    missing = emulator.http.get("/v2/payments")
    assert missing.status_code == 401
    assert missing.json()["title"] == "Unauthorized Request"


# ---------------------------------------------------------------------------- pagination


def test_lists_paginate_newest_first_with_limit(client: Client) -> None:
    customer = new_customer(client)
    ids = [
        client.customers.get(customer.id)
        .payments.create(
            {"amount": eur(f"{n}.00"), "description": f"#{n}", "redirectUrl": REDIRECT}
        )
        .id
        for n in range(1, 6)
    ]
    newest_first = list(reversed(ids))

    first_page = client.payments.list(limit=2)
    assert len(first_page) == 2
    assert [p.id for p in first_page] == newest_first[:2]
    assert first_page.has_next()
    assert not first_page.has_previous()

    second_page = first_page.get_next()
    assert [p.id for p in second_page] == newest_first[2:4]
    assert second_page.has_previous()
    assert [p.id for p in second_page.get_previous()] == newest_first[:2]

    last_page = second_page.get_next()
    assert [p.id for p in last_page] == newest_first[4:]
    assert not last_page.has_next()
    assert last_page.get_next() is None

    by_customer = customer.payments.list(limit=3)
    assert [p.id for p in by_customer] == newest_first[:3]
    assert [p.id for p in by_customer.get_next()] == newest_first[3:]

    with pytest.raises(BadRequestError) as err:
        client.payments.list(limit=251)
    assert err.value.field == "limit"


# --------------------------------------------------------------------------- idempotency


def create_body(value: str = "10.00") -> dict[str, Any]:
    return {"amount": eur(value), "description": "Idempotent", "redirectUrl": REDIRECT}


def test_idempotent_replay_returns_the_same_payment(
    emulator: RunningEmulator, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    first = client.payments.create(create_body(), idempotency_key="order-1-charge")
    with caplog.at_level(logging.WARNING):
        again = client.payments.create(create_body(), idempotency_key="order-1-charge")
    assert again.id == first.id
    assert dict(again) == dict(first)
    assert "Idempotent-Replayed" in caplog.text  # the client saw the replay header
    assert len(emulator.ledger()) == 1

    with pytest.raises(BadRequestError) as err:
        client.payments.create(create_body("11.00"), idempotency_key="order-1-charge")
    assert "different request" in str(err.value)
    assert len(emulator.ledger()) == 1


def test_idempotency_key_is_forgotten_after_an_hour(
    emulator: RunningEmulator, client: Client
) -> None:
    first = client.payments.create(create_body(), idempotency_key="late-retry")
    emulator.advance(59 * 60)
    assert client.payments.create(create_body(), idempotency_key="late-retry").id == first.id
    emulator.advance(61)
    late = client.payments.create(create_body(), idempotency_key="late-retry")
    assert late.id != first.id
    assert len(emulator.ledger()) == 2


def test_each_idempotency_key_lives_its_own_hour(emulator: RunningEmulator, client: Client) -> None:
    early = client.payments.create(create_body(), idempotency_key="early")
    emulator.advance(30 * 60)
    later = client.payments.create(create_body(), idempotency_key="later")
    emulator.advance(31 * 60)  # early is 61 minutes old, later 31
    assert client.payments.create(create_body(), idempotency_key="later").id == later.id
    assert client.payments.create(create_body(), idempotency_key="early").id != early.id
    emulator.advance(30 * 60)  # later is 61 minutes old
    assert client.payments.create(create_body(), idempotency_key="later").id != later.id


def test_repeat_while_the_first_request_runs_is_a_conflict(
    emulator: RunningEmulator, client: Client
) -> None:
    emulator.set_faults(latencyMs=600)
    outcome: dict[str, Any] = {}

    def slow_create() -> None:
        outcome["payment"] = client.payments.create(create_body(), idempotency_key="slow-one")

    worker = threading.Thread(target=slow_create)
    worker.start()
    try:
        wait_until(lambda: emulator.state.idempotency.in_flight_count() == 1, what="in flight")
        with pytest.raises(ConflictError) as err:
            emulator.client().payments.create(create_body(), idempotency_key="slow-one")
        assert err.value.status == 409
    finally:
        worker.join(timeout=10)
    emulator.control("DELETE", "/faults")
    replay = client.payments.create(create_body(), idempotency_key="slow-one")
    assert replay.id == outcome["payment"].id
    assert len(emulator.ledger()) == 1


# ---------------------------------------------------------------------------- webhooks


def test_webhook_is_retried_on_mollies_schedule_until_accepted(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(3)
    payment = paid_oneoff(emulator, client, webhookUrl=receiver.url)
    emulator.advance(0)  # waits for the first attempt to finish
    (delivery,) = emulator.deliveries(payment.id)
    assert [a["statusCode"] for a in delivery["attempts"]] == [500]
    assert at(delivery["nextAttemptAt"]) == at(delivery["createdAt"]) + timedelta(minutes=1)

    emulator.advance(50)
    assert len(emulator.deliveries(payment.id)[0]["attempts"]) == 1
    emulator.advance(10)
    assert len(emulator.deliveries(payment.id)[0]["attempts"]) == 2

    emulator.advance(26 * 3600)
    (delivery,) = emulator.deliveries(payment.id)
    assert delivery["state"] == "delivered"
    attempts = delivery["attempts"]
    assert [a["statusCode"] for a in attempts] == [500, 500, 500, 200]
    offsets = [at(a["scheduledAt"]) - at(delivery["createdAt"]) for a in attempts]
    assert offsets == [timedelta(minutes=m) for m in (0, 1, 3, 7)]
    # Each attempt ran at its scheduled moment on the emulator clock (timestamps are seconds).
    assert all(
        timedelta(0) <= at(a["at"]) - at(a["scheduledAt"]) <= timedelta(seconds=1) for a in attempts
    )
    assert receiver.received() == [payment.id] * 4


def test_webhook_gives_up_after_ten_attempts_over_26_hours(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(100)
    payment = paid_oneoff(emulator, client, webhookUrl=receiver.url)
    emulator.advance(27 * 3600)
    (delivery,) = emulator.deliveries(payment.id)
    assert delivery["state"] == "failed"
    assert delivery["nextAttemptAt"] is None
    offsets = [at(a["scheduledAt"]) - at(delivery["createdAt"]) for a in delivery["attempts"]]
    minutes = (0, 1, 3, 7, 15, 31, 60, 120, 240, 1560)
    assert offsets == [timedelta(minutes=m) for m in minutes]
    assert len(receiver.received()) == 10


def test_unreachable_webhook_url_is_logged_as_an_error(
    emulator: RunningEmulator, client: Client
) -> None:
    payment = paid_oneoff(emulator, client, webhookUrl="http://127.0.0.1:9/nothing-listens")
    emulator.advance(0)
    (attempt,) = emulator.deliveries(payment.id)[0]["attempts"]
    assert attempt["statusCode"] is None
    assert attempt["error"]


# ------------------------------------------------------------------------ fault injection


def test_fail_next_before_commit_does_no_work(emulator: RunningEmulator, client: Client) -> None:
    emulator.set_faults(
        failNext=[{"method": "POST", "pathPrefix": "/v2/payments", "status": 503, "count": 2}]
    )
    for _ in range(2):
        with pytest.raises(ResponseError) as err:
            client.payments.create(create_body())
        assert type(err.value) is ResponseError
        assert err.value.status == 503
    assert emulator.ledger() == []
    client.payments.create(create_body())
    assert len(emulator.ledger()) == 1


def test_fail_after_commit_is_recovered_by_the_idempotency_key(
    emulator: RunningEmulator, client: Client
) -> None:
    emulator.set_faults(
        failNext=[{"pathPrefix": "/v2/payments", "status": 500, "afterCommit": True}]
    )
    with pytest.raises(ResponseError) as err:
        client.payments.create(create_body(), idempotency_key="lost-reply")
    assert err.value.status == 500
    (committed,) = emulator.ledger()  # the work happened although the caller saw an error

    retried = client.payments.create(create_body(), idempotency_key="lost-reply")
    assert retried.id == committed["id"]
    assert len(emulator.ledger()) == 1


def test_timeout_after_commit_then_retry_with_the_same_key(
    emulator: RunningEmulator, client: Client
) -> None:
    emulator.set_faults(
        failNext=[{"pathPrefix": "/v2/payments", "status": "timeout", "afterCommit": True}]
    )
    impatient = emulator.client(timeout=(2, 0.3))
    with pytest.raises(RequestError):
        impatient.payments.create(create_body(), idempotency_key="timed-out")
    (committed,) = emulator.ledger()
    assert client.payments.create(create_body(), idempotency_key="timed-out").id == committed["id"]


def test_rate_limit_answers_429_with_retry_after(emulator: RunningEmulator, client: Client) -> None:
    emulator.set_faults(failNext=[{"method": "GET", "status": 429, "count": 2}])
    with pytest.raises(ResponseError) as err:
        client.payments.list()
    assert err.value.status == 429
    raw = emulator.http.get(
        "/v2/payments", headers={"Authorization": f"Bearer {emulator.state.config.api_key}"}
    )
    assert raw.status_code == 429
    assert raw.headers["retry-after"] == "1"
    assert raw.json()["title"] == "Too Many Requests"
    assert len(client.payments.list()) == 0


def test_random_faults_are_reproducible_with_a_seed(
    emulator: RunningEmulator, client: Client
) -> None:
    def pattern() -> list[int]:
        statuses = []
        for _ in range(12):
            try:
                client.payments.list()
                statuses.append(200)
            except ResponseError as err:
                statuses.append(int(err.status or 0))
        return statuses

    emulator.set_faults(errorRate=0.4, rateLimitRate=0.2, seed=42)
    first = pattern()
    emulator.set_faults(errorRate=0.4, rateLimitRate=0.2, seed=42)
    assert pattern() == first
    assert {200, 503} <= set(first)
    emulator.control("DELETE", "/faults")
    assert pattern() == [200] * 12


def test_dropped_and_duplicated_webhooks(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    emulator.set_faults(dropWebhookRate=1.0)
    dropped = paid_oneoff(emulator, client, webhookUrl=receiver.url)
    emulator.advance(3600)
    assert emulator.deliveries(dropped.id)[0]["state"] == "dropped"
    assert receiver.received() == []

    emulator.set_faults(duplicateWebhookRate=1.0)
    doubled = paid_oneoff(emulator, client, webhookUrl=receiver.url)
    assert receiver.wait_for(2) == [doubled.id, doubled.id]
