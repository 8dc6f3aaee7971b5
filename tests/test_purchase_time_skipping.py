"""The purchase's long waits on the time-skipping server: the default polling schedule (1, 5,
15, 60 minutes, then hourly), with which a payment that ends hours later is still recorded
though every webhook is lost; and the setup's default bound, after which an outage ends the
purchase as CheckoutUnavailable."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.purchase import (
    CHECKOUT_UNAVAILABLE,
    DEFAULT_SETUP_SECONDS,
    PurchaseInput,
    purchase_workflow_id,
)
from tests.conftest import Emulators, connector_settings
from tests.support.shop import cleeng_payments, mollie_payments_for_order, seed_order, set_faults
from worker import build_worker
from workflows.initial_purchase import InitialPurchaseWorkflow

pytestmark = pytest.mark.asyncio


async def test_payment_settled_hours_later_without_webhooks_is_found_by_polling(
    time_skipping_env: WorkflowEnvironment, emulators: Emulators
) -> None:
    env = time_skipping_env
    # Webhooks go to a closed port: every one of them is lost.
    settings = connector_settings(
        emulators, "unused:0", "http://127.0.0.1:9", f"ts-{uuid.uuid4().hex[:8]}"
    )
    seeded = await seed_order(emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    async with build_worker(env.client, settings) as worker, worker:
        handle = await env.client.start_workflow(
            InitialPurchaseWorkflow.run,
            PurchaseInput(order_id=order_id, redirect_url="https://shop.example/thanks"),
            id=purchase_workflow_id(order_id),
            task_queue=settings.temporal_task_queue,
        )
        view = await handle.execute_update(InitialPurchaseWorkflow.checkout)
        assert view.mollie_payment_id is not None
        # Three hours of (skipped) time pass with the shopper still on the checkout page.
        await env.sleep(3 * 3600)
        assert (await handle.query(InitialPurchaseWorkflow.view)).status == "awaiting_payment"
        async with httpx.AsyncClient() as http:
            forced = await http.post(
                f"{emulators.mollie_url}/_emulator/payments/{view.mollie_payment_id}/status",
                json={"status": "paid"},
            )
            forced.raise_for_status()
        final = await handle.result()

    assert final.status == "captured"
    [recorded] = await cleeng_payments(emulators.cleeng_url, order_id)
    assert recorded["externalPaymentId"] == view.mollie_payment_id


async def test_an_outage_longer_than_the_setup_bound_fails_the_purchase_as_unavailable(
    time_skipping_env: WorkflowEnvironment, emulators: Emulators, clean_faults: None
) -> None:
    env = time_skipping_env
    settings = connector_settings(
        emulators, "unused:0", "http://127.0.0.1:9", f"ts-{uuid.uuid4().hex[:8]}"
    )
    seeded = await seed_order(emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    await set_faults(emulators.mollie_url, {"errorRate": 1.0})
    async with build_worker(env.client, settings) as worker, worker:
        handle = await env.client.start_workflow(
            InitialPurchaseWorkflow.run,
            PurchaseInput(order_id=order_id, redirect_url="https://shop.example/thanks"),
            id=purchase_workflow_id(order_id),
            task_queue=settings.temporal_task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        history = await handle.fetch_history()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == CHECKOUT_UNAVAILABLE
    # Given up at the bound, in the workflow's (skipped) time: Temporal stops retrying when
    # the next attempt (at most 30 s away) would start after it.
    setup_time = (
        history.events[-1].event_time.ToDatetime() - history.events[0].event_time.ToDatetime()
    )
    bound = timedelta(seconds=DEFAULT_SETUP_SECONDS)
    assert bound - timedelta(minutes=1) < setup_time <= bound
    assert await mollie_payments_for_order(emulators.mollie_url, order_id) == []
