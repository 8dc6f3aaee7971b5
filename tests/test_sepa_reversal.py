"""A SEPA Direct Debit can still fail after Mollie reported it `paid` (the bank reverses it
within days); Mollie reports that as a chargeback, and the connector records it as one: the
renewal's Cleeng payment is `refunded` with type chargeback, and nothing else changes.

A whole connector on emulators of its own (the test moves the Mollie clock through the debit's
settlement and the reversal), so Mollie's webhooks reach the shim as they would in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from domain.billing import BillingCycleInput, billing_workflow_id
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.ledgers import mollie_customer_payments, renewal_records
from tests.support.mandates import MOLLIE_HEADERS, mandate_subscriber
from tests.support.shop import advance_clock
from workflows.recurring_billing import RecurringBillingWorkflow

pytestmark = pytest.mark.asyncio

SETTLEMENT_DAYS = 3  # the Mollie emulator's default `pending_settle_seconds`


@pytest.fixture
async def own_connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    async with connector_on_own_emulators(temporal_env) as connector:
        yield connector


async def test_a_direct_debit_reversed_after_it_was_paid_is_recorded_as_a_chargeback(
    own_connector: Connector,
) -> None:
    connector = own_connector
    emulators = connector.emulators
    sub = await mandate_subscriber(emulators, "directdebit")
    async with httpx.AsyncClient() as http:
        scheduled = await http.post(
            f"{emulators.mollie_url}/_emulator/customers/{sub.mollie_customer_id}/next-outcomes",
            json={"outcomes": [{"status": "paid", "reversal": {"reason": "MD06", "afterDays": 2}}]},
        )
    assert scheduled.status_code == 200, scheduled.text
    due = iso_utc(sub.due)
    cycle = await connector.client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(subscription_id=sub.subscription_id, expiration_date=due),
        id=billing_workflow_id(sub.subscription_id, due),
        task_queue=connector.settings.temporal_task_queue,
        start_signal="event",
        start_signal_args=[sub.event("capture", due)],
    )
    async with asyncio.timeout(30):
        while not await renewal_records(emulators, sub.subscription_id):
            await asyncio.sleep(0.1)
    [pending] = await renewal_records(emulators, sub.subscription_id)
    assert pending["status"] == "authorized"

    # The bank settles the debit; Mollie's webhook tells the cycle, which records the capture.
    await advance_clock(emulators.mollie_url, SETTLEMENT_DAYS * 24 * 3600)
    async with asyncio.timeout(30):
        assert (await cycle.result()).status == "captured"
    [debit] = await mollie_customer_payments(emulators, sub.mollie_customer_id)
    assert debit["status"] == "paid"

    # Two days later the bank takes it back: a chargeback, reported through the webhook.
    await advance_clock(emulators.mollie_url, 2 * 24 * 3600 + 60)
    async with asyncio.timeout(30):
        while True:
            [record] = await renewal_records(emulators, sub.subscription_id)
            if record["status"] == "refunded":
                break
            await asyncio.sleep(0.2)
    assert record["id"] == pending["id"]
    assert record["refundType"] == "chargeback"
    assert record["refundedAmount"] == float(debit["amount"]["value"])
    # No money of the connector's own moved: no refund at Mollie.
    async with httpx.AsyncClient() as http:
        refunds = (
            await http.get(
                f"{emulators.mollie_url}/v2/payments/{debit['id']}/refunds",
                headers=MOLLIE_HEADERS,
            )
        ).json()
    assert refunds["count"] == 0
