"""InitialPurchase end to end on a real Temporal server, the real shim and both emulators."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.money import Money
from domain.purchase import PurchaseInput, PurchaseView, purchase_workflow_id
from domain.tokens import MollieToken
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.shop import (
    advance_clock,
    choose_on_checkout,
    cleeng_payments,
    frontend_headers,
    lose_the_next_reply,
    mollie_payments_for_order,
    seed_order,
    set_faults,
)
from workflows.initial_purchase import InitialPurchaseWorkflow

pytestmark = pytest.mark.asyncio


async def start_purchase(
    connector: Connector, seeded: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """POST /purchases for a seeded order, as the publisher's backend acting for its customer."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{connector.api_url}/purchases",
            json={
                "orderId": str(seeded["orderId"]),
                "redirectUrl": "https://shop.example/thanks",
                **extra,
            },
            headers=frontend_headers(connector.settings, seeded["customerId"]),
            timeout=60,
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def purchase_handle(connector: Connector, order_id: str) -> WorkflowHandle[Any, PurchaseView]:
    return connector.client.get_workflow_handle_for(
        InitialPurchaseWorkflow.run, purchase_workflow_id(order_id)
    )


async def test_paid_checkout_is_captured_in_cleeng_with_reusable_details(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=12.34, currency="EUR")
    order_id = str(seeded["orderId"])

    started = await start_purchase(connector, seeded)
    assert started["status"] == "awaiting_payment"
    assert started["molliePaymentId"].startswith("tr_")
    assert started["amount"] == {"minor": 1234, "currency": "EUR"}

    redirect = await choose_on_checkout(started["checkoutUrl"], "paid")
    assert redirect.status_code == 303
    assert redirect.headers["location"] == "https://shop.example/thanks"

    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"
    assert final.cleeng_payment_id is not None

    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert recorded["status"] == "captured"
    assert recorded["paymentOperation"] == "initial-payment"
    assert recorded["externalPaymentId"] == started["molliePaymentId"]
    assert str(recorded["id"]) == final.cleeng_payment_id

    async with httpx.AsyncClient() as http:
        details = await http.get(
            f"{connector.emulators.cleeng_url}/_emulator/payment-details/{recorded['paymentDetailsId']}"
        )
    token = MollieToken.parse(details.json()["token"])
    assert token is not None, "payment details token must name the Mollie customer and mandate"
    [mollie_payment] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert mollie_payment["mandateId"] == token.mandate_id
    assert mollie_payment["customerId"] == token.customer_id


async def test_amount_comes_from_the_cleeng_order_not_the_caller(connector: Connector) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=49.5, currency="EUR")
    order_id = str(seeded["orderId"])
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{connector.api_url}/purchases",
            json={
                "orderId": order_id,
                "redirectUrl": "https://shop.example/thanks",
                "amount": {"value": "0.01", "currency": "EUR"},
            },
            headers=frontend_headers(connector.settings, seeded["customerId"]),
        )
    assert response.status_code == 422, "extra fields such as an amount are refused"
    started = await start_purchase(connector, seeded)
    [mollie_payment] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert mollie_payment["amount"] == {"currency": "EUR", "value": "49.50"}
    assert started["amount"] == {"minor": 4950, "currency": "EUR"}


@pytest.mark.parametrize(
    ("outcome", "price", "reason"),
    [
        ("failed", 1007.00, "insufficient_funds"),
        ("canceled", 10.00, "canceled"),
        ("expired", 10.00, "expired"),
    ],
)
async def test_unsuccessful_checkout_is_rejected_with_the_reason(
    connector: Connector, outcome: str, price: float, reason: str
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=price, currency="EUR")
    order_id = str(seeded["orderId"])
    started = await start_purchase(connector, seeded)
    # A magic amount turns "paid" into a card failure with Mollie's failureReason.
    await choose_on_checkout(started["checkoutUrl"], "paid" if outcome == "failed" else outcome)

    final = await purchase_handle(connector, order_id).result()
    assert final.status == "rejected"
    assert final.failure_reason == reason
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert recorded["status"] == "rejected"
    assert recorded["rejectedReason"] == reason
    assert recorded["externalPaymentId"] == started["molliePaymentId"]


