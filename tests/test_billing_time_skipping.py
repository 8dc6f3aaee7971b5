"""Capture-only renewals charged by SEPA direct debit stay `pending` for days: the cycle waits
durably (time-skipping server) and records the outcome once Mollie settles it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes
from domain.billing import BillingView
from settings import Settings
from tests.conftest import Emulators, connector_settings
from tests.support.mandates import MandateSubscriber, mandate_subscriber, start_cycle
from worker import build_worker
from workflows.recurring_billing import RecurringBillingWorkflow


async def start_capture_only(
    env: WorkflowEnvironment, settings: Settings, sub: MandateSubscriber, *, compact: bool
) -> WorkflowHandle[Any, BillingView]:
    return await start_cycle(env, settings, sub, "capture", compact=compact)


async def force_outcome(emulators: Emulators, payment_id: str, outcome: dict[str, str]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{emulators.mollie_url}/_emulator/payments/{payment_id}/status", json=outcome
        )
        response.raise_for_status()


async def recorded(emulators: Emulators, subscription_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{emulators.cleeng_url}/_emulator/payments",
            params={"subscriptionId": subscription_id},
        )
    return [p for p in response.json()["items"] if p["paymentOperation"] == "recurring-payment"]


# Both ways a cycle runs its steps: as activity tasks (cycles started before compact histories)
# and as local activities.
@pytest.mark.parametrize("compact", [False, True], ids=["activity-tasks", "local-activities"])
@pytest.mark.parametrize(
    ("outcome", "cycle_status", "cleeng_status"),
    [
        ({"status": "paid"}, "captured", "captured"),
        ({"status": "failed", "failureReason": "insufficient_funds"}, "open", "rejected"),
    ],
)
async def test_pending_direct_debit_is_awaited_for_days(
    time_skipping_env: WorkflowEnvironment,
    emulators: Emulators,
    outcome: dict[str, str],
    cycle_status: str,
    cleeng_status: str,
    compact: bool,
) -> None:
    # Mollie's webhooks go nowhere: only the polling fallback can notice the settlement.
    env = time_skipping_env
    settings = connector_settings(
        emulators, "unused:0", "http://127.0.0.1:9", f"sepa-{uuid.uuid4().hex[:8]}"
    )
    sub = await mandate_subscriber(emulators, "directdebit")
    async with build_worker(env.client, settings) as worker, worker:
        handle = await start_capture_only(env, settings, sub, compact=compact)
        await env.sleep(timedelta(days=2))
        charging = await handle.query(RecurringBillingWorkflow.view)
        assert charging.status == "settling"
        assert charging.mollie_payment_id is not None
        # While it waits, an operator finds the cycle by the payment's id.
        described = await handle.describe()
        assert (
            described.typed_search_attributes.get(search_attributes.MOLLIE_PAYMENT_ID)
            == charging.mollie_payment_id
        )
        # Cleeng has the debit already, `authorized`: its order would expire after 24 hours
        # with nothing recorded, long before the bank settles.
        [pending] = await recorded(emulators, sub.subscription_id)
        assert pending["status"] == "authorized"
        assert pending["externalPaymentId"] == charging.mollie_payment_id

        await force_outcome(emulators, charging.mollie_payment_id, outcome)
        await env.sleep(timedelta(hours=2))
        settled = await handle.query(RecurringBillingWorkflow.view)

    assert settled.status == cycle_status
    # The same Cleeng payment, updated when Mollie settled: no second record.
    [payment] = await recorded(emulators, sub.subscription_id)
    assert payment["id"] == pending["id"]
    assert payment["status"] == cleeng_status
    assert payment["externalPaymentId"] == charging.mollie_payment_id
