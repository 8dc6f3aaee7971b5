"""The Cleeng Core API 3.1 endpoints a payment connector touches, and only those.

Each route names the page of Cleeng's reference (developers.cleeng.com/reference/<page>) that
documents it. Anything else under ``/3.1`` - an undocumented path, or an undocumented method
on a documented path - answers 404 with Cleeng's error body (see :mod:`.errors`). Request
bodies are typed strictly (:mod:`.schemas`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from .deps import Emulator, parse_int32_id, require_publisher_token
from .errors import CleengError
from .reference import (
    API_PREFIX,
    INT32_MAX,
    INT32_MIN,
    LIST_ITEMS_KEY,
    LIST_SUBSCRIPTIONS_LIMIT_DEFAULT,
    LIST_SUBSCRIPTIONS_LIMIT_MAX,
    LIST_TOTAL_KEY,
    ORDER_WRAPPER_KEY,
    PAYMENT_DETAILS_WRAPPER_KEY,
    PAYMENT_WRAPPER_KEY,
    SUBSCRIPTION_WRAPPER_KEY,
)
from .schemas import (
    OrderCreate,
    PaymentCreate,
    PaymentDetailsCreate,
    PaymentUpdate,
    SubscriptionTerminate,
    SubscriptionUpdate,
)
from .webhooks import KNOWN_TOPICS, check_topic, parse_endpoints
from .wire import order_json, payment_details_json, payment_json, subscription_json

router = APIRouter(
    prefix=API_PREFIX,
    tags=["Cleeng Core API 3.1"],
    dependencies=[Depends(require_publisher_token)],
)

JSON = dict[str, Any]


def _id(value: str | None) -> int | None:
    """An id the schema already checked is a string of digits."""
    return int(value) if value is not None else None


# ------------------------------------------------------------------------------- orders


@router.post("/orders", summary="create-an-order")
async def create_order(body: OrderCreate, emulator: Emulator) -> JSON:
    body.check()
    order = emulator.store.create_order(
        customer_id=body.customerId,
        offer_id=body.offerId,
        currency=body.currency,
        country=body.country,
        payment_method_id=body.paymentMethodId,
        payment_operation=body.paymentOperation,
        subscription_id=_id(body.subscriptionId),
        coupon_code=body.couponCode,
        tax_rate=body.taxRate,
        customer_ip=body.customerIP,
        billing_address=body.billingAddress,
        buy_as_a_gift=body.buyAsAGift,
        delivery_details=body.deliveryDetails,
    )
    return {ORDER_WRAPPER_KEY: order_json(emulator.store, order)}


@router.get("/orders/{order_id}", summary="get-an-order")
async def get_order(order_id: str, emulator: Emulator) -> JSON:
    order = emulator.store.get_order(parse_int32_id(order_id, "Order", "orderId"))
    return {ORDER_WRAPPER_KEY: order_json(emulator.store, order)}


# ----------------------------------------------------------------------------- payments


@router.post("/payments", summary="create-a-payment")
async def create_payment(body: PaymentCreate, emulator: Emulator) -> JSON:
    body.check()
    payment = emulator.store.create_payment(
        order_id=int(body.orderId),
        status=body.status,
        payment_operation=body.paymentOperation,
        payment_details_id=_id(body.paymentDetailsId),
        payment_details=body.paymentDetails.to_input() if body.paymentDetails else None,
        external_payment_id=body.externalPaymentId,
        rejected_reason=body.rejectedReason,
        subscription_id=_id(body.subscriptionId),
    )
    return {
        "success": True,
        "message": "Payment created",
        PAYMENT_WRAPPER_KEY: payment_json(payment),
    }


@router.patch("/payments/{payment_id}", summary="update-a-payment")
async def update_payment(payment_id: str, body: PaymentUpdate, emulator: Emulator) -> JSON:
    body.check()
    payment = emulator.store.patch_payment(
        parse_int32_id(payment_id, "Payment", "paymentId"), body.to_patch()
    )
    return {"success": True, PAYMENT_WRAPPER_KEY: payment_json(payment)}


@router.patch("/payments/{payment_id}/cancel", summary="cancel-a-payment")
async def cancel_payment(payment_id: str, emulator: Emulator) -> JSON:
    payment = emulator.store.cancel_payment(parse_int32_id(payment_id, "Payment", "paymentId"))
    return {"success": True, PAYMENT_WRAPPER_KEY: payment_json(payment)}


# ---------------------------------------------------------------------- payment details


@router.post("/payment_details", summary="create-payment-details")
async def create_payment_details(body: PaymentDetailsCreate, emulator: Emulator) -> JSON:
    body.check()
    # Replaced details are deactivated and announced by the store's hook.
    details, _ = emulator.store.add_payment_details(body.to_input())
    return {
        "success": True,
        PAYMENT_DETAILS_WRAPPER_KEY: payment_details_json(emulator.store, details),
    }


@router.delete("/payment_details/{details_id}", summary="delete-payment-details")
async def delete_payment_details(details_id: str, emulator: Emulator) -> JSON:
    emulator.store.delete_payment_details(
        parse_int32_id(details_id, "Payment details", "paymentDetailsId")
    )
    return {"success": True}


# The reference documents GET (the Connector Checklist writes POST; POST is not served).
@router.get(
    "/payment_details/{details_id}/authorised_payments",
    summary="list-a-customer-authorised-payments",
)
async def authorised_payments(details_id: str, emulator: Emulator) -> JSON:
    payments = emulator.store.authorised_payments(
        parse_int32_id(details_id, "Payment details", "paymentDetailsId")
    )
    return {LIST_ITEMS_KEY: [payment_json(p) for p in payments]}


# ------------------------------------------------------------------------ subscriptions


@router.get("/subscriptions", summary="list-subscriptions")
async def list_subscriptions(
    emulator: Emulator,
    customer_id: Annotated[
        int | None, Query(alias="customerId", ge=INT32_MIN, le=INT32_MAX)
    ] = None,
    offer_id: Annotated[str | None, Query(alias="offerId")] = None,
    payment_method_id: Annotated[
        int | None, Query(alias="paymentMethodId", ge=INT32_MIN, le=INT32_MAX)
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=LIST_SUBSCRIPTIONS_LIMIT_MAX)
    ] = LIST_SUBSCRIPTIONS_LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
    statuses: Annotated[list[str] | None, Query(alias="status[]")] = None,
) -> JSON:
    """Without customerId, offerId or paymentMethodId the list is empty. The response keys
    (``items``, ``totalCount``) are [inferred]."""
    found, total = emulator.store.list_subscriptions(
        customer_id=customer_id,
        offer_id=offer_id,
        payment_method_id=payment_method_id,
        statuses=statuses,
        limit=limit,
        offset=offset,
    )
    return {
        LIST_ITEMS_KEY: [subscription_json(emulator.store, s) for s in found],
        LIST_TOTAL_KEY: total,
    }


@router.get("/subscriptions/{subscription_id}", summary="get-a-subscription")
async def get_subscription(subscription_id: str, emulator: Emulator) -> JSON:
    subscription = emulator.store.get_subscription(
        parse_int32_id(subscription_id, "Subscription", "subscriptionId")
    )
    return {
        "success": True,
        SUBSCRIPTION_WRAPPER_KEY: subscription_json(emulator.store, subscription),
    }


@router.patch("/subscriptions/{subscription_id}", summary="update-subscription")
async def update_subscription(
    subscription_id: str,
    body: SubscriptionUpdate,
    emulator: Emulator,
) -> JSON:
    subscription = emulator.store.patch_subscription(
        parse_int32_id(subscription_id, "Subscription", "subscriptionId"), body.changes()
    )
    return {
        "success": True,
        SUBSCRIPTION_WRAPPER_KEY: subscription_json(emulator.store, subscription),
    }


@router.post("/subscriptions/{subscription_id}/terminate", summary="terminate-subscription")
async def terminate_subscription(
    subscription_id: str,
    body: SubscriptionTerminate,
    emulator: Emulator,
) -> JSON:
    """Terminates the subscription with a reason; a terminated one answers 200 again
    (idempotent, the first reason is kept). The answer's shape is [inferred]."""
    body.check()
    subscription = emulator.store.terminate_subscription(
        parse_int32_id(subscription_id, "Subscription", "subscriptionId"), body.reason
    )
    return {
        "success": True,
        SUBSCRIPTION_WRAPPER_KEY: subscription_json(emulator.store, subscription),
    }


# ------------------------------------------------------------------ webhook subscriptions


@router.get("/webhook_subscriptions")
async def list_webhook_subscriptions(emulator: Emulator) -> JSON:
    stored = emulator.store.webhook_endpoints
    topics = [*KNOWN_TOPICS, *(t for t in stored if t not in KNOWN_TOPICS)]
    return {topic: [e.raw for e in stored.get(topic, [])] for topic in topics}


@router.put(
    "/webhook_subscriptions/{topic}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
            },
        }
    },
)
async def replace_webhook_subscriptions(
    topic: str, request: Request, emulator: Emulator
) -> list[JSON]:
    """Replaces the whole list of endpoints for the topic (Cleeng's PUT semantics)."""
    check_topic(topic)
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise CleengError(400, "Request body is not valid JSON") from exc
    endpoints = parse_endpoints(body)
    emulator.store.webhook_endpoints[topic] = endpoints
    return [e.raw for e in endpoints]
