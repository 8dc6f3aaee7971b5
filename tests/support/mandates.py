"""Cleeng subscribers whose payment details hold a Mollie mandate (SEPA Direct Debit and PayPal
made over the mandates API, as Mollie lets a merchant; a card from a paid `first` payment), and
billing cycles started for them by hand, for tests that run on the time-skipping server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from domain.billing import BillingCycleInput, BillingEvent, BillingView, billing_workflow_id
from domain.tokens import MollieToken
from settings import EMULATOR_MOLLIE_API_KEY, EMULATOR_PUBLISHER_TOKEN, Settings
from tests.conftest import Emulators
from workflows.recurring_billing import RecurringBillingWorkflow

MOLLIE_HEADERS = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}
CLEENG_HEADERS = {"X-Publisher-Token": EMULATOR_PUBLISHER_TOKEN}
OFFER_ID = "S000000001_NL"

# What Mollie's create-mandate takes for each method it lets a merchant create directly.
_MANDATE_BODIES: dict[str, dict[str, str]] = {
    "directdebit": {
        "method": "directdebit",
        "consumerName": "S. Epa",
        "consumerAccount": "NL55INGB0000000000",
    },
    "paypal": {"method": "paypal", "consumerName": "P. Al", "consumerEmail": "pal@example.com"},
}


@dataclass(frozen=True)
class MandateSubscriber:
    subscription_id: str
    customer_id: str
    offer_id: str
    payment_details_id: str
    token: str
    due: datetime
    mollie_customer_id: str
    mandate_id: str

    def event(self, kind: str, attempt_date: str) -> BillingEvent:
        return BillingEvent(
            kind=kind,
            attempt_date=attempt_date,
            customer_id=self.customer_id,
            offer_id=self.offer_id,
            payment_details_id=self.payment_details_id,
            token=self.token,
            currency="EUR",
            country="NL",
        )


async def mandate_subscriber(
    emulators: Emulators, method: str = "directdebit"
) -> MandateSubscriber:
    """A Cleeng subscription whose payment details hold a Mollie mandate of `method`."""
    async with httpx.AsyncClient(timeout=10) as http:
        customer = (
            await http.post(
                f"{emulators.cleeng_url}/_emulator/customers",
                json={"email": f"{method}-{uuid.uuid4().hex[:10]}@example.com"},
            )
        ).json()
        mollie_customer = (
            await http.post(f"{emulators.mollie_url}/v2/customers", json={}, headers=MOLLIE_HEADERS)
        ).json()
        if method == "creditcard":
            mandate_id = await _card_mandate(http, emulators, mollie_customer["id"])
        else:
            mandate_id = (
                await http.post(
                    f"{emulators.mollie_url}/v2/customers/{mollie_customer['id']}/mandates",
                    json=_MANDATE_BODIES[method],
                    headers=MOLLIE_HEADERS,
                )
            ).json()["id"]
        token = MollieToken(customer_id=mollie_customer["id"], mandate_id=mandate_id).encode()
        details = (
            await http.post(
                f"{emulators.cleeng_url}/3.1/payment_details",
                json={"customerId": customer["id"], "token": token, "paymentMethodId": 555000001},
                headers=CLEENG_HEADERS,
            )
        ).json()["data"]
        subscription = (
            await http.post(
                f"{emulators.cleeng_url}/_emulator/subscriptions",
                json={
                    "customerId": customer["id"],
                    "offerId": OFFER_ID,
                    "paymentDetailsId": details["id"],
                },
            )
        ).json()
    return MandateSubscriber(
        subscription_id=str(subscription["subscriptionId"]),
        customer_id=str(customer["id"]),
        offer_id=OFFER_ID,
        payment_details_id=str(details["id"]),
        token=token,
        due=datetime.fromtimestamp(subscription["dateTo"], tz=UTC),
        mollie_customer_id=str(mollie_customer["id"]),
        mandate_id=str(mandate_id),
    )


async def _card_mandate(http: httpx.AsyncClient, emulators: Emulators, customer_id: str) -> str:
    """A card mandate comes only from a paid `first` payment: make one and pay it."""
    first = (
        await http.post(
            f"{emulators.mollie_url}/v2/payments",
            json={
                "amount": {"currency": "EUR", "value": "0.00"},
                "description": "Card for renewals",
                "redirectUrl": "https://shop.example/thanks",
                "sequenceType": "first",
                "customerId": customer_id,
                "method": "creditcard",
            },
            headers=MOLLIE_HEADERS,
        )
    ).json()
    paid = await http.post(
        f"{emulators.mollie_url}/_emulator/payments/{first['id']}/status", json={"status": "paid"}
    )
    paid.raise_for_status()
    payment = (
        await http.get(f"{emulators.mollie_url}/v2/payments/{first['id']}", headers=MOLLIE_HEADERS)
    ).json()
    mandate_id: str = payment["mandateId"]
    return mandate_id


async def start_cycle(
    env: WorkflowEnvironment,
    settings: Settings,
    sub: MandateSubscriber,
    kind: str,
    *,
    compact: bool,
    attempt_date: str | None = None,
) -> WorkflowHandle[Any, BillingView]:
    """Start the subscriber's billing cycle with one dunning webhook of `kind`."""
    due = iso_utc(sub.due)
    return await env.client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=sub.subscription_id, expiration_date=due, compact_history=compact
        ),
        id=billing_workflow_id(sub.subscription_id, due),
        task_queue=settings.temporal_task_queue,
        start_signal="event",
        start_signal_args=[sub.event(kind, attempt_date or due)],
    )
