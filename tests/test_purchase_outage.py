"""A Mollie outage while a purchase is being set up: the shopper's request answers within its
deadline (202, then polling), the checkout follows once Mollie is back, and a purchase whose
setup gave up is started again by the next request, charging once.

All on a real Temporal dev server with the shim and both emulators as real servers; the
connector here has its own emulators (their faults and clocks are this module's) and a short
answer deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.purchase import CHECKOUT_UNAVAILABLE, PurchaseInput, PurchaseView, purchase_workflow_id
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.shop import (
    advance_clock,
    choose_on_checkout,
    cleeng_payments,
    frontend_headers,
    mollie_payments_for_order,
    seed_order,
    set_faults,
)
from workflows.initial_purchase import InitialPurchaseWorkflow

pytestmark = pytest.mark.asyncio

THANKS = "https://shop.example/thanks"
# Every Mollie API request answers 503.
MOLLIE_DOWN = {"errorRate": 1.0}
# Far below the 10 s default, so the outage tests answer quickly; the rule is the same.
ANSWER_SECONDS = 2.0
# A client timeout well above the answer deadline, only so that a shim which does not answer
# in time fails the test instead of hanging it.
CLIENT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
async def outage_connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    async with connector_on_own_emulators(
        temporal_env, purchase_answer_seconds=ANSWER_SECONDS
    ) as connector:
        yield connector


@pytest.fixture
async def connector(outage_connector: Connector) -> AsyncIterator[Connector]:
    """The module's connector, with both emulators' faults cleared after each test."""
    yield outage_connector
    async with httpx.AsyncClient() as http:
        for base in (outage_connector.emulators.mollie_url, outage_connector.emulators.cleeng_url):
            (await http.delete(f"{base}/_emulator/faults")).raise_for_status()


async def post_purchase(connector: Connector, seeded: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{connector.api_url}/purchases",
            json={"orderId": str(seeded["orderId"]), "redirectUrl": THANKS},
            headers=frontend_headers(connector.settings, seeded["customerId"]),
            timeout=CLIENT_TIMEOUT,
        )


async def get_purchase(connector: Connector, seeded: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{connector.api_url}/purchases/{seeded['orderId']}",
            headers=frontend_headers(connector.settings, seeded["customerId"]),
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def clear_faults(connector: Connector) -> None:
    async with httpx.AsyncClient() as http:
        (await http.delete(f"{connector.emulators.mollie_url}/_emulator/faults")).raise_for_status()


def purchase_handle(connector: Connector, order_id: str) -> WorkflowHandle[Any, PurchaseView]:
    return connector.client.get_workflow_handle_for(
        InitialPurchaseWorkflow.run, purchase_workflow_id(order_id)
    )


async def latest_run_id(connector: Connector, order_id: str) -> str:
    description = await connector.client.get_workflow_handle(
        purchase_workflow_id(order_id)
    ).describe()
    return description.run_id


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Await a condition the test cannot be told about (an emulator's ledger), checking often."""
    for _ in range(600):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def fail_setup_quickly(connector: Connector, order_id: str) -> None:
    """A run of the purchase whose setup gives up after 3 s (the API's runs take 15 minutes),
    awaited until it failed."""
    handle = await connector.client.start_workflow(
        InitialPurchaseWorkflow.run,
        PurchaseInput(order_id=order_id, redirect_url=THANKS, setup_seconds=3),
        id=purchase_workflow_id(order_id),
        task_queue=connector.settings.temporal_task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == CHECKOUT_UNAVAILABLE, cause


async def test_an_outage_answers_202_in_time_and_the_checkout_follows_once_mollie_is_back(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=12.00, currency="EUR")
    order_id = str(seeded["orderId"])
    await set_faults(connector.emulators.mollie_url, MOLLIE_DOWN)

    first = await post_purchase(connector, seeded)
    assert first.status_code == 202, first.text
    assert first.headers["location"] == f"/purchases/{order_id}"
    assert int(first.headers["retry-after"]) > 0
    assert first.json()["status"] == "starting"
    assert first.json()["checkoutUrl"] is None
    assert (await get_purchase(connector, seeded))["status"] == "starting"

    # Asking again joins the same run, which is still retrying.
    run_id = await latest_run_id(connector, order_id)
    again = await post_purchase(connector, seeded)
    assert again.status_code == 202, again.text
    assert await latest_run_id(connector, order_id) == run_id
    assert await mollie_payments_for_order(connector.emulators.mollie_url, order_id) == []

    await clear_faults(connector)
    # The setup's next retry creates the checkout; the update answers once it exists.
    ready = await purchase_handle(connector, order_id).execute_update(
        InitialPurchaseWorkflow.checkout
    )
    polled = await get_purchase(connector, seeded)
    assert polled["status"] == "awaiting_payment"
    assert ready.checkout_url is not None
    assert polled["checkoutUrl"] == ready.checkout_url

    await choose_on_checkout(polled["checkoutUrl"], "paid")
    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"
    [charge] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert charge["status"] == "paid"
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert recorded["externalPaymentId"] == charge["id"]


async def test_a_purchase_whose_setup_gave_up_starts_again_and_charges_once(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=15.00, currency="EUR")
    order_id = str(seeded["orderId"])
    await set_faults(connector.emulators.mollie_url, MOLLIE_DOWN)
    await fail_setup_quickly(connector, order_id)
    failed_run = await latest_run_id(connector, order_id)
    shown = await get_purchase(connector, seeded)
    assert (shown["status"], shown["molliePaymentId"]) == ("failed", None)
    assert await mollie_payments_for_order(connector.emulators.mollie_url, order_id) == []

    await clear_faults(connector)
    restarted = await post_purchase(connector, seeded)
    assert restarted.status_code == 201, restarted.text
    assert restarted.json()["status"] == "awaiting_payment"
    new_run = await latest_run_id(connector, order_id)
    assert new_run != failed_run
    old = await connector.client.get_workflow_handle(
        purchase_workflow_id(order_id), run_id=failed_run
    ).describe()
    assert old.status == WorkflowExecutionStatus.FAILED

    await choose_on_checkout(restarted.json()["checkoutUrl"], "paid")
    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"

    # Captured: a later request reports it and never starts the purchase again.
    after = await post_purchase(connector, seeded)
    assert after.status_code == 200, after.text
    assert after.json()["status"] == "captured"
    assert await latest_run_id(connector, order_id) == new_run
    [charge] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert charge["status"] == "paid"
    assert len(await cleeng_payments(connector.emulators.cleeng_url, order_id)) == 1


async def test_a_restart_never_hands_out_a_payment_the_failed_run_left_at_mollie(
    connector: Connector,
) -> None:
    """The failed run's create reached Mollie but its reply was lost, then Mollie went down:
    that payment was never shown to anyone and may be stale. The new run makes its own."""
    seeded = await seed_order(connector.emulators.cleeng_url, price=17.00, currency="EUR")
    order_id = str(seeded["orderId"])
    await set_faults(
        connector.emulators.mollie_url,
        {
            "failNext": [
                {
                    "method": "POST",
                    "pathPrefix": "/v2/payments",
                    "status": "timeout",
                    "afterCommit": True,
                    "hangSeconds": 30,
                }
            ]
        },
    )
    setup = asyncio.create_task(fail_setup_quickly(connector, order_id))

    async def payment_created() -> bool:
        return bool(await mollie_payments_for_order(connector.emulators.mollie_url, order_id))

    await until(payment_created, "the first run's payment reaches Mollie")
    await set_faults(connector.emulators.mollie_url, MOLLIE_DOWN)
    await setup
    [orphan] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert (await get_purchase(connector, seeded))["molliePaymentId"] is None

    await clear_faults(connector)
    restarted = await post_purchase(connector, seeded)
    assert restarted.status_code == 201, restarted.text
    assert restarted.json()["molliePaymentId"] != orphan["id"]
    await choose_on_checkout(restarted.json()["checkoutUrl"], "paid")
    assert (await purchase_handle(connector, order_id).result()).status == "captured"

    payments = {
        payment["id"]: payment["status"]
        for payment in await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    }
    assert payments == {orphan["id"]: "open", restarted.json()["molliePaymentId"]: "paid"}
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert recorded["externalPaymentId"] == restarted.json()["molliePaymentId"]


async def test_a_refunded_purchase_answers_its_outcome_and_is_not_started_again(
    connector: Connector,
) -> None:
    """The checkout came late (an outage), the shopper paid after the order expired, Cleeng
    refused it and the money went back: the run failed, but after a payment existed."""
    seeded = await seed_order(connector.emulators.cleeng_url, price=20.00, currency="EUR")
    order_id = str(seeded["orderId"])
    await set_faults(connector.emulators.mollie_url, MOLLIE_DOWN)
    assert (await post_purchase(connector, seeded)).status_code == 202
    await clear_faults(connector)
    ready = await purchase_handle(connector, order_id).execute_update(
        InitialPurchaseWorkflow.checkout
    )
    assert ready.checkout_url is not None
    await advance_clock(connector.emulators.cleeng_url, 25 * 3600)
    await choose_on_checkout(ready.checkout_url, "paid")
    with pytest.raises(WorkflowFailureError):
        await purchase_handle(connector, order_id).result()
    run_id = await latest_run_id(connector, order_id)

    again = await post_purchase(connector, seeded)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "refunded_cleeng_refused"
    assert again.json()["molliePaymentId"] == ready.mollie_payment_id
    assert await latest_run_id(connector, order_id) == run_id
    [charge] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert [refund["amount"]["value"] for refund in charge["refunds"]] == ["20.00"]
    assert await cleeng_payments(connector.emulators.cleeng_url, order_id) == []


async def test_a_card_change_during_an_outage_answers_202_in_time(connector: Connector) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    customer_id = str(seeded["customerId"])
    await set_faults(connector.emulators.mollie_url, MOLLIE_DOWN)
    async with httpx.AsyncClient() as http:
        started = await http.post(
            f"{connector.api_url}/payment-details",
            json={"customerId": customer_id, "redirectUrl": THANKS, "method": "creditcard"},
            headers=frontend_headers(connector.settings, customer_id),
            timeout=CLIENT_TIMEOUT,
        )
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"/payment-details/{customer_id}"
    assert started.json()["status"] == "starting"


async def test_the_openapi_documents_the_202_of_both_checkout_routes(
    connector: Connector,
) -> None:
    async with httpx.AsyncClient() as http:
        spec = (await http.get(f"{connector.api_url}/openapi.json")).json()
    for path in ("/purchases", "/payment-details"):
        accepted = spec["paths"][path]["post"]["responses"]["202"]
        assert {"Location", "Retry-After"} <= set(accepted["headers"]), path
