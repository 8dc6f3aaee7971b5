"""Operator endpoints under ``/_emulator``: seeding, inspection, clock, faults, dunning.

These are not part of Cleeng's API. They let a person or a test arrange a scenario (customers,
offers, orders, subscriptions about to renew), move time, inject faults and look at what the
connector recorded. They need no publisher token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from . import config as defaults
from .clock import ClockError, parse_moment, utc_iso
from .deps import Emulator, parse_id
from .dunning import DunningSettings
from .errors import Unprocessable
from .faults import FaultSettings
from .models import BILLING_CYCLES, PERIODS
from .money import to_minor
from .store import EmulatorStore
from .wire import (
    customer_json,
    offer_json,
    operator_payment_json,
    operator_subscription_json,
    order_json,
    payment_details_json,
)

router = APIRouter(prefix="/_emulator", tags=["Emulator operator"])

JSON = dict[str, Any]


class _Body(BaseModel):
    """Operator bodies refuse unknown keys, so a typo fails loudly."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------- clock


class ClockAdvance(_Body):
    """Body of POST /_emulator/clock/advance: `seconds` or `to`."""

    seconds: float | None = Field(default=None, ge=0, description="move forward this much")
    to: str | None = Field(default=None, description="or move to this ISO-8601 instant")
    settleSeconds: float = Field(
        default=0,
        ge=0,
        le=60,
        description="after each renewal webhook sent on the way, wait up to this long (real "
        "time) for the connector to act, so a long jump plays out like real time",
    )


def _clock_json(emulator: Emulator) -> JSON:
    return {
        "now": utc_iso(emulator.clock.now()),
        "offsetSeconds": emulator.clock.offset.total_seconds(),
    }


@router.get("/clock")
async def get_clock(emulator: Emulator) -> JSON:
    return _clock_json(emulator)


@router.post("/clock/advance")
async def advance_clock(body: ClockAdvance, emulator: Emulator) -> JSON:
    """Move emulator time forward; the billing engine fires what falls due on the way."""
    if (body.seconds is None) == (body.to is None):
        raise Unprocessable("Exactly one of 'seconds' and 'to' is required")
    if body.seconds is not None:
        target = emulator.clock.now() + timedelta(seconds=body.seconds)
    else:
        assert body.to is not None
        try:
            target = parse_moment(body.to)
        except ValueError as exc:
            raise Unprocessable("Field 'to' must be an ISO-8601 date") from exc
    sent_before = len(emulator.webhooks.deliveries)
    try:
        await emulator.clock.advance_to(target, body.settleSeconds)
    except ClockError as exc:
        raise Unprocessable(str(exc)) from exc
    return {
        **_clock_json(emulator),
        "webhooksSent": len(emulator.webhooks.deliveries) - sent_before,
    }


# -------------------------------------------------------------------- customers, offers


class CustomerCreate(_Body):
    """Body of POST /_emulator/customers."""

    email: str = Field(min_length=3)
    country: str = defaults.DEFAULT_CUSTOMER_COUNTRY
    locale: str = defaults.DEFAULT_CUSTOMER_LOCALE


@router.post("/customers", status_code=201)
async def create_customer(body: CustomerCreate, emulator: Emulator, response: Response) -> JSON:
    """Create a customer; an existing email returns that customer (200)."""
    customer, created = emulator.store.add_customer(body.email, body.country, body.locale)
    if not created:
        response.status_code = 200
    return customer_json(customer)


@router.get("/customers")
async def list_customers(emulator: Emulator) -> JSON:
    return {"items": [customer_json(c) for c in emulator.store.customers.values()]}


class OfferCreate(_Body):
    """Body of POST /_emulator/offers: price in major (`price`) or minor units."""

    offerId: str | None = Field(default=None, description="generated (S123456789_NL) if omitted")
    title: str = "Premium"
    price: float | None = Field(default=None, description="major units, e.g. 9.99")
    priceMinor: int | None = Field(default=None, description="or minor units, e.g. 999")
    currency: str = defaults.DEFAULT_OFFER_CURRENCY
    period: str | None = Field(
        default=defaults.DEFAULT_OFFER_PERIOD,
        description=f"one of {', '.join(PERIODS)}; null for a one-off purchase",
    )
    taxRate: float = 0.0
    country: str = defaults.DEFAULT_CUSTOMER_COUNTRY


