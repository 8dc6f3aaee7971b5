"""The Cleeng client and the Mollie gateway against the emulators: parsing, and the failure
classification that decides every retry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clients.cleeng import CleengClient
from clients.errors import FailureKind, ServiceError
from clients.mollie import MollieGateway
from domain.money import Money
from settings import EMULATOR_MOLLIE_API_KEY, EMULATOR_PUBLISHER_TOKEN
from tests.conftest import Emulators
from tests.support.servers import free_port
from tests.support.shop import seed_order, set_faults

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def cleeng(emulators: Emulators) -> AsyncIterator[CleengClient]:
    client = CleengClient(
        f"{emulators.cleeng_url}/3.1", EMULATOR_PUBLISHER_TOKEN, timeout_seconds=2
    )
    yield client
    await client.aclose()


@pytest.fixture
def mollie(emulators: Emulators) -> MollieGateway:
    return MollieGateway(emulators.mollie_url, EMULATOR_MOLLIE_API_KEY, timeout_seconds=2)


async def test_cleeng_order_is_read_as_exact_money(
    cleeng: CleengClient, emulators: Emulators
) -> None:
    seeded = await seed_order(emulators.cleeng_url, price=19.99, currency="EUR")
    order = await cleeng.get_order(str(seeded["orderId"]))
    assert order.id == str(seeded["orderId"])
    assert order.amount() == Money(minor=1999, currency="EUR")
    assert order.customer_id == str(seeded["customerId"])


async def test_cleeng_failures_are_classified(
    cleeng: CleengClient, emulators: Emulators, clean_faults: None
) -> None:
    with pytest.raises(ServiceError) as missing:
        await cleeng.get_order("111111111")
    assert (missing.value.kind, missing.value.status) == (FailureKind.PERMANENT, 404)

    await set_faults(
        emulators.cleeng_url,
        {"failNext": [{"method": "GET", "pathPrefix": "/3.1/orders", "status": 429, "count": 1}]},
    )
    with pytest.raises(ServiceError) as throttled:
        await cleeng.get_order("111111111")
    assert throttled.value.kind is FailureKind.RETRYABLE
    assert throttled.value.retry_after_seconds == 1

    wrong_token = CleengClient(f"{emulators.cleeng_url}/3.1", "not-the-token")
    with pytest.raises(ServiceError) as refused:
        await wrong_token.get_order("111111111")
    await wrong_token.aclose()
    assert refused.value.kind is FailureKind.PERMANENT
    assert "not-the-token" not in str(refused.value)


async def test_lost_cleeng_write_is_an_unknown_outcome() -> None:
    nowhere = CleengClient(f"http://127.0.0.1:{free_port()}/3.1", "token", timeout_seconds=1)
    with pytest.raises(ServiceError) as write:
        await nowhere.create_payment({"orderId": "1"})
    with pytest.raises(ServiceError) as read:
        await nowhere.get_order("1")
    await nowhere.aclose()
    assert write.value.kind is FailureKind.UNKNOWN_OUTCOME
    assert read.value.kind is FailureKind.RETRYABLE


async def test_mollie_payment_round_trip_and_lookup_by_operation(mollie: MollieGateway) -> None:
    customer_id = await mollie.create_customer(
        cleeng_customer_id="700000001", email=None, idempotency_key="test:customer:700000001"
    )
    assert await mollie.find_customer("700000001") == customer_id
    body = {
        "amount": {"currency": "EUR", "value": "5.00"},
        "description": "Order 1",
        "redirectUrl": "https://shop.example/thanks",
        "sequenceType": "first",
        "customerId": customer_id,
        "metadata": {"operation": "purchase:1:payment"},
    }
    created = await mollie.create_payment(body, "purchase:1:payment")
    replayed = await mollie.create_payment(body, "purchase:1:payment")
    assert replayed.id == created.id
    assert created.amount == Money(minor=500, currency="EUR")
    assert created.checkout_url is not None
    found = await mollie.find_customer_payment(customer_id, "purchase:1:payment")
    assert found is not None
    assert found.id == created.id
    assert await mollie.find_customer_payment(customer_id, "purchase:2:payment") is None


async def test_mollie_failures_are_classified(
    mollie: MollieGateway, emulators: Emulators, clean_faults: None
) -> None:
    with pytest.raises(ServiceError) as missing:
        await mollie.get_payment("tr_doesnotexist")
    assert (missing.value.kind, missing.value.status) == (FailureKind.PERMANENT, 404)

    with pytest.raises(ServiceError) as invalid:
        await mollie.create_payment(
            {"amount": {"currency": "EUR", "value": "5"}, "description": "x"}, "bad-amount"
        )
    assert invalid.value.kind is FailureKind.PERMANENT
    assert invalid.value.field == "amount"

    await set_faults(
        emulators.mollie_url,
        {"failNext": [{"method": "GET", "pathPrefix": "/v2/payments", "status": 503, "count": 1}]},
    )
    with pytest.raises(ServiceError) as outage:
        await mollie.get_payment("tr_doesnotexist")
    assert outage.value.kind is FailureKind.RETRYABLE

    unreachable = MollieGateway(f"http://127.0.0.1:{free_port()}", EMULATOR_MOLLIE_API_KEY)
    with pytest.raises(ServiceError) as lost:
        await unreachable.create_customer(cleeng_customer_id="1", email=None, idempotency_key="k")
    assert lost.value.kind is FailureKind.UNKNOWN_OUTCOME
    assert EMULATOR_MOLLIE_API_KEY not in str(lost.value)
