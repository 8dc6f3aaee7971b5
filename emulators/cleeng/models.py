"""The emulator's records. Money is integer minor units plus currency; times are aware UTC."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from .reference import (
    SUBSCRIPTION_ACTIVE,
    SUBSCRIPTION_STATUSES,
    SUBSCRIPTION_STOPPED,
    SUBSCRIPTION_TERMINATED,
)

__all__ = [
    "BILLING_CYCLES",
    "MOLLIE_GATEWAY",
    "PERIODS",
    "PERIOD_BILLING_CYCLES",
    "SUBSCRIPTION_ACTIVE",
    "SUBSCRIPTION_STATUSES",
    "SUBSCRIPTION_STOPPED",
    "SUBSCRIPTION_TERMINATED",
    "Customer",
    "Offer",
    "Order",
    "Payment",
    "PaymentDetails",
    "Subscription",
    "WebhookEndpoint",
    "add_period",
]

# Offer periods as the operator names them, and the billing cycle each maps to in Cleeng's
# dunning action settings.
PERIOD_BILLING_CYCLES: Final[dict[str, str]] = {
    "week": "weekly",
    "month": "monthly",
    "3-months": "3-months",
    "6-months": "6-months",
    "year": "annual",
}
PERIODS: Final = tuple(PERIOD_BILLING_CYCLES)
BILLING_CYCLES: Final = tuple(PERIOD_BILLING_CYCLES.values())
_PERIOD_MONTHS: Final = {"month": 1, "3-months": 3, "6-months": 6, "year": 12}

MOLLIE_GATEWAY: Final = "mollie"


def add_period(start: datetime, period: str) -> datetime:
    """One billing period later; months are calendar months, clamped to the month's end."""
    if period == "week":
        return start + timedelta(days=7)
    months = _PERIOD_MONTHS[period]
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(kw_only=True)
class Customer:
    """A Cleeng customer (seeded by the operator)."""

    id: int
    email: str
    country: str
    locale: str
    created_at: datetime


@dataclass(kw_only=True)
class Offer:
    """Something to buy: a price and, for subscriptions, a billing period."""

    offer_id: str
    title: str
    price_minor: int
    currency: str
    period: str | None  # None: a one-off purchase that creates no subscription
    tax_rate: float
    created_at: datetime


@dataclass(kw_only=True)
class Order:
    """A priced intent to buy an offer; payable for 24 hours."""

    id: int
    customer_id: int
    offer_id: str
    offer_title: str
    price_minor: int
    currency: str
    country: str
    payment_method_id: int
    tax_rate: float
    created_at: datetime
    expires_at: datetime
    payment_operation: str
    subscription_id: int | None = None
    # For renewal orders: the due date of the subscription cycle the order pays for.
    cycle_due: datetime | None = None
    coupon_code: str | None = None
    # Accepted as create-an-order documents them; kept for inspection, not priced.
    tax_rate_requested: str | None = None
    customer_ip: str | None = None
    billing_address: dict[str, Any] | None = None
    buy_as_a_gift: bool | None = None
    delivery_details: dict[str, Any] | None = None


@dataclass(kw_only=True)
class Payment:
    """A connector's record of a charge for an order, with its refunds."""

    id: int
    order_id: int
    status: str
    amount_minor: int
    currency: str
    customer_id: int
    offer_id: str
    payment_method: str
    payment_operation: str
    created_at: datetime
    updated_at: datetime
    external_payment_id: str | None = None
    rejected_reason: str | None = None
    refunded_reason: str | None = None
    refunded_minor: int = 0
    refund_type: str | None = None
    payment_details_id: int | None = None
    subscription_id: int | None = None
    cycle_due: datetime | None = None
    # Set when this record repeats a fact Cleeng already held: the earlier payment's id and
    # why (the order was already paid, or the same outcome was recorded before).
    duplicate_of: int | None = None
    duplicate_reason: str | None = None
    # Each refund PATCH that moved money: (minor units, refund type, when).
    refunds: list[tuple[int, str, datetime]] = field(default_factory=list)


@dataclass(kw_only=True)
class PaymentDetails:
    """A stored payment method: the gateway's recurring token for a customer."""

    id: int
    customer_id: int
    token: str
    payment_method_id: int
    payment_method: str
    payment_gateway: str
    params: dict[str, Any]
    active: bool
    created_at: datetime


@dataclass(kw_only=True)
class Subscription:
    """A customer's running access to a subscription offer; renewed per period."""

    id: int
    customer_id: int
    offer_id: str
    payment_details_id: int | None
    payment_method_id: int
    status: str
    date_from: datetime
    date_to: datetime
    price_minor: int
    currency: str
    period: str
    created_at: datetime
    # When the current cycle began (creation or last extension). Dunning attempts scheduled
    # before it are collapsed so a subscription seeded close to its due date is not flooded.
    cycle_started_at: datetime
    coupon_code: str | None = None
    # How it was terminated: the reason given to POST .../terminate, and which call did it
    # ("terminate", or "patch" for PATCH {"status": "terminated"}).
    termination_reason: str | None = None
    terminated_via: str | None = None


@dataclass(kw_only=True)
class WebhookEndpoint:
    """One endpoint subscribed to a webhook topic."""

    url: str
    payment_method_filter: int | None = None
    shared_secret: str | None = None
    # The endpoint object as stored and echoed back by GET/PUT.
    raw: dict[str, Any] = field(default_factory=dict)