def _price_minor(price: float | None, price_minor: int | None, currency: str) -> int | None:
    if price_minor is not None:
        return price_minor
    if price is None:
        return None
    try:
        return to_minor(price, currency)
    except ValueError as exc:
        raise Unprocessable(f"Field 'price' is invalid: {exc}") from exc


@router.post("/offers", status_code=201)
async def create_offer(body: OfferCreate, emulator: Emulator, response: Response) -> JSON:
    """Create an offer, or replace the one with the same offerId (200)."""
    minor = _price_minor(body.price, body.priceMinor, body.currency)
    if minor is None:
        raise Unprocessable("Field 'price' or 'priceMinor' is required")
    offer, created = emulator.store.upsert_offer(
        offer_id=body.offerId,
        title=body.title,
        price_minor=minor,
        currency=body.currency,
        period=body.period,
        tax_rate=body.taxRate,
        country=body.country,
    )
    if not created:
        response.status_code = 200
    return offer_json(offer)


@router.get("/offers")
async def list_offers(emulator: Emulator) -> JSON:
    return {"items": [offer_json(o) for o in emulator.store.offers.values()]}


# ------------------------------------------------------------------------------- orders


class OrderSeed(_Body):
    """Body of POST /_emulator/orders."""

    customerId: int
    offerId: str
    paymentMethodId: int | None = None
    country: str | None = None


@router.post("/orders", status_code=201)
async def create_order(body: OrderSeed, emulator: Emulator) -> JSON:
    order = emulator.store.create_order(
        customer_id=body.customerId,
        offer_id=body.offerId,
        country=body.country,
        payment_method_id=body.paymentMethodId,
    )
    return order_json(emulator.store, order)


@router.get("/orders")
async def list_orders(emulator: Emulator) -> JSON:
    store = emulator.store
    return {"items": [order_json(store, o) for o in store.orders.values()]}


class PurchaseSeed(_Body):
    """Body of POST /_emulator/seed/purchase; every field is optional."""

    email: str | None = None
    country: str | None = None
    offerId: str | None = None
    title: str | None = None
    price: float | None = None
    priceMinor: int | None = None
    currency: str | None = None
    period: str | None = Field(default=defaults.DEFAULT_OFFER_PERIOD)
    paymentMethodId: int | None = None


def _purchase_offer(store: EmulatorStore, body: PurchaseSeed) -> str:
    """The offer to buy: as named, one matching the given price, or the default offer."""
    currency = (body.currency or defaults.DEFAULT_OFFER_CURRENCY).upper()
    minor = _price_minor(body.price, body.priceMinor, currency)
    offer_id = body.offerId
    if offer_id is None and minor is None and body.currency is None:
        offer_id = defaults.DEFAULT_OFFER_ID
    existing = store.offers.get(offer_id) if offer_id is not None else None
    if existing is not None:
        if (minor is None or minor == existing.price_minor) and (
            body.currency is None or currency == existing.currency
        ):
            return existing.offer_id
    elif offer_id is None:
        # A price without a name: reuse an offer with that price, else make one.
        # A price of 0 (a free trial) is a price too.
        wanted = (
            minor if minor is not None else defaults.DEFAULT_OFFER_PRICE_MINOR,
            currency,
            body.period,
        )
        for offer in store.offers.values():
            if (offer.price_minor, offer.currency, offer.period) == wanted:
                return offer.offer_id
    offer, _ = store.upsert_offer(
        offer_id=offer_id,
        title=body.title or (existing.title if existing else defaults.DEFAULT_OFFER_TITLE),
        price_minor=minor
        if minor is not None
        else (existing.price_minor if existing else defaults.DEFAULT_OFFER_PRICE_MINOR),
        currency=currency,
        period=body.period,
        country=body.country or defaults.DEFAULT_CUSTOMER_COUNTRY,
    )
    return offer.offer_id


