"""Helpers for renewal tests: a customer with a live subscription, and Cleeng's webhooks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.cleeng_payloads import iso_utc
from api.cleeng_signature import sign_hex
from clients import cleeng_contract as contract
from domain.billing import BillingEvent, BillingView, billing_workflow_id
from domain.payment_details import NewDetailsView
from domain.purchase import purchase_workflow_id
from domain.tokens import MollieToken
from tests.conftest import Connector
from tests.support.shop import choose_on_checkout, frontend_headers, seed_order
from workflows.recurring_billing import RecurringBillingWorkflow


@dataclass(frozen=True)
class Subscriber:
    subscription_id: str
    customer_id: str
    offer_id: str
    payment_details_id: str
    token: str
    expiration_date: datetime
    currency: str
    payment_method_id: str

    @property
    def mollie_customer_id(self) -> str:
        parsed = MollieToken.parse(self.token)
        assert parsed is not None
        return parsed.customer_id

    def billing_event(self, kind: str, attempt_date: str) -> BillingEvent:
        """The signal the shim makes of this subscriber's dunning webhook, for tests that
        start a cycle directly."""
        return BillingEvent(
            kind=kind,
            attempt_date=attempt_date,
            customer_id=self.customer_id,
            offer_id=self.offer_id,
            payment_details_id=self.payment_details_id,
            token=self.token,
            currency=self.currency,
            country="NL",
        )

    def dunning_data(
        self, status: str, hours_before_due: int = 0, **overrides: Any
    ) -> dict[str, Any]:
        """`data` of a dunning webhook, shaped like Cleeng's example (mixed id types)."""
        attempt = self.expiration_date - timedelta(hours=hours_before_due)
        data: dict[str, Any] = {
            "subscriptionId": self.subscription_id,
            "offerId": self.offer_id,
            "customerId": int(self.customer_id),
            "customerEmail": "subscriber@example.com",
            "paymentDetailsId": int(self.payment_details_id),
            "active": True,
            "dunningAttemptDate": attempt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dunningStatus": status,
            "expirationDate": self.expiration_date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "currency": self.currency,
            "paymentCountry": "NL",
            "paymentMethodId": int(self.payment_method_id),
            "token": self.token,
            "paymentGateway": "mollie",
        }
        data.update(overrides)
        return data


async def subscribed_customer(
    connector: Connector, *, method: str | None = None, price: float = 9.99
) -> Subscriber:
    """Buy a monthly subscription through the connector, as a shopper would."""
    cleeng = connector.emulators.cleeng_url
    seeded = await seed_order(cleeng, price=price, currency="EUR")
    order_id = str(seeded["orderId"])
    body: dict[str, Any] = {"orderId": order_id, "redirectUrl": "https://shop.example/thanks"}
    if method:
        body["method"] = method
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{connector.api_url}/purchases",
            json=body,
            headers=frontend_headers(connector.settings, seeded["customerId"]),
        )
        assert started.status_code == 201, started.text
        await choose_on_checkout(started.json()["checkoutUrl"], "paid")
        handle = connector.client.get_workflow_handle(purchase_workflow_id(order_id))
        await handle.result()
        subscriptions = (await http.get(f"{cleeng}/_emulator/subscriptions")).json()["items"]
        [subscription] = [
            s for s in subscriptions if str(s["customerId"]) == str(seeded["customerId"])
        ]
        details = await http.get(
            f"{cleeng}/_emulator/payment-details/{subscription['paymentDetailsId']}"
        )
    return Subscriber(
        subscription_id=str(subscription["subscriptionId"]),
        customer_id=str(subscription["customerId"]),
        offer_id=str(subscription["offerId"]),
        payment_details_id=str(subscription["paymentDetailsId"]),
        token=details.json()["token"],
        expiration_date=datetime.fromtimestamp(subscription["dateTo"], tz=UTC),
        currency=str(subscription["currency"]),
        payment_method_id=str(subscription["paymentMethodId"]),
    )


TOPIC_FOR_STATUS = {
    "authorize": contract.TOPIC_AUTHORISATION,
    "capture": contract.TOPIC_CAPTURE,
    "terminate": contract.TOPIC_TERMINATION,
}


async def send_cleeng_webhook(
    connector: Connector,
    data: dict[str, Any],
    *,
    topic: str | None = None,
    secret: str | None = None,
    http: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST a signed webhook to the shim exactly as Cleeng would."""
    envelope = {
        "broadcasterId": 100000001,
        "topic": topic or TOPIC_FOR_STATUS[data["dunningStatus"]],
        "data": data,
    }
    body = json.dumps(envelope).encode()
    signature = sign_hex(secret or connector.settings.effective_webhook_secret, body)
    headers = {
        "content-type": "application/json",
        connector.settings.cleeng_signature_header: signature,
    }
    if http is not None:
        return await http.post(
            f"{connector.api_url}/webhooks/cleeng", content=body, headers=headers
        )
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            f"{connector.api_url}/webhooks/cleeng", content=body, headers=headers
        )


async def cleeng_subscription(connector: Connector, subscription_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{connector.emulators.cleeng_url}/3.1/subscriptions/{subscription_id}",
            headers={"X-Publisher-Token": connector.settings.effective_publisher_token},
        )
    subscription: dict[str, Any] = response.json()["subscription"]
    return subscription


async def cleeng_subscription_payments(
    connector: Connector, subscription_id: str
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{connector.emulators.cleeng_url}/_emulator/payments",
            params={"subscriptionId": subscription_id},
        )
    items: list[dict[str, Any]] = response.json()["items"]
    return [p for p in items if p["paymentOperation"] == contract.PAYMENT_OPERATION_RECURRING]


async def mollie_customer_payments(connector: Connector, customer_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{connector.emulators.mollie_url}/_emulator/ledger")
    body = response.json()
    payments = body["payments"] if isinstance(body, dict) else body
    return [
        p
        for p in payments
        if p.get("customerId") == customer_id and p.get("sequenceType") == "recurring"
    ]


async def result_when_started(handle: WorkflowHandle[Any, Any], timeout: float = 30) -> Any:
    """The result of a workflow someone else starts (here: Cleeng's webhook)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await handle.result()
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)


async def authorised_renewal(connector: Connector) -> tuple[Subscriber, str]:
    sub = await subscribed_customer(connector)
    response = await send_cleeng_webhook(connector, sub.dunning_data("authorize", 24))
    assert response.status_code == 200
    handle = connector.client.get_workflow_handle(
        billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date)),
        result_type=BillingView,
    )
    async with asyncio.timeout(30):
        while (view := await handle.query(RecurringBillingWorkflow.view)).status != "authorised":
            await asyncio.sleep(0.05)
    assert view.mollie_payment_id is not None
    return sub, view.mollie_payment_id


async def change_card(connector: Connector, sub: Subscriber) -> Any:
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{connector.api_url}/payment-details",
            json={"customerId": sub.customer_id, "redirectUrl": "https://shop.example/account"},
            headers=frontend_headers(connector.settings, sub.customer_id),
        )
        assert started.status_code == 201, started.text
        await choose_on_checkout(started.json()["checkoutUrl"], "paid")
    handle = connector.client.get_workflow_handle(
        f"payment-details:{sub.customer_id}", result_type=NewDetailsView
    )
    return await handle.result()
