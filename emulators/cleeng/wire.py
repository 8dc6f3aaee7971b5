"""Rendering records as Cleeng Core API 3.1 JSON (major-unit floats, unix-second dates).

The ``*_json`` functions render what the Core API answers; ``operator_*_json`` add the
emulator's bookkeeping (duplicates, how a subscription was terminated) for ``/_emulator``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .clock import unix, utc_iso
from .dunning import ACTION_AUTHORISE, ACTION_CAPTURE, ACTION_TERMINATE, plan_cycle
from .models import (
    MOLLIE_GATEWAY,
    PERIOD_BILLING_CYCLES,
    SUBSCRIPTION_ACTIVE,
    Customer,
    Offer,
    Order,
    Payment,
    PaymentDetails,
    Subscription,
)
from .money import to_major
from .reference import REFUND_TYPE_KEY, REFUNDED_AMOUNT_KEY
from .store import EmulatorStore


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "email": customer.email,
        "country": customer.country,
        "locale": customer.locale,
        "createdAt": unix(customer.created_at),
    }


def offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "offerId": offer.offer_id,
        "title": offer.title,
        "price": to_major(offer.price_minor, offer.currency),
        "priceMinor": offer.price_minor,
        "currency": offer.currency,
        "period": offer.period,
        "taxRate": offer.tax_rate,
        "createdAt": unix(offer.created_at),
    }


def order_json(store: EmulatorStore, order: Order) -> dict[str, Any]:
    """The order resource; its total is tax-inclusive, the breakdown splits the tax out."""
    customer = store.customers.get(order.customer_id)
    net_minor = round(order.price_minor / (1 + order.tax_rate))
    tax_minor = order.price_minor - net_minor

    def major(minor: int) -> float:
        return to_major(minor, order.currency)

    return {
        "id": order.id,
        "customerId": order.customer_id,
        "customerEmail": customer.email if customer else None,
        "offerId": order.offer_id,
        "offerTitle": order.offer_title,
        "totalPrice": major(order.price_minor),
        "priceBreakdown": {
            "offerPrice": major(net_minor),
            "discountAmount": major(0),
            "discountedPrice": major(net_minor),
            "taxValue": major(tax_minor),
            "customerServiceFee": major(0),
            "paymentMethodFee": major(0),
        },
        "taxRate": order.tax_rate,
        "currency": order.currency,
        "country": order.country,
        "paymentMethodId": order.payment_method_id,
        "expirationDate": unix(order.expires_at),
        "createdAt": unix(order.created_at),
        "paymentOperation": order.payment_operation,
        "subscriptionId": order.subscription_id,
        "couponCode": order.coupon_code,
        "discount": {"applied": False, "type": "", "periods": 0},
    }


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "orderId": payment.order_id,
        "status": payment.status,
        "totalAmount": to_major(payment.amount_minor, payment.currency),
        "currency": payment.currency,
        "customerId": payment.customer_id,
        "paymentGateway": MOLLIE_GATEWAY,
        "paymentMethod": payment.payment_method,
        "externalPaymentId": payment.external_payment_id,
        "offerId": payment.offer_id,
        "rejectedReason": payment.rejected_reason,
        "refundedReason": payment.refunded_reason,
        REFUNDED_AMOUNT_KEY: to_major(payment.refunded_minor, payment.currency),
        REFUND_TYPE_KEY: payment.refund_type,
        "paymentDetailsId": payment.payment_details_id,
        "paymentOperation": payment.payment_operation,
        "subscriptionId": payment.subscription_id,
        "gatewaySpecificParams": {},
        "createdAt": unix(payment.created_at),
        "updatedAt": unix(payment.updated_at),
    }


def operator_payment_json(payment: Payment) -> dict[str, Any]:
    """The payment plus whether it repeats an earlier record (see the ledger)."""
    return {
        **payment_json(payment),
        "duplicateOf": payment.duplicate_of,
        "duplicateReason": payment.duplicate_reason,
    }


def payment_details_json(store: EmulatorStore, details: PaymentDetails) -> dict[str, Any]:
    subscription_ids = store.subscription_ids_of(details.id)
    return {
        "id": details.id,
        "customerId": details.customer_id,
        "token": details.token,
        "paymentGateway": details.payment_gateway,
        "paymentMethod": details.payment_method,
        "paymentMethodSpecificParams": details.params,
        "paymentMethodId": details.payment_method_id,
        "active": details.active,
        "bound": bool(subscription_ids),
        "subscriptionIds": subscription_ids,
    }


def next_payment_action(store: EmulatorStore, subscription: Subscription) -> tuple[str, int]:
    """The next authorise/capture the dunning schedule will ask for, and when (unix)."""
    cycle = PERIOD_BILLING_CYCLES[subscription.period]
    settings = store.dunning.get(subscription.payment_method_id, cycle)
    sent = store.sent_events(subscription)
    authorised = store.cycle_authorised(subscription)
    for event in plan_cycle(subscription.date_to, settings, subscription.cycle_started_at):
        if event.key in sent or event.action == ACTION_TERMINATE:
            continue
        if event.action == ACTION_AUTHORISE and authorised:
            continue
        return event.action, unix(event.at)
    action = ACTION_AUTHORISE if settings.authorized_first and not authorised else ACTION_CAPTURE
    return action, unix(subscription.date_to)


def subscription_json(store: EmulatorStore, subscription: Subscription) -> dict[str, Any]:
    action, action_date = next_payment_action(store, subscription)
    return {
        "subscriptionId": subscription.id,
        "paymentDetailsId": subscription.payment_details_id,
        "customerId": subscription.customer_id,
        "status": subscription.status,
        "dateFrom": unix(subscription.date_from),
        "dateTo": unix(subscription.date_to),
        "nextPaymentAction": action if subscription.status == SUBSCRIPTION_ACTIVE else None,
        "nextPaymentActionDate": (
            action_date if subscription.status == SUBSCRIPTION_ACTIVE else None
        ),
        "offerId": subscription.offer_id,
        "paymentMethodId": subscription.payment_method_id,
        "totalPrice": to_major(subscription.price_minor, subscription.currency),
        "currency": subscription.currency,
        "period": subscription.period,
        "couponCode": subscription.coupon_code,
    }


def operator_subscription_json(store: EmulatorStore, subscription: Subscription) -> dict[str, Any]:
    """The subscription plus how it was terminated: the reason given to POST .../terminate
    and the call that did it ("terminate", or "patch" for PATCH {"status": "terminated"})."""
    return {
        **subscription_json(store, subscription),
        "terminationReason": subscription.termination_reason,
        "terminatedVia": subscription.terminated_via,
    }


def subscription_event_data(
    store: EmulatorStore, subscription: Subscription, dunning_status: str, attempt_at: datetime
) -> dict[str, Any]:
    """The ``data`` of the three dunning webhooks, keyed and typed like Cleeng's example.

    Cleeng's example sends ``subscriptionId`` as a string and the other ids as integers; the
    emulator does the same so the connector's lenient parsing is exercised.
    """
    customer = store.customers.get(subscription.customer_id)
    details = store.payment_details.get(subscription.payment_details_id or -1)
    return {
        "subscriptionId": str(subscription.id),
        "offerId": subscription.offer_id,
        "customerId": subscription.customer_id,
        "customerEmail": customer.email if customer else None,
        "paymentDetailsId": subscription.payment_details_id,
        "active": subscription.status == SUBSCRIPTION_ACTIVE,
        "dunningAttemptDate": utc_iso(attempt_at),
        "dunningStatus": dunning_status,
        "expirationDate": utc_iso(subscription.date_to),
        "currency": subscription.currency,
        "paymentCountry": customer.country if customer else None,
        "paymentMethodId": subscription.payment_method_id,
        "token": details.token if details else None,
        "paymentGateway": MOLLIE_GATEWAY,
    }
