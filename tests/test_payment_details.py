"""Update payment details end to end: a card change for a customer whose renewal is authorised
but not captured. New details are stored, Cleeng deactivates the old ones, the old-details
saga releases and cancels the old authorisation and revokes the old mandate, and the renewal is
then charged on the new mandate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from domain.billing import BillingView, billing_workflow_id
from domain.payment_details import DeactivationView, NewDetailsView, deactivation_workflow_id
from domain.tokens import MollieToken
from settings import EMULATOR_MOLLIE_API_KEY
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.billing import (
    authorised_renewal,
    change_card,
    cleeng_subscription_payments,
    mollie_customer_payments,
    result_when_started,
    send_cleeng_webhook,
    subscribed_customer,
)
from tests.support.shop import choose_on_checkout, frontend_headers, set_faults
from webhook_registration import run as register_webhooks
from workflows.payment_details import DetailsDeactivationWorkflow


@pytest.fixture(scope="module")
async def own_connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    # Cleeng's deactivation webhook needs the connector registered in that emulator.
    async with connector_on_own_emulators(temporal_env) as connector:
        await register_webhooks(connector.settings, f"{connector.api_url}/webhooks/cleeng")
        yield connector


async def mandate_status(connector: Connector, token: str) -> str:
    parsed = MollieToken.parse(token)
    assert parsed is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{connector.emulators.mollie_url}/v2/customers/{parsed.customer_id}"
            f"/mandates/{parsed.mandate_id}",
            headers={"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"},
        )
    status: str = response.json()["status"]
    return status


async def test_card_change_releases_the_old_authorisation_and_renews_on_the_new_card(
    own_connector: Connector,
) -> None:
    connector = own_connector
    sub, held_payment = await authorised_renewal(connector)

    new_details = await change_card(connector, sub)
    assert new_details.status == "active"
    assert new_details.payment_details_id not in (None, sub.payment_details_id)

    saga: DeactivationView = await result_when_started(
        connector.client.get_workflow_handle(
            deactivation_workflow_id(sub.payment_details_id), result_type=DeactivationView
        )
    )
    assert saga.status == "done"
    assert [c.mollie_payment_id for c in saga.cancelled] == [held_payment]
    assert saga.mandate_revoked
    assert await mandate_status(connector, sub.token) == "invalid"
    [old] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert old["status"] == "cancelled"

    # Cleeng now bills the new details: the capture webhook carries their token.
    async with httpx.AsyncClient() as http:
        details = await http.get(
            f"{connector.emulators.cleeng_url}/_emulator/payment-details/{new_details.payment_details_id}"
        )
    new_token = details.json()["token"]
    capture = sub.dunning_data(
        "capture", 0, token=new_token, paymentDetailsId=int(new_details.payment_details_id)
    )
    assert (await send_cleeng_webhook(connector, capture)).status_code == 200
    cycle = await connector.client.get_workflow_handle(
        billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date)),
        result_type=BillingView,
    ).result()
    assert cycle.status == "captured"

    payments = {
        p["id"]: p for p in await mollie_customer_payments(connector, sub.mollie_customer_id)
    }
    assert payments[held_payment]["status"] == "canceled"
    new_mandate = MollieToken.parse(new_token)
    assert new_mandate is not None
    [charged] = [p for p in payments.values() if p["mandateId"] == new_mandate.mandate_id]
    assert charged["status"] == "paid"
    statuses = sorted(
        p["status"] for p in await cleeng_subscription_payments(connector, sub.subscription_id)
    )
    assert statuses == ["cancelled", "captured"]


async def test_saga_survives_mollie_and_cleeng_outages_without_doing_anything_twice(
    own_connector: Connector,
) -> None:
    connector = own_connector
    sub, held_payment = await authorised_renewal(connector)
    await set_faults(
        connector.emulators.mollie_url,
        {
            "failNext": [
                {"method": "POST", "pathPrefix": f"/v2/payments/{held_payment}/release",
                 "status": 503, "count": 2},
                {"method": "DELETE", "pathPrefix": "/v2/customers/", "status": 500, "count": 1},
            ]
        },
    )  # fmt: skip
    await set_faults(
        connector.emulators.cleeng_url,
        {
            "failNext": [
                {"method": "PATCH", "pathPrefix": "/3.1/payments/", "status": 503, "count": 1},
                {"method": "PATCH", "pathPrefix": "/3.1/payments/", "status": 502, "count": 1,
                 "afterCommit": True},
            ]
        },
    )  # fmt: skip
    try:
        await change_card(connector, sub)
        saga: DeactivationView = await result_when_started(
            connector.client.get_workflow_handle(
                deactivation_workflow_id(sub.payment_details_id), result_type=DeactivationView
            ),
            timeout=60,
        )
    finally:
        async with httpx.AsyncClient() as http:
            await http.delete(f"{connector.emulators.mollie_url}/_emulator/faults")
            await http.delete(f"{connector.emulators.cleeng_url}/_emulator/faults")
    assert saga.status == "done", saga.failures
    assert [c.mollie_payment_id for c in saga.cancelled] == [held_payment]
    assert await mandate_status(connector, sub.token) == "invalid"
    [old] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert old["status"] == "cancelled"
    [held] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert held["status"] == "canceled"


async def test_details_of_another_gateway_are_acknowledged_and_left_alone(
    own_connector: Connector,
) -> None:
    data = {"paymentDetailsId": 990000001, "customerId": 1, "token": "adyen:8415698462516"}
    response = await send_cleeng_webhook(own_connector, data, topic="paymentDetailsDeactivated")
    assert response.status_code == 200
    result = await own_connector.client.get_workflow_handle(
        deactivation_workflow_id("990000001"), result_type=DeactivationView
    ).result()
    assert result.status == "not_ours"
    assert result.cancelled == []
    assert not result.mandate_revoked


async def test_refund_from_the_cleeng_dashboard_is_made_at_mollie(
    own_connector: Connector,
) -> None:
    """The emulator's "refund" button sends `refundPayment` through real webhook delivery."""
    connector = own_connector
    sub = await subscribed_customer(connector, price=8.00)
    async with httpx.AsyncClient() as http:
        payments = (
            await http.get(
                f"{connector.emulators.cleeng_url}/_emulator/payments",
                params={"customerId": sub.customer_id},
            )
        ).json()["items"]
        [initial] = payments
        pressed = await http.post(
            f"{connector.emulators.cleeng_url}/_emulator/payments/{initial['id']}/refund",
            json={"amount": 3.00, "reason": "dashboard"},
        )
        assert pressed.status_code == 200, pressed.text
        assert [d["status"] for d in pressed.json()["deliveries"]] == ["delivered"]
    async with asyncio.timeout(30):
        while True:
            async with httpx.AsyncClient() as http:
                ledger = (
                    await http.get(f"{connector.emulators.mollie_url}/_emulator/ledger")
                ).json()
            [payment] = [p for p in ledger["payments"] if p["id"] == initial["externalPaymentId"]]
            if payment["refunds"]:
                break
            await asyncio.sleep(0.05)
    [refund] = payment["refunds"]
    assert refund["amount"] == {"currency": "EUR", "value": "3.00"}