async def test_concurrent_purchase_requests_create_one_mollie_payment(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])

    answers = await asyncio.gather(*(start_purchase(connector, seeded) for _ in range(20)))

    assert len({answer["checkoutUrl"] for answer in answers}) == 1
    assert len({answer["molliePaymentId"] for answer in answers}) == 1
    assert len(await mollie_payments_for_order(connector.emulators.mollie_url, order_id)) == 1


async def test_purchase_of_a_finished_order_reports_the_outcome_and_charges_nothing(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    started = await start_purchase(connector, seeded)
    await choose_on_checkout(started["checkoutUrl"], "paid")
    await purchase_handle(connector, order_id).result()

    async with httpx.AsyncClient() as http:
        again = await http.post(
            f"{connector.api_url}/purchases",
            json={"orderId": order_id, "redirectUrl": "https://shop.example/thanks"},
            headers=frontend_headers(connector.settings, seeded["customerId"]),
        )
    assert again.status_code == 200
    assert again.json()["status"] == "captured"
    assert len(await mollie_payments_for_order(connector.emulators.mollie_url, order_id)) == 1
    assert len(await cleeng_payments(connector.emulators.cleeng_url, order_id)) == 1


async def test_duplicate_and_forged_webhooks_change_nothing(connector: Connector) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    started = await start_purchase(connector, seeded)
    webhook = f"{connector.api_url}/webhooks/mollie"
    workflow = {"workflow": purchase_workflow_id(order_id)}
    async with httpx.AsyncClient() as http:
        forged = await http.post(webhook, params=workflow, data={"id": "tr_forged123"})
        assert forged.status_code == 200
        unknown = await http.post(
            webhook, params={"workflow": "purchase:999999999"}, data={"id": "tr_x1"}
        )
        assert unknown.status_code == 200
        assert (
            await purchase_handle(connector, order_id).query(InitialPurchaseWorkflow.view)
        ).status == "awaiting_payment"

        await choose_on_checkout(started["checkoutUrl"], "paid")
        for _ in range(5):
            duplicate = await http.post(
                webhook, params=workflow, data={"id": started["molliePaymentId"]}
            )
            assert duplicate.status_code == 200

    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"
    assert len(await cleeng_payments(connector.emulators.cleeng_url, order_id)) == 1


async def test_lost_webhooks_are_covered_by_polling(
    connector: Connector, clean_faults: None
) -> None:
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    # Start directly with a one-second schedule: the default 1/5/15/60 minutes is covered by
    # the time-skipping test.
    handle = await connector.client.start_workflow(
        InitialPurchaseWorkflow.run,
        PurchaseInput(
            order_id=order_id,
            redirect_url="https://shop.example/thanks",
            poll_schedule_seconds=(1,),
        ),
        id=purchase_workflow_id(order_id),
        task_queue=connector.settings.temporal_task_queue,
    )
    view = await handle.execute_update(InitialPurchaseWorkflow.checkout)
    assert view.checkout_url is not None
    await choose_on_checkout(view.checkout_url, "paid")

    final = await handle.result()
    assert final.status == "captured"


async def test_the_shim_gives_each_purchase_the_configured_poll_schedule(
    temporal_env: WorkflowEnvironment,
) -> None:
    """PAYMENT_POLL_SCHEDULE_SECONDS reaches the workflows the shim starts: with every Mollie
    webhook lost, a purchase started through `POST /purchases` is captured by its own looks
    at Mollie, on the configured schedule rather than the default minute."""
    async with connector_on_own_emulators(
        temporal_env, payment_poll_schedule_seconds=(1, 2)
    ) as connector:
        await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
        seeded = await seed_order(connector.emulators.cleeng_url)
        order_id = str(seeded["orderId"])
        started = await start_purchase(connector, seeded)
        await choose_on_checkout(started["checkoutUrl"], "paid")
        handle = purchase_handle(connector, order_id)

        async with asyncio.timeout(30):  # the default schedule would first look after 60 s
            final = await handle.result()

        assert final.status == "captured"
        first_event = (await handle.fetch_history()).events[0]
        [purchase_input] = await connector.client.data_converter.decode(
            first_event.workflow_execution_started_event_attributes.input.payloads, [PurchaseInput]
        )
        assert purchase_input.poll_schedule_seconds == (1, 2)


@pytest.mark.long_running(seconds=10)
async def test_cleeng_outage_while_recording_is_retried_and_recorded_once(
    connector: Connector, clean_faults: None
) -> None:
    """Outages are retried; a reply lost after Cleeng committed is the residual risk of an API
    with no idempotency and no documented read of an order's payments: at most one duplicate
    Cleeng record, and never a second charge (docs/cleeng-contract.md)."""
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    started = await start_purchase(connector, seeded)
    await set_faults(
        connector.emulators.cleeng_url,
        {
            "failNext": [
                {"method": "POST", "pathPrefix": "/3.1/payments", "status": 503, "count": 2},
                # The next try is applied by Cleeng but the connector times out waiting.
                {
                    "method": "POST",
                    "pathPrefix": "/3.1/payments",
                    "status": "timeout",
                    "count": 1,
                    "afterCommit": True,
                },
            ]
        },
    )
    await choose_on_checkout(started["checkoutUrl"], "paid")

    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"
    recorded = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert [payment["status"] for payment in recorded] == ["captured", "captured"]
    assert [payment.get("duplicateOf") for payment in recorded] == [None, recorded[0]["id"]]
    assert final.cleeng_payment_id == str(recorded[1]["id"])
    [charge] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert (charge["status"], charge["refunds"]) == ("paid", [])


async def test_an_undocumented_refusal_never_refunds_a_good_payment(
    connector: Connector, clean_faults: None
) -> None:
    """Cleeng answers 422 for a reason its reference does not document (the order is not
    expired): the payment is retried until Cleeng records it, and nothing is refunded."""
    seeded = await seed_order(connector.emulators.cleeng_url, price=15.00, currency="EUR")
    order_id = str(seeded["orderId"])
    started = await start_purchase(connector, seeded)
    await set_faults(
        connector.emulators.cleeng_url,
        {
            "failNext": [
                {"method": "POST", "pathPrefix": "/3.1/payments", "status": 422, "count": 2}
            ]
        },
    )
    await choose_on_checkout(started["checkoutUrl"], "paid")

    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"
    [mollie_payment] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert mollie_payment["status"] == "paid"
    assert mollie_payment["refunds"] == []
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert recorded["status"] == "captured"


async def test_money_cleeng_refuses_for_good_is_refunded_and_the_workflow_fails(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=20.00, currency="EUR")
    order_id = str(seeded["orderId"])
    started = await start_purchase(connector, seeded)
    # Orders expire after 24 h: the shopper pays an order Cleeng no longer accepts.
    await advance_clock(connector.emulators.cleeng_url, 25 * 3600)
    await choose_on_checkout(started["checkoutUrl"], "paid")

    handle = purchase_handle(connector, order_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "refunded" in str(failure.value.cause)
    state = await handle.query(InitialPurchaseWorkflow.view)
    assert state.status == "refunded_cleeng_refused"
    assert state.error is not None
    assert "expired" in state.error

    [mollie_payment] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    refunds = mollie_payment["refunds"]
    assert [Money.from_decimal(r["amount"]["value"], "EUR").minor for r in refunds] == [2000]
    assert await cleeng_payments(connector.emulators.cleeng_url, order_id) == []


async def test_a_checkout_retried_after_mollie_forgot_the_key_is_not_made_twice(
    temporal_env: WorkflowEnvironment,
) -> None:
    """Mollie makes the checkout payment but the reply is lost, and the retry comes after Mollie
    forgot the Idempotency-Key (an hour): the retry finds the payment by its metadata instead
    of making a second one. By then the unpaid checkout has expired, so the order is recorded
    rejected with that payment, and the shopper can never pay two checkouts for one order."""
    async with connector_on_own_emulators(temporal_env) as connector:
        seeded = await seed_order(connector.emulators.cleeng_url, price=7.5, currency="EUR")
        order_id = str(seeded["orderId"])
        await lose_the_next_reply(connector.emulators.mollie_url, "POST", "/v2/payments")
        answer = asyncio.create_task(start_purchase(connector, seeded))
        async with asyncio.timeout(30):
            while not await mollie_payments_for_order(connector.emulators.mollie_url, order_id):
                await asyncio.sleep(0.05)
        await advance_clock(connector.emulators.mollie_url, 2 * 3600)
        started = await answer

        [made] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
        assert started["molliePaymentId"] == made["id"]
        final = await purchase_handle(connector, order_id).result()
        assert (final.status, final.failure_reason) == ("rejected", "expired")
        [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
        assert (recorded["status"], recorded["externalPaymentId"]) == ("rejected", made["id"])
        assert len(await mollie_payments_for_order(connector.emulators.mollie_url, order_id)) == 1
