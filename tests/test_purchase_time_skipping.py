"""The default polling schedule (1, 5, 15, 60 minutes, then hourly) on the time-skipping server:
with every webhook lost, a payment that ends hours later is still recorded."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.purchase import PurchaseInput, purchase_workflow_id
from tests.conftest import Emulators, connector_settings
from tests.support.shop import cleeng_payments, seed_order
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
