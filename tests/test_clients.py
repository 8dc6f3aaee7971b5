"""The Cleeng client and the Mollie gateway against the emulators: parsing, and the failure
classification that decides every retry."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clients.cleeng import CleengClient
from clients.errors import FailureKind, ServiceError
from clients.mollie import MollieGateway
from domain.money import Money
from settings import EMULATOR_MOLLIE_API_KEY, EMULATOR_PAYMENT_METHOD_ID, EMULATOR_PUBLISHER_TOKEN
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
        await nowhere.create_payment(
            order_id="1",
            status="captured",
            payment_operation="initial-payment",
            external_payment_id="tr_1",
            payment_details_id="2",
        )
    with pytest.raises(ServiceError) as read:
        await nowhere.get_order("1")
    await nowhere.aclose()
    assert write.value.kind is FailureKind.UNKNOWN_OUTCOME
    assert read.value.kind is FailureKind.RETRYABLE


async def test_a_list_answer_cleeng_did_not_shape_as_a_list_is_an_error_naming_the_call(
    cleeng: CleengClient, emulators: Emulators, clean_faults: None
) -> None:
    """A 2xx answer that is no list must never read as "no authorised payments": the
    deactivation saga would release nothing. The emulator answers the injected fault with its
    own HTTP 200 and an error-shaped body ({"message": ...}); the first read fails naming the
    call and is retryable (no refusal by Cleeng), the next one reads the real list."""
    seeded = await seed_order(emulators.cleeng_url)
    stored = await cleeng.create_payment_details(
        customer_id=str(seeded["customerId"]),
        token="mollie:cst_list:mdt_list",
        payment_method_id=EMULATOR_PAYMENT_METHOD_ID,
        card_params={},
    )
    details = stored.id
    path = f"/3.1/payment_details/{details}/authorised_payments"
    await set_faults(
        emulators.cleeng_url,
        {"failNext": [{"method": "GET", "pathPrefix": path, "status": 200, "count": 1}]},
    )
    with pytest.raises(ServiceError) as unreadable:
        await cleeng.authorised_payments(details)
    assert unreadable.value.kind is FailureKind.RETRYABLE
    assert f"GET /payment_details/{details}/authorised_payments" in unreadable.value.message
    assert "not a list" in unreadable.value.message
    assert await cleeng.authorised_payments(details) == []


class _Recorder:
    """Answers every request with an empty success and keeps what was sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"id": 7, "status": "refunded", "customerId": 1})

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


async def test_cleeng_ids_go_out_typed_as_the_reference_types_them() -> None:
    recorder = _Recorder()
    client = CleengClient(
        "http://cleeng.test/3.1", "token", transport=httpx.MockTransport(recorder)
    )
    with contextlib.suppress(ServiceError):
        await client.create_renewal_order(
            customer_id="900000001",
            offer_id="S1_US",
            subscription_id="700000001",
            currency="EUR",
            country="NL",
            payment_method_id="555000001",
        )
    with contextlib.suppress(ServiceError):
        await client.create_payment(
            order_id="123",
            status="captured",
            payment_operation="initial-payment",
            external_payment_id="tr_abc",
            inline_details={"customerId": 900000001, "token": "t", "paymentMethodId": 5},
        )
    await client.create_payment_details(
        customer_id="900000001", token="t", payment_method_id=555000001, card_params={}
    )
    await client.record_refund(
        "77",
        order_id="123",
        payment_operation="initial-payment",
        refunded_reason="asked",
        amount=Money(minor=1999, currency="EUR"),
        refund_type="refund",
    )
    await client.aclose()
    order, payment, details, refund = recorder.bodies()
    # "create-an-order": customerId and paymentMethodId int32, subscriptionId a string.
    assert (order["customerId"], order["paymentMethodId"]) == (900000001, 555000001)
    assert order["subscriptionId"] == "700000001"
    # "create-a-payment": orderId is a string there.
    assert payment["orderId"] == "123"
    assert (details["customerId"], details["paymentMethodId"]) == (900000001, 555000001)
    # "update-a-payment" with refunded: orderId int32, the required fields, exact money.
    assert refund["orderId"] == 123
    assert refund["paymentOperation"] == "initial-payment"
    assert refund["refundedReason"] == "asked"
    assert b'"refundedAmount":19.99' in recorder.requests[3].content
    assert recorder.requests[3].url.path == "/3.1/payments/77"


@pytest.mark.parametrize(
    "hostile_id",
    [
        "9/../../customers/1/payment_details#",
        "12?x=1",
        "-5",
        "0",
        "2147483648",
        "1e3",
        " ",
        "١٢",
        "²",
    ],
)
async def test_cleeng_ids_that_are_not_int32_never_reach_a_url(hostile_id: str) -> None:
    recorder = _Recorder()
    client = CleengClient(
        "http://cleeng.test/3.1", "token", transport=httpx.MockTransport(recorder)
    )
    with pytest.raises(ServiceError) as refused:
        await client.get_order(hostile_id)
    with pytest.raises(ServiceError):
        await client.authorised_payments(hostile_id)
    with pytest.raises(ServiceError):
        await client.cancel_payment(hostile_id)
    await client.aclose()
    assert refused.value.kind is FailureKind.PERMANENT
    assert recorder.requests == []


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


async def test_termination_calls_send_the_bodies_the_documents_show() -> None:
    """PATCH {"status": "terminated"} is the call the Connector Checklist and the Termination
    guide name; POST .../terminate carries its required enum under the inferred key
    terminationType (the page shows the values, not the key)."""
    recorder = _Recorder()
    client = CleengClient(
        "http://cleeng.test/3.1", "token", transport=httpx.MockTransport(recorder)
    )
    await client.terminate_subscription_by_patch("700000001")
    await client.terminate_subscription("700000001", "paymentCancel")
    with pytest.raises(ServiceError):
        await client.terminate_subscription("700000001", "because")
    await client.aclose()
    patch, terminate = recorder.requests
    assert (patch.method, patch.url.path) == ("PATCH", "/3.1/subscriptions/700000001")
    assert json.loads(patch.content) == {"status": "terminated"}
    assert (terminate.method, terminate.url.path) == (
        "POST",
        "/3.1/subscriptions/700000001/terminate",
    )
    assert json.loads(terminate.content) == {"terminationType": "paymentCancel"}