async def test_deactivation_without_a_token_releases_the_holds_and_fails_for_an_operator(
    own_connector: Connector,
) -> None:
    connector = own_connector
    sub, held_payment = await authorised_renewal(connector)
    # Cleeng publishes no payload for this topic: here it names the details but no token.
    data = {"paymentDetailsId": int(sub.payment_details_id), "customerId": int(sub.customer_id)}
    response = await send_cleeng_webhook(connector, data, topic="paymentDetailsDeactivated")
    assert (response.status_code, response.json()["status"]) == (200, "accepted")

    handle = connector.client.get_workflow_handle(
        deactivation_workflow_id(sub.payment_details_id), result_type=DeactivationView
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await result_when_started(handle)
    assert "without a token" in str(failure.value.cause)
    view = await handle.query(DetailsDeactivationWorkflow.view)
    assert [c.mollie_payment_id for c in view.cancelled] == [held_payment]
    assert [f.step for f in view.failures] == ["revoke mandate"]
    [held] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert held["status"] == "canceled"
    [old] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert old["status"] == "cancelled"
    # The mandate could not be found from the webhook: it is left for the operator.
    assert await mandate_status(connector, sub.token) == "valid"


async def test_verification_charge_is_refunded_when_cleeng_refuses_the_new_details(
    own_connector: Connector,
) -> None:
    """iDEAL pays the smallest amount to make a mandate; a customer Cleeng does not know
    cannot get details, and the 0.01 must not stay taken."""
    connector = own_connector
    unknown_customer = "987654321"
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{connector.api_url}/payment-details",
            json={
                "customerId": unknown_customer,
                "redirectUrl": "https://shop.example/account",
                "method": "ideal",
            },
            headers=frontend_headers(connector.settings, unknown_customer),
        )
        assert started.status_code == 201, started.text
        await choose_on_checkout(started.json()["checkoutUrl"], "paid")
    handle = connector.client.get_workflow_handle(
        f"payment-details:{unknown_customer}", result_type=NewDetailsView
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "did not store the new payment details" in str(failure.value.cause)
    mollie_payment_id = started.json()["molliePaymentId"]
    async with httpx.AsyncClient() as http:
        ledger = (await http.get(f"{connector.emulators.mollie_url}/_emulator/ledger")).json()
    [verification] = [p for p in ledger["payments"] if p["id"] == mollie_payment_id]
    assert verification["amount"] == {"currency": "EUR", "value": "0.01"}
    assert [r["amount"]["value"] for r in verification["refunds"]] == ["0.01"]
    assert (
        await mandate_status(
            connector, f"mollie:{verification['customerId']}:{verification['mandateId']}"
        )
        == "invalid"
    )


async def test_an_unreadable_list_of_authorisations_is_read_again_never_taken_as_none(
    own_connector: Connector,
) -> None:
    """Cleeng (the emulator's own HTTP, answering an injected fault with 200 and an
    error-shaped body) once answers the authorised-payments list in a shape that is no list.
    The saga must not conclude "no authorisations" from it: the read is retried, and the hold
    on the old card is released and its Cleeng record cancelled."""
    connector = own_connector
    sub, held_payment = await authorised_renewal(connector)
    path = f"/3.1/payment_details/{sub.payment_details_id}/authorised_payments"
    await set_faults(
        connector.emulators.cleeng_url,
        {"failNext": [{"method": "GET", "pathPrefix": path, "status": 200, "count": 1}]},
    )
    try:
        await change_card(connector, sub)
        saga: DeactivationView = await result_when_started(
            connector.client.get_workflow_handle(
                deactivation_workflow_id(sub.payment_details_id), result_type=DeactivationView
            ),
            timeout=60,
        )
    finally:
        async with httpx.AsyncClient() as http:
            await http.delete(f"{connector.emulators.cleeng_url}/_emulator/faults")
    assert saga.status == "done", saga.failures
    assert [c.mollie_payment_id for c in saga.cancelled] == [held_payment]
    [held] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert held["status"] == "canceled"
    [old] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert old["status"] == "cancelled"