@router.post("/seed/purchase", status_code=201)
async def seed_purchase(body: PurchaseSeed, emulator: Emulator) -> JSON:
    """One call for demos: customer (created or reused), offer (likewise) and a fresh order."""
    store = emulator.store
    customer, _ = store.add_customer(
        body.email or defaults.DEFAULT_CUSTOMER_EMAIL,
        body.country or defaults.DEFAULT_CUSTOMER_COUNTRY,
        defaults.DEFAULT_CUSTOMER_LOCALE,
    )
    offer_id = _purchase_offer(store, body)
    order = store.create_order(
        customer_id=customer.id,
        offer_id=offer_id,
        country=body.country,
        payment_method_id=body.paymentMethodId,
    )
    return {
        "customerId": customer.id,
        "offerId": offer_id,
        "orderId": order.id,
        "order": order_json(store, order),
    }


# ------------------------------------------------------------------------ subscriptions


class SubscriptionSeed(_Body):
    """Body of POST /_emulator/subscriptions."""

    customerId: int
    offerId: str
    paymentDetailsId: int | None = None
    dateTo: str | int | None = Field(
        default=None, description="unix seconds or ISO-8601; default now + one period"
    )
    status: str = "active"


@router.post("/subscriptions", status_code=201)
async def create_subscription(body: SubscriptionSeed, emulator: Emulator) -> JSON:
    subscription = emulator.store.create_subscription(
        customer_id=body.customerId,
        offer_id=body.offerId,
        payment_details_id=body.paymentDetailsId,
        date_to=body.dateTo,
        status=body.status,
    )
    return operator_subscription_json(emulator.store, subscription)


@router.get("/subscriptions")
async def list_subscriptions(emulator: Emulator) -> JSON:
    store = emulator.store
    return {"items": [operator_subscription_json(store, s) for s in store.subscriptions.values()]}


# ---------------------------------------------------------------------------- inspection


@router.get("/payments")
async def list_payments(
    emulator: Emulator,
    order_id: Annotated[int | None, Query(alias="orderId")] = None,
    customer_id: Annotated[int | None, Query(alias="customerId")] = None,
    subscription_id: Annotated[int | None, Query(alias="subscriptionId")] = None,
) -> JSON:
    """Every payment the connector recorded, optionally filtered; ``duplicateOf`` names the
    earlier record a duplicate repeats (see the ledger)."""
    payments = emulator.store.payments_for(
        order_id=order_id, customer_id=customer_id, subscription_id=subscription_id
    )
    return {"items": [operator_payment_json(p) for p in payments]}


@router.get("/payment-details")
async def list_payment_details(
    emulator: Emulator, customer_id: Annotated[int | None, Query(alias="customerId")] = None
) -> JSON:
    store = emulator.store
    return {
        "items": [
            payment_details_json(store, d)
            for d in store.payment_details.values()
            if customer_id is None or d.customer_id == customer_id
        ]
    }


@router.get("/payment-details/{details_id}")
async def get_payment_details(details_id: str, emulator: Emulator) -> JSON:
    """One stored payment method (Core API 3.1 documents no read of single details)."""
    details = emulator.store.get_payment_details(parse_id(details_id, "Payment details"))
    return payment_details_json(emulator.store, details)


@router.get("/webhooks")
async def list_webhook_deliveries(
    emulator: Emulator,
    topic: str | None = None,
    status: str | None = None,
) -> JSON:
    """The delivery log: every webhook sent, with each attempt and its answer."""
    return {
        "items": [
            d.to_json()
            for d in emulator.webhooks.deliveries
            if (topic is None or d.topic == topic) and (status is None or d.status == status)
        ]
    }


@router.get("/ledger")
async def ledger(emulator: Emulator) -> JSON:
    """Payments with amounts in minor units, to compare with the gateway's ledger, and the
    duplicate records (``duplicateRecords``, ``duplicates``)."""
    return emulator.store.ledger()


@router.get("/billing/schedule")
async def billing_schedule(emulator: Emulator) -> JSON:
    """The renewal webhooks the billing engine will send next, earliest first."""
    return {
        "items": [
            {
                "subscriptionId": e.subscription_id,
                "action": e.action,
                "at": utc_iso(e.at),
                "cycleDue": utc_iso(e.due),
            }
            for e in emulator.billing.pending_events()
        ]
    }


