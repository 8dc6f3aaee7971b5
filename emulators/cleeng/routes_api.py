"""The Cleeng Core API 3.1 endpoints a payment connector touches."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from clients.cleeng_contract import (
    API_PREFIX,
    LIST_ITEMS_KEY,
    ORDER_WRAPPER_KEY,
    PAYMENT_DETAILS_WRAPPER_KEY,
    PAYMENT_WRAPPER_KEY,
    PAYMENTS_BY_ORDER_QUERY_PARAM,
    SUBSCRIPTION_WRAPPER_KEY,
)

from .deps import Emulator, parse_id, require_publisher_token
from .errors import CleengError, Unprocessable
from .schemas import (
    OrderCreate,
    PaymentCreate,
    PaymentDetailsCreate,
    PaymentUpdate,
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


# ------------------------------------------------------------------------------- orders


@router.post("/orders")
async def create_order(body: OrderCreate, emulator: Emulator) -> JSON:
    order = emulator.store.create_order(
        customer_id=body.customerId,
        offer_id=body.offerId,
        currency=body.currency,
        country=body.country,
        payment_method_id=body.paymentMethodId,
        payment_operation=body.paymentOperation,
        subscription_id=body.subscriptionId,
        coupon_code=body.couponCode,
    )
    return {ORDER_WRAPPER_KEY: order_json(emulator.store, order)}


@router.get("/orders/{order_id}")
async def get_order(order_id: str, emulator: Emulator) -> JSON:
    order = emulator.store.get_order(parse_id(order_id, "Order"))
    return {ORDER_WRAPPER_KEY: order_json(emulator.store, order)}


# ----------------------------------------------------------------------------- payments


@router.post("/payments")
async def create_payment(body: PaymentCreate, emulator: Emulator) -> JSON:
    payment = emulator.store.create_payment(
        order_id=body.orderId,
        status=body.status,
        payment_operation=body.paymentOperation,
        payment_details_id=body.paymentDetailsId,
        payment_details=body.paymentDetails.to_input() if body.paymentDetails else None,
        external_payment_id=body.externalPaymentId,
        rejected_reason=body.rejectedReason,
        subscription_id=body.subscriptionId,
        payment_method=body.paymentMethod,
    )
    return {
        "success": True,
        "message": "Payment created",
        PAYMENT_WRAPPER_KEY: payment_json(payment),
    }


@router.get("/payments")
async def list_payments(
    emulator: Emulator,
    order_id: Annotated[int | None, Query(alias=PAYMENTS_BY_ORDER_QUERY_PARAM)] = None,
    customer_id: Annotated[int | None, Query(alias="customerId")] = None,
) -> JSON:
    if order_id is None and customer_id is None:
        raise Unprocessable(
            f"Query parameter '{PAYMENTS_BY_ORDER_QUERY_PARAM}' or 'customerId' is required"
        )
    payments = emulator.store.payments_for(order_id=order_id, customer_id=customer_id)
    return {LIST_ITEMS_KEY: [payment_json(p) for p in payments]}


@router.patch("/payments/{payment_id}")
async def update_payment(payment_id: str, body: PaymentUpdate, emulator: Emulator) -> JSON:
    payment = emulator.store.patch_payment(parse_id(payment_id, "Payment"), body.to_patch())
    return {"success": True, PAYMENT_WRAPPER_KEY: payment_json(payment)}


@router.patch("/payments/{payment_id}/cancel")
async def cancel_payment(payment_id: str, emulator: Emulator) -> JSON:
    payment = emulator.store.cancel_payment(parse_id(payment_id, "Payment"))
    return {"success": True, PAYMENT_WRAPPER_KEY: payment_json(payment)}


# ---------------------------------------------------------------------- payment details


@router.post("/payment_details")
async def create_payment_details(body: PaymentDetailsCreate, emulator: Emulator) -> JSON:
    # Replaced details are deactivated and announced by the store's hook.
    details, _ = emulator.store.add_payment_details(body.to_input())
    return {
        "success": True,
        PAYMENT_DETAILS_WRAPPER_KEY: payment_details_json(emulator.store, details),
    }


@router.get("/payment_details/{details_id}")
async def get_payment_details(details_id: str, emulator: Emulator) -> JSON:
    details = emulator.store.get_payment_details(parse_id(details_id, "Payment details"))
    return {
        "success": True,
        PAYMENT_DETAILS_WRAPPER_KEY: payment_details_json(emulator.store, details),
    }


@router.delete("/payment_details/{details_id}")
async def delete_payment_details(details_id: str, emulator: Emulator) -> JSON:
    emulator.store.delete_payment_details(parse_id(details_id, "Payment details"))
    return {"success": True}


# The reference documents GET, the Connector Checklist POST; both answer the same.
@router.get("/payment_details/{details_id}/authorised_payments")
@router.post(
    "/payment_details/{details_id}/authorised_payments",
    operation_id="authorised_payments_by_post",
)
async def authorised_payments(details_id: str, emulator: Emulator) -> JSON:
    payments = emulator.store.authorised_payments(parse_id(details_id, "Payment details"))
    return {LIST_ITEMS_KEY: [payment_json(p) for p in payments]}


@router.get("/customers/{customer_id}/payment_details")
async def customer_payment_details(customer_id: str, emulator: Emulator) -> JSON:
    items = emulator.store.customer_payment_details(parse_id(customer_id, "Customer"))
    return {LIST_ITEMS_KEY: [payment_details_json(emulator.store, d) for d in items]}


# ------------------------------------------------------------------------ subscriptions


@router.get("/subscriptions/{subscription_id}")
async def get_subscription(subscription_id: str, emulator: Emulator) -> JSON:
    subscription = emulator.store.get_subscription(parse_id(subscription_id, "Subscription"))
    return {
        "success": True,
        SUBSCRIPTION_WRAPPER_KEY: subscription_json(emulator.store, subscription),
    }


@router.patch("/subscriptions/{subscription_id}")
async def update_subscription(
    subscription_id: str, body: SubscriptionUpdate, emulator: Emulator
) -> JSON:
    subscription = emulator.store.patch_subscription(
        parse_id(subscription_id, "Subscription"), body.changes()
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
