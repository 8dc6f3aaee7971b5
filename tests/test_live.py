"""Opt-in checks against the real services: Cleeng's sandbox and Mollie's test mode.

They run only when credentials are in the environment (`pytest -m live`), and are skipped,
with the reason printed, otherwise:

    CLEENG_PUBLISHER_TOKEN   publisher token of a Cleeng sandbox account
    CLEENG_BASE_URL          https://api.sandbox.cleeng.com/3.1 (the default here)
    CLEENG_PAYMENT_METHOD_ID the paymentMethodId configured for Mollie in that account
    CLEENG_LIVE_CUSTOMER_ID  a sandbox customer id
    CLEENG_LIVE_OFFER_ID     a sandbox subscription offer, e.g. S123456789_NL
    MOLLIE_API_KEY           a Mollie test_ key

What they prove is what the emulators cannot: that the requests the connector builds are the
ones the real services accept (types, required fields, paths), for the initial purchase's
calls. They create one order, one rejected payment record on it, one Mollie customer and one
open Mollie payment, which they cancel.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from clients import cleeng_contract as contract
from clients.cleeng import CleengClient, payment_details_fields
from clients.mollie import MollieGateway, money_to_mollie
from domain.money import Money
from domain.tokens import no_mandate_token

REQUIRED = (
    "CLEENG_PUBLISHER_TOKEN",
    "CLEENG_PAYMENT_METHOD_ID",
    "CLEENG_LIVE_CUSTOMER_ID",
    "CLEENG_LIVE_OFFER_ID",
    "MOLLIE_API_KEY",
)
MISSING = [name for name in REQUIRED if not os.environ.get(name)]

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        bool(MISSING), reason=f"live credentials not set: {', '.join(MISSING) or '-'}"
    ),
]


@pytest.fixture
async def cleeng() -> AsyncIterator[CleengClient]:
    client = CleengClient(
        os.environ.get("CLEENG_BASE_URL", "https://api.sandbox.cleeng.com/3.1"),
        os.environ["CLEENG_PUBLISHER_TOKEN"],
    )
    yield client
    await client.aclose()


@pytest.fixture
def mollie() -> MollieGateway:
    return MollieGateway(
        os.environ.get("MOLLIE_BASE_URL", "https://api.mollie.com"), os.environ["MOLLIE_API_KEY"]
    )


async def test_live_cleeng_order_and_payment_record_are_accepted(cleeng: CleengClient) -> None:
    """create-an-order, get-an-order and create-a-payment with the types the client sends."""
    method_id = os.environ["CLEENG_PAYMENT_METHOD_ID"]
    customer_id = os.environ["CLEENG_LIVE_CUSTOMER_ID"]
    subscriptions = await cleeng.webhook_subscriptions()
    assert isinstance(subscriptions, dict)
    order = await cleeng.create_renewal_order(
        customer_id=customer_id,
        offer_id=os.environ["CLEENG_LIVE_OFFER_ID"],
        subscription_id=os.environ.get("CLEENG_LIVE_SUBSCRIPTION_ID", "1"),
        currency=os.environ.get("CLEENG_LIVE_CURRENCY", "EUR"),
        country=os.environ.get("CLEENG_LIVE_COUNTRY", "NL"),
        payment_method_id=method_id,
    )
    again = await cleeng.get_order(order.id)
    assert again.amount() == order.amount()
    assert not await cleeng.order_expired(order.id)
    payment = await cleeng.create_payment(
        order_id=order.id,
        status=contract.PAYMENT_STATUS_REJECTED,
        payment_operation=contract.PAYMENT_OPERATION_RECURRING,
        external_payment_id=f"tr_live{uuid.uuid4().hex[:10]}",
        inline_details=payment_details_fields(
            customer_id=customer_id,
            token=no_mandate_token("tr_live"),
            payment_method_id=method_id,
            card_params={},
            active=False,
        ),
        rejected_reason="connector live check",
        subscription_id=os.environ.get("CLEENG_LIVE_SUBSCRIPTION_ID", "1"),
    )
    assert payment.status == contract.PAYMENT_STATUS_REJECTED


async def test_live_mollie_first_payment_has_a_checkout(mollie: MollieGateway) -> None:
    marker = f"live-{uuid.uuid4().hex[:8]}"
    customer_id = await mollie.create_customer(
        cleeng_customer_id=marker, email=None, idempotency_key=f"{marker}:customer"
    )
    payment = await mollie.create_payment(
        {
            "amount": money_to_mollie(Money(minor=0, currency="EUR")),
            "description": "Connector live check",
            "redirectUrl": "https://example.org/thanks",
            "sequenceType": "first",
            "method": "creditcard",
            "customerId": customer_id,
            "metadata": {"operation": marker},
        },
        f"{marker}:payment",
    )
    assert payment.status == "open"
    assert payment.checkout_url
    assert await mollie.find_customer(marker) == customer_id