class RefundRequest(_Body):
    """Body of POST /_emulator/payments/{id}/refund."""

    amount: float | None = Field(default=None, description="major units; default the rest")
    reason: str | None = None


@router.post("/payments/{payment_id}/refund")
async def request_refund(payment_id: str, body: RefundRequest, emulator: Emulator) -> JSON:
    """Send the ``refundPayment`` webhook, as a refund in Cleeng's dashboard would."""
    webhook, deliveries = await emulator.request_refund(
        parse_id(payment_id, "Payment"), body.amount, body.reason
    )
    return {"webhook": webhook, "deliveries": [d.to_json() for d in deliveries]}


# ----------------------------------------------------------------------- reset and faults


class ResetRequest(_Body):
    """Body of POST /_emulator/reset (optional)."""

    keepWebhookSubscriptions: bool = True


@router.post("/reset")
async def reset(emulator: Emulator, body: ResetRequest | None = None) -> JSON:
    """Forget all data, reset the clock, faults and delivery log, re-seed the defaults."""
    keep = body.keepWebhookSubscriptions if body else True
    emulator.reset(keep_webhook_subscriptions=keep)
    return {"reset": True, **_clock_json(emulator)}


@router.get("/faults")
async def get_faults(emulator: Emulator) -> JSON:
    return emulator.faults.snapshot()


@router.post("/faults")
async def set_faults(body: FaultSettings, emulator: Emulator) -> JSON:
    """Change the given fault settings; ``failNext`` rules are appended."""
    emulator.faults.configure(body)
    return emulator.faults.snapshot()


@router.delete("/faults")
async def clear_faults(emulator: Emulator) -> JSON:
    emulator.faults.reset()
    return emulator.faults.snapshot()


# ----------------------------------------------------------------------- dunning settings


class DunningUpdate(_Body):
    """Body of PUT /_emulator/dunning-settings."""

    paymentMethodId: int | None = Field(default=None, description="default: Mollie's")
    billingCycle: str | None = Field(
        default=None, description=f"one of {', '.join(BILLING_CYCLES)}; all when omitted"
    )
    authorizedFirst: bool = True
    paymentAttempts: list[int] = Field(default_factory=lambda: [72, 48, 24, 0], min_length=1)
    gracePeriodHours: int = Field(default=2, ge=0)


def _dunning_json(emulator: Emulator) -> JSON:
    def entry(settings: DunningSettings) -> JSON:
        return {
            "authorizedFirst": settings.authorized_first,
            "paymentAttempts": list(settings.payment_attempts),
            "gracePeriodHours": settings.grace_period_hours,
        }

    table = emulator.store.dunning
    return {
        "default": entry(table.default),
        "items": [
            {"paymentMethodId": method, "billingCycle": cycle, **entry(settings)}
            for method, cycle, settings in table.entries()
        ],
    }


@router.get("/dunning-settings")
async def get_dunning_settings(emulator: Emulator) -> JSON:
    return _dunning_json(emulator)


@router.put("/dunning-settings")
async def set_dunning_settings(body: DunningUpdate, emulator: Emulator) -> JSON:
    """Set the dunning action settings of one payment method for one or all billing cycles."""
    if body.billingCycle is not None and body.billingCycle not in BILLING_CYCLES:
        raise Unprocessable(f"Field 'billingCycle' must be one of {', '.join(BILLING_CYCLES)}")
    if any(hours < -body.gracePeriodHours for hours in body.paymentAttempts):
        raise Unprocessable(
            "Field 'paymentAttempts' may not go further past the due date than the grace period"
        )
    settings = DunningSettings(
        authorized_first=body.authorizedFirst,
        payment_attempts=tuple(sorted(set(body.paymentAttempts), reverse=True)),
        grace_period_hours=body.gracePeriodHours,
    )
    method = body.paymentMethodId or emulator.config.mollie_payment_method_id
    for cycle in [body.billingCycle] if body.billingCycle else BILLING_CYCLES:
        emulator.store.dunning.set(method, cycle, settings)
    return _dunning_json(emulator)
