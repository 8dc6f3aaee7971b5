"""Capture-only renewals charged by SEPA direct debit stay `pending` for days: the cycle waits
durably (time-skipping server) and records the outcome once Mollie settles it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from domain import search_attributes
from domain.billing import BillingCycleInput, BillingEvent, BillingView, billing_workflow_id
from domain.tokens import MollieToken
from settings import EMULATOR_MOLLIE_API_KEY, EMULATOR_PUBLISHER_TOKEN, Settings
from tests.conftest import Emulators, connector_settings
from worker import build_worker
from workflows.recurring_billing import RecurringBillingWorkflow


@dataclass(frozen=True)
class SepaSubscriber:
    subscription_id: str
    customer_id: str
    offer_id: str
    payment_details_id: str
    token: str
    due: datetime


async def sepa_subscriber(emulators: Emulators) -> SepaSubscriber:
    """A Cleeng subscription whose payment details hold a SEPA direct-debit Mollie mandate."""
    mollie = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}
    cleeng = {"X-Publisher-Token": EMULATOR_PUBLISHER_TOKEN}
    async with httpx.AsyncClient(timeout=10) as http:
        customer = (
            await http.post(
                f"{emulators.cleeng_url}/_emulator/customers",
                json={"email": f"sepa-{uuid.uuid4().hex[:10]}@example.com"},
            )
        ).json()
        mollie_customer = (
            await http.post(f"{emulators.mollie_url}/v2/customers", json={}, headers=mollie)
        ).json()
        mandate = (
            await http.post(
                f"{emulators.mollie_url}/v2/customers/{mollie_customer['id']}/mandates",
                json={
                    "method": "directdebit",
                    "consumerName": "S. Epa",
                    "consumerAccount": "NL55INGB0000000000",
                },
                headers=mollie,
            )
        ).json()
        token = MollieToken(customer_id=mollie_customer["id"], mandate_id=mandate["id"]).encode()
        details = (
            await http.post(
                f"{emulators.cleeng_url}/3.1/payment_details",
                json={"customerId": customer["id"], "token": token, "paymentMethodId": 555000001},
                headers=cleeng,
            )
        ).json()["data"]
        subscription = (
            await http.post(
                f"{emulators.cleeng_url}/_emulator/subscriptions",
                json={
                    "customerId": customer["id"],
                    "offerId": "S000000001_NL",
                    "paymentDetailsId": details["id"],
                },
            )
        ).json()
    return SepaSubscriber(
        subscription_id=str(subscription["subscriptionId"]),
        customer_id=str(customer["id"]),
        offer_id="S000000001_NL",
        payment_details_id=str(details["id"]),
        token=token,
        due=datetime.fromtimestamp(subscription["dateTo"], tz=UTC),
    )


async def start_capture_only(
    env: WorkflowEnvironment, settings: Settings, sub: SepaSubscriber, *, compact: bool
) -> WorkflowHandle[Any, BillingView]:
    due = iso_utc(sub.due)
    return await env.client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=sub.subscription_id, expiration_date=due, compact_history=compact
        ),
        id=billing_workflow_id(sub.subscription_id, due),
        task_queue=settings.temporal_task_queue,
        start_signal="event",
        start_signal_args=[
            BillingEvent(
                kind="capture",
                attempt_date=due,
                customer_id=sub.customer_id,
                offer_id=sub.offer_id,
                payment_details_id=sub.payment_details_id,
                token=sub.token,
                currency="EUR",
                country="NL",
            )
        ],
    )


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
    sub = await sepa_subscriber(emulators)
    async with build_worker(env.client, settings) as worker, worker:
        handle = await start_capture_only(env, settings, sub, compact=compact)
        await env.sleep(timedelta(days=2))
        charging = await handle.query(RecurringBillingWorkflow.view)
        assert charging.status == "charging"
        assert charging.mollie_payment_id is not None
        # While it waits, an operator finds the cycle by the payment's id.
        described = await handle.describe()
        assert (
            described.typed_search_attributes.get(search_attributes.MOLLIE_PAYMENT_ID)
            == charging.mollie_payment_id
        )
        assert await recorded(emulators, sub.subscription_id) == []

        await force_outcome(emulators, charging.mollie_payment_id, outcome)
        await env.sleep(timedelta(hours=2))
        settled = await handle.query(RecurringBillingWorkflow.view)

    assert settled.status == cycle_status
    [payment] = await recorded(emulators, sub.subscription_id)
    assert payment["status"] == cleeng_status
    assert payment["externalPaymentId"] == charging.mollie_payment_id
