"""In-memory state of the emulated Cleeng account and the business rules that change it.

All mutation happens on the server's event loop from ``async`` handlers, so the store needs
no locks. Rules raise :class:`~emulators.cleeng.errors.CleengError` with the status and
message Cleeng would answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from . import config as defaults
from .clock import EmulatorClock, parse_moment, utc_iso
from .config import CleengEmulatorConfig
from .dunning import DunningTable
from .errors import NotFound, Unprocessable
from .models import (
    MOLLIE_GATEWAY,
    PERIODS,
    SUBSCRIPTION_ACTIVE,
    SUBSCRIPTION_STATUSES,
    SUBSCRIPTION_TERMINATED,
    Customer,
    Offer,
    Order,
    Payment,
    PaymentDetails,
    Subscription,
    WebhookEndpoint,
    add_period,
)
from .money import format_major, to_minor
from .reference import (
    ORDER_LIFETIME_SECONDS,
    PAYMENT_OPERATION_INITIAL,
    PAYMENT_OPERATION_RECURRING,
    PAYMENT_OPERATIONS,
    PAYMENT_STATUS_AUTHORIZED,
    PAYMENT_STATUS_CANCELLED,
    PAYMENT_STATUS_CAPTURED,
    PAYMENT_STATUS_REFUNDED,
    PAYMENT_STATUS_REJECTED,
    REFUND_TYPE_REFUND,
    REFUNDED_AMOUNT_KEY,
)

# A payment in one of these states means its order is paid: the order no longer expires, and
# any later record for it is counted as a duplicate (recorded, but it changes no subscription).
PAID_STATUSES: Final = (PAYMENT_STATUS_CAPTURED, PAYMENT_STATUS_AUTHORIZED, PAYMENT_STATUS_REFUNDED)
# Money was taken (and possibly given back) in these states.
SETTLED_STATUSES: Final = (PAYMENT_STATUS_CAPTURED, PAYMENT_STATUS_REFUNDED)
# Why a record is counted as a duplicate (see the ledger).
DUPLICATE_ORDER_PAID: Final = "orderAlreadyPaid"
DUPLICATE_SAME_OUTCOME: Final = "sameOutcomeRecorded"
TERMINATED_VIA_TERMINATE: Final = "terminate"
TERMINATED_VIA_PATCH: Final = "patch"
# Status changes PATCH /payments/{id} allows besides refunds and same-status re-PATCHes.
_TRANSITIONS: Final = {
    (PAYMENT_STATUS_AUTHORIZED, PAYMENT_STATUS_CAPTURED),
    (PAYMENT_STATUS_AUTHORIZED, PAYMENT_STATUS_REJECTED),
}


def one_of(field_name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Unprocessable(f"Field '{field_name}' must be one of {', '.join(allowed)}")
    return value


class IdAllocator:
    """Sequential 9-digit ids from a random start, so restarts do not reuse old ids."""

    def __init__(self, rng: random.Random) -> None:
        self._next = rng.randrange(100_000_000, 800_000_000)

    def next(self) -> int:
        value = self._next
        self._next += 1
        return value


@dataclass(kw_only=True)
class DetailsInput:
    """Payment details as POST /payment_details (or an inline ``paymentDetails``) give them."""

    customer_id: int
    token: str
    payment_method_id: int
    params: dict[str, Any] = field(default_factory=dict)
    active: bool = True


@dataclass(kw_only=True)
class PaymentPatch:
    """The fields of PATCH /payments/{id}; None means "not sent"."""

    status: str
    external_payment_id: str | None = None
    rejected_reason: str | None = None
    refunded_reason: str | None = None
    refunded_amount: float | None = None
    refund_type: str | None = None
    order_id: int | None = None
    payment_operation: str | None = None
    payment_details: DetailsInput | None = None


class EmulatorStore:
    """Customers, offers, orders, payments, payment details, subscriptions and webhook lists."""

    def __init__(self, config: CleengEmulatorConfig, clock: EmulatorClock) -> None:
        self.config = config
        self.clock = clock
        rng = random.Random(config.id_seed)
        self._ids = {
            kind: IdAllocator(rng)
            for kind in ("customer", "order", "payment", "details", "subscription", "offer")
        }
        self.dunning = DunningTable()
        self.webhook_endpoints: dict[str, list[WebhookEndpoint]] = {}
        self._changed = asyncio.Event()
        self.version = 0
        # Called with the details a new set of details replaced (the emulator sends webhooks).
        self.on_details_deactivated: Callable[[list[PaymentDetails]], None] | None = None
        self.clear(keep_webhook_endpoints=False)

    # ----------------------------------------------------------------- lifecycle and change

    def clear(self, *, keep_webhook_endpoints: bool) -> None:
        """Forget all data (id counters keep counting, so old ids never come back)."""
        self.customers: dict[int, Customer] = {}
        self.offers: dict[str, Offer] = {}
        self.orders: dict[int, Order] = {}
        self.payments: dict[int, Payment] = {}
        # Payments by the subscription they belong to: every subscription read looks at its
        # cycle's payments, and a scan of all payments made that grow with the store.
        self.payments_by_subscription: dict[int, list[Payment]] = {}
        self.payments_by_order: dict[int, list[Payment]] = {}
        self.payment_details: dict[int, PaymentDetails] = {}
        self.subscriptions: dict[int, Subscription] = {}
        # Billing progress: subscription id -> (due date of the cycle, keys of events sent).
        self.billing_progress: dict[int, tuple[datetime, set[str]]] = {}
        self.dunning.clear()
        self.dunning.seed(self.config.mollie_payment_method_id)
        if not keep_webhook_endpoints:
            self.webhook_endpoints = {}
        if self.config.seed_defaults:
            self.seed_defaults()
        self.notify()

    def seed_defaults(self) -> None:
        """One monthly offer and one customer, so a demo works out of the box."""
        self.add_customer(
            defaults.DEFAULT_CUSTOMER_EMAIL,
            defaults.DEFAULT_CUSTOMER_COUNTRY,
            defaults.DEFAULT_CUSTOMER_LOCALE,
        )
        self.upsert_offer(
            offer_id=defaults.DEFAULT_OFFER_ID,
            title=defaults.DEFAULT_OFFER_TITLE,
            price_minor=defaults.DEFAULT_OFFER_PRICE_MINOR,
            currency=defaults.DEFAULT_OFFER_CURRENCY,
            period=defaults.DEFAULT_OFFER_PERIOD,
        )

    def notify(self) -> None:
        """Wake everything waiting for a state change (the clock's settle wait)."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate` holds after some change, or `timeout` seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True

    # ------------------------------------------------------------------ customers and offers

    def add_customer(self, email: str, country: str, locale: str) -> tuple[Customer, bool]:
        """Create a customer, or return the one with this email (created flag second)."""
        for existing in self.customers.values():
            if existing.email.lower() == email.lower():
                return existing, False
        customer = Customer(
            id=self._ids["customer"].next(),
            email=email,
            country=country.upper(),
            locale=locale,
            created_at=self.clock.now_s(),
        )
        self.customers[customer.id] = customer
        self.notify()
        return customer, True

    def get_customer(self, customer_id: int) -> Customer:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"Customer {customer_id} not found")
        return customer

    def upsert_offer(
        self,
        *,
        offer_id: str | None,
        title: str,
        price_minor: int,
        currency: str,
        period: str | None,
        tax_rate: float = 0.0,
        country: str = "NL",
    ) -> tuple[Offer, bool]:
        """Create or replace an offer; a new id looks like Cleeng's ``S123456789_NL``."""
        if period is not None:
            one_of("period", period, PERIODS)
        if price_minor < 0:
            raise Unprocessable("Field 'price' must not be negative")
        if not 0 <= tax_rate < 1:
            raise Unprocessable("Field 'taxRate' must be between 0 and 1")
        if offer_id is None:
            offer_id = f"S{self._ids['offer'].next()}_{country.upper()}"
        existing = self.offers.get(offer_id)
        offer = Offer(
            offer_id=offer_id,
            title=title,
            price_minor=price_minor,
            currency=currency.upper(),
            period=period,
            tax_rate=tax_rate,
            created_at=existing.created_at if existing else self.clock.now_s(),
        )
        self.offers[offer_id] = offer
        self.notify()
        return offer, existing is None

    def get_offer(self, offer_id: str) -> Offer:
        offer = self.offers.get(offer_id)
        if offer is None:
            raise NotFound(f"Offer {offer_id} not found")
        return offer

    # ---------------------------------------------------------------------------- orders

    def create_order(
        self,
        *,
        customer_id: int,
        offer_id: str,
        currency: str | None = None,
        country: str | None = None,
        payment_method_id: int | None = None,
        payment_operation: str | None = None,
        subscription_id: int | None = None,
        coupon_code: str | None = None,
        tax_rate: str | None = None,
        customer_ip: str | None = None,
        billing_address: dict[str, Any] | None = None,
        buy_as_a_gift: bool | None = None,
        delivery_details: dict[str, Any] | None = None,
    ) -> Order:
        """An order priced from the offer, or from the subscription for a renewal."""
        customer = self.get_customer(customer_id)
        operation = one_of(
            "paymentOperation", payment_operation or PAYMENT_OPERATION_INITIAL, PAYMENT_OPERATIONS
        )
        cycle_due: datetime | None = None
        if operation == PAYMENT_OPERATION_RECURRING:
            if subscription_id is None:
                raise Unprocessable("Field 'subscriptionId' is required with 'paymentOperation'")
            subscription = self.get_subscription(subscription_id)
            if subscription.customer_id != customer_id:
                raise Unprocessable(
                    f"Subscription {subscription_id} does not belong to customer {customer_id}"
                )
            if offer_id != subscription.offer_id:
                raise Unprocessable(
                    f"Subscription {subscription_id} is for offer {subscription.offer_id}, "
                    f"not {offer_id}"
                )
            price_minor, price_currency = subscription.price_minor, subscription.currency
            cycle_due = subscription.date_to
            offer = self.offers.get(offer_id)
            title = offer.title if offer else offer_id
            offer_tax_rate = offer.tax_rate if offer else 0.0
        else:
            offer = self.get_offer(offer_id)
            price_minor, price_currency = offer.price_minor, offer.currency
            title, offer_tax_rate = offer.title, offer.tax_rate
        if currency is not None and currency.upper() != price_currency:
            raise Unprocessable(f"Field 'currency' must be {price_currency} for offer {offer_id}")
        now = self.clock.now_s()
        order = Order(
            id=self._ids["order"].next(),
            customer_id=customer.id,
            offer_id=offer_id,
            offer_title=title,
            price_minor=price_minor,
            currency=price_currency,
            country=(country or customer.country).upper(),
            payment_method_id=payment_method_id or self.config.mollie_payment_method_id,
            tax_rate=offer_tax_rate,
            created_at=now,
            expires_at=now + timedelta(seconds=ORDER_LIFETIME_SECONDS),
            payment_operation=operation,
            subscription_id=subscription_id if cycle_due is not None else None,
            cycle_due=cycle_due,
            coupon_code=coupon_code,
            tax_rate_requested=tax_rate,
            customer_ip=customer_ip,
            billing_address=billing_address,
            buy_as_a_gift=buy_as_a_gift,
            delivery_details=delivery_details,
        )
        self.orders[order.id] = order
        self.notify()
        return order

    def get_order(self, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise NotFound(f"Order {order_id} not found")
        return order

    def paying_record(self, order: Order) -> Payment | None:
        """The first payment that paid the order (captured, authorised or refunded), if any."""
        return next(
            (p for p in self.payments_for(order_id=order.id) if p.status in PAID_STATUSES), None
        )

    def order_paid(self, order: Order) -> bool:
        return self.paying_record(order) is not None

    # -------------------------------------------------------------------------- payments

    def get_payment(self, payment_id: int) -> Payment:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise NotFound(f"Payment {payment_id} not found")
        return payment

    def payments_for(
        self,
        *,
        order_id: int | None = None,
        customer_id: int | None = None,
        subscription_id: int | None = None,
    ) -> list[Payment]:
        candidates: Iterable[Payment] = self.payments.values()
        if order_id is not None:
            candidates = self.payments_by_order.get(order_id, [])
        elif subscription_id is not None:
            candidates = self.payments_by_subscription.get(subscription_id, [])
        return [
            p
            for p in candidates
            if (order_id is None or p.order_id == order_id)
            and (customer_id is None or p.customer_id == customer_id)
            and (subscription_id is None or p.subscription_id == subscription_id)
        ]

    def _details_for(self, customer_id: int, details: DetailsInput, field_name: str) -> None:
        """Check inline details before they are stored: the payment's customer, a token."""
        if details.customer_id != customer_id:
            raise Unprocessable(
                f"Field '{field_name}.customerId' must be the payment's customer {customer_id}"
            )
        self._validate_details(details)

    def create_payment(
        self,
        *,
        order_id: int,
        status: str,
        payment_operation: str,
        payment_details_id: int | None = None,
        payment_details: DetailsInput | None = None,
        external_payment_id: str | None = None,
        rejected_reason: str | None = None,
        subscription_id: int | None = None,
    ) -> Payment:
        """Record the outcome of a charge for an order (POST /3.1/payments).

        The reference documents no rule refusing a second record for an order, so one is
        accepted and stored; it is marked as a duplicate (the ledger counts those) and never
        starts or extends a subscription a second time.
        """
        order = self.get_order(order_id)
        operation = one_of("paymentOperation", payment_operation, PAYMENT_OPERATIONS)
        paying = self.paying_record(order)
        if paying is None and self.clock.now() > order.expires_at:
            raise Unprocessable(f"Order {order_id} has expired")

        subscription: Subscription | None = None
        if operation == PAYMENT_OPERATION_RECURRING:
            if subscription_id is None:
                raise Unprocessable(
                    f"Field 'subscriptionId' is required for {PAYMENT_OPERATION_RECURRING}"
                )
            if order.subscription_id is not None and subscription_id != order.subscription_id:
                raise Unprocessable(
                    f"Order {order_id} belongs to subscription {order.subscription_id}"
                )
            subscription = self.get_subscription(subscription_id)
            if subscription.customer_id != order.customer_id:
                raise Unprocessable(
                    f"Subscription {subscription_id} does not belong to customer "
                    f"{order.customer_id}"
                )

        details: PaymentDetails | None = None
        if payment_details_id is not None:
            details = self.get_payment_details(payment_details_id)
            if details.customer_id != order.customer_id:
                raise Unprocessable(
                    f"Payment details {details.id} do not belong to customer {order.customer_id}"
                )
        elif payment_details is not None:
            self._details_for(order.customer_id, payment_details, "paymentDetails")
            details, _ = self.add_payment_details(payment_details)
        elif subscription is not None and subscription.payment_details_id is not None:
            details = self.payment_details.get(subscription.payment_details_id)

        duplicate_of: int | None = None
        duplicate_reason: str | None = None
        if paying is not None:
            duplicate_of, duplicate_reason = paying.id, DUPLICATE_ORDER_PAID
        else:
            same = next(
                (
                    p
                    for p in self.payments_for(order_id=order.id)
                    if p.status == status and p.external_payment_id == external_payment_id
                ),
                None,
            )
            if same is not None:
                duplicate_of, duplicate_reason = same.id, DUPLICATE_SAME_OUTCOME

        now = self.clock.now_s()
        linked_subscription = subscription.id if subscription else None
        if linked_subscription is None and paying is not None:
            linked_subscription = paying.subscription_id
        payment = Payment(
            id=self._ids["payment"].next(),
            order_id=order.id,
            status=status,
            amount_minor=order.price_minor,
            currency=order.currency,
            customer_id=order.customer_id,
            offer_id=order.offer_id,
            payment_method=details.payment_method if details else "card",
            payment_operation=operation,
            created_at=now,
            updated_at=now,
            external_payment_id=external_payment_id,
            rejected_reason=rejected_reason,
            payment_details_id=details.id if details else None,
            subscription_id=linked_subscription,
            cycle_due=(order.cycle_due or subscription.date_to) if subscription else None,
            duplicate_of=duplicate_of,
            duplicate_reason=duplicate_reason,
        )
        self.payments[payment.id] = payment
        self.payments_by_order.setdefault(payment.order_id, []).append(payment)
        if payment.subscription_id is not None:
            self.payments_by_subscription.setdefault(payment.subscription_id, []).append(payment)
        if status == PAYMENT_STATUS_CAPTURED:
            self._on_captured(payment)
        self.notify()
        return payment

    def patch_payment(self, payment_id: int, patch: PaymentPatch) -> Payment:
        """Apply PATCH /3.1/payments/{id}: allowed transitions, refunds, reference updates."""
        payment = self.get_payment(payment_id)
        if patch.order_id is not None and patch.order_id != payment.order_id:
            raise Unprocessable(
                f"Payment {payment_id} belongs to order {payment.order_id}, not {patch.order_id}"
            )
        if patch.payment_operation is not None:
            one_of("paymentOperation", patch.payment_operation, PAYMENT_OPERATIONS)
            # [inferred] The operation names the payment being changed; another one is a
            # client mix-up.
            if patch.payment_operation != payment.payment_operation:
                raise Unprocessable(
                    f"Payment {payment_id} is a {payment.payment_operation}, "
                    f"not a {patch.payment_operation}"
                )
        status = patch.status
        refund_minor = 0
        if status == PAYMENT_STATUS_REFUNDED:
            refund_minor = self._refund_amount(payment, patch)
        elif status != payment.status and (payment.status, status) not in _TRANSITIONS:
            raise Unprocessable(
                f"Cannot change payment {payment_id} from {payment.status} to {status}"
            )
        if patch.payment_details is not None:
            self._details_for(payment.customer_id, patch.payment_details, "paymentDetails")

        # Validation passed: apply everything at once.
        if patch.payment_details is not None:
            details, _ = self.add_payment_details(patch.payment_details)
            payment.payment_details_id = details.id
            payment.payment_method = details.payment_method
        if patch.external_payment_id is not None:
            payment.external_payment_id = patch.external_payment_id
        if patch.rejected_reason is not None:
            payment.rejected_reason = patch.rejected_reason
        if patch.refunded_reason is not None:
            payment.refunded_reason = patch.refunded_reason
        previous = payment.status
        if status == PAYMENT_STATUS_REFUNDED:
            if refund_minor or previous != PAYMENT_STATUS_REFUNDED:
                payment.refunded_minor += refund_minor
                payment.refund_type = patch.refund_type or payment.refund_type or REFUND_TYPE_REFUND
            if refund_minor:
                payment.refunds.append(
                    (refund_minor, patch.refund_type or REFUND_TYPE_REFUND, self.clock.now_s())
                )
            payment.status = PAYMENT_STATUS_REFUNDED
        else:
            payment.status = status
        payment.updated_at = self.clock.now_s()
        if status == PAYMENT_STATUS_CAPTURED and previous != PAYMENT_STATUS_CAPTURED:
            self._on_captured(payment)
        self.notify()
        return payment

    def _refund_amount(self, payment: Payment, patch: PaymentPatch) -> int:
        """Minor units this PATCH refunds; partial refunds add up to at most the amount.

        Each PATCH with an amount refunds that amount; one without refunds what remains (so
        re-PATCHing a fully refunded payment changes nothing).
        """
        if payment.status not in SETTLED_STATUSES:
            raise Unprocessable(
                f"Cannot change payment {payment.id} from {payment.status} to "
                f"{PAYMENT_STATUS_REFUNDED}"
            )
        remaining = payment.amount_minor - payment.refunded_minor
        if patch.refunded_amount is None:
            return remaining
        try:
            amount = to_minor(patch.refunded_amount, payment.currency)
        except ValueError as exc:
            raise Unprocessable(f"Field '{REFUNDED_AMOUNT_KEY}' is invalid: {exc}") from exc
        if amount <= 0:
            raise Unprocessable(f"Field '{REFUNDED_AMOUNT_KEY}' must be positive")
        if amount > remaining:
            total = format_major(payment.refunded_minor + amount, payment.currency)
            raise Unprocessable(
                f"Refunded amount {total} would exceed the amount "
                f"{format_major(payment.amount_minor, payment.currency)} {payment.currency} "
                f"of payment {payment.id}"
            )
        return amount

    def cancel_payment(self, payment_id: int) -> Payment:
        """PATCH /payments/{id}/cancel: void an authorisation that was never captured."""
        payment = self.get_payment(payment_id)
        if payment.status == PAYMENT_STATUS_CANCELLED:
            return payment
        if payment.status != PAYMENT_STATUS_AUTHORIZED:
            raise Unprocessable(f"Cannot cancel payment {payment_id} with status {payment.status}")
        payment.status = PAYMENT_STATUS_CANCELLED
        payment.updated_at = self.clock.now_s()
        self.notify()
        return payment

    def _settled_by_another(self, payment: Payment) -> bool:
        return any(
            p.id != payment.id and p.status in SETTLED_STATUSES
            for p in self.payments_by_order.get(payment.order_id, [])
        )

    def _on_captured(self, payment: Payment) -> None:
        """Money was captured: start, extend or renew the subscription it pays for.

        An order buys one period once: when another record of the same order was already
        captured (a duplicate record), the subscription is left alone.
        """
        if self._settled_by_another(payment):
            return
        now = self.clock.now_s()
        if payment.payment_operation == PAYMENT_OPERATION_RECURRING:
            if payment.subscription_id is None:
                return
            renewed = self.subscriptions[payment.subscription_id]
            # A late capture for a cycle that was already paid must not extend twice.
            if payment.cycle_due is None or payment.cycle_due == renewed.date_to:
                renewed.date_to = add_period(renewed.date_to, renewed.period)
                renewed.cycle_started_at = now
            renewed.status = SUBSCRIPTION_ACTIVE
            if payment.payment_details_id is not None:
                renewed.payment_details_id = payment.payment_details_id
            return
        offer = self.offers.get(payment.offer_id)
        if offer is None or offer.period is None:
            return
        subscription = next(
            (
                s
                for s in self.subscriptions.values()
                if s.customer_id == payment.customer_id
                and s.offer_id == offer.offer_id
                and s.status != SUBSCRIPTION_TERMINATED
            ),
            None,
        )
        if subscription is None:
            subscription = self._new_subscription(
                customer_id=payment.customer_id,
                offer=offer,
                details=self.payment_details.get(payment.payment_details_id or -1),
                payment_method_id=self.orders[payment.order_id].payment_method_id,
                date_to=add_period(now, offer.period),
            )
        elif subscription.status == SUBSCRIPTION_ACTIVE and subscription.date_to > now:
            subscription.date_to = add_period(subscription.date_to, offer.period)
            subscription.cycle_started_at = now
        else:
            subscription.status = SUBSCRIPTION_ACTIVE
            subscription.date_from = now
            subscription.date_to = add_period(now, offer.period)
            subscription.cycle_started_at = now
        if payment.payment_details_id is not None:
            subscription.payment_details_id = payment.payment_details_id
            subscription.payment_method_id = self.payment_details[
                payment.payment_details_id
            ].payment_method_id
        if payment.subscription_id != subscription.id:
            if payment.subscription_id is not None:
                self.payments_by_subscription[payment.subscription_id].remove(payment)
            self.payments_by_subscription.setdefault(subscription.id, []).append(payment)
        payment.subscription_id = subscription.id

    # -------------------------------------------------------------------- payment details

    def _validate_details(self, details: DetailsInput) -> None:
        if not details.token.strip():
            raise Unprocessable("Field 'token' must not be empty")
        self.get_customer(details.customer_id)

    def add_payment_details(
        self, details: DetailsInput
    ) -> tuple[PaymentDetails, list[PaymentDetails]]:
        """Store details; returns them and the customer's details this deactivated.

        New active details replace the customer's other active ones (when configured):
        those are deactivated and their subscriptions move to the new details, so the next
        renewal charges the method the customer just chose.
        """
        self._validate_details(details)
        record = PaymentDetails(
            id=self._ids["details"].next(),
            customer_id=details.customer_id,
            token=details.token,
            payment_method_id=details.payment_method_id,
            payment_method="card" if "lastCardFourDigits" in details.params else "mollie",
            payment_gateway=(
                MOLLIE_GATEWAY
                if details.payment_method_id == self.config.mollie_payment_method_id
                else "other"
            ),
            params=dict(details.params),
            active=details.active,
            created_at=self.clock.now_s(),
        )
        deactivated: list[PaymentDetails] = []
        if record.active and self.config.deactivate_replaced_payment_details:
            for old in self.payment_details.values():
                if old.customer_id == record.customer_id and old.active:
                    old.active = False
                    deactivated.append(old)
            moved = {old.id for old in deactivated}
            for subscription in self.subscriptions.values():
                if subscription.payment_details_id in moved:
                    subscription.payment_details_id = record.id
                    subscription.payment_method_id = record.payment_method_id
        self.payment_details[record.id] = record
        self.notify()
        if deactivated and self.on_details_deactivated is not None:
            self.on_details_deactivated(deactivated)
        return record, deactivated

    def get_payment_details(self, details_id: int) -> PaymentDetails:
        details = self.payment_details.get(details_id)
        if details is None:
            raise NotFound(f"Payment details {details_id} not found")
        return details

    def delete_payment_details(self, details_id: int) -> None:
        self.get_payment_details(details_id)
        del self.payment_details[details_id]
        self.notify()

    def authorised_payments(self, details_id: int) -> list[Payment]:
        self.get_payment_details(details_id)
        return [
            p
            for p in self.payments.values()
            if p.payment_details_id == details_id and p.status == PAYMENT_STATUS_AUTHORIZED
        ]

    def subscription_ids_of(self, details_id: int) -> list[int]:
        return [s.id for s in self.subscriptions.values() if s.payment_details_id == details_id]

    # ---------------------------------------------------------------------- subscriptions

    def _new_subscription(
        self,
        *,
        customer_id: int,
        offer: Offer,
        details: PaymentDetails | None,
        payment_method_id: int,
        date_to: datetime,
        status: str = SUBSCRIPTION_ACTIVE,
    ) -> Subscription:
        assert offer.period is not None
        now = self.clock.now_s()
        subscription = Subscription(
            id=self._ids["subscription"].next(),
            customer_id=customer_id,
            offer_id=offer.offer_id,
            payment_details_id=details.id if details else None,
            payment_method_id=details.payment_method_id if details else payment_method_id,
            status=status,
            date_from=now,
            date_to=date_to,
            price_minor=offer.price_minor,
            currency=offer.currency,
            period=offer.period,
            created_at=now,
            cycle_started_at=now,
        )
        self.subscriptions[subscription.id] = subscription
        return subscription

    def create_subscription(
        self,
        *,
        customer_id: int,
        offer_id: str,
        payment_details_id: int | None,
        date_to: str | int | None = None,
        status: str = SUBSCRIPTION_ACTIVE,
    ) -> Subscription:
        """Seed a subscription directly (operator endpoint), e.g. one about to renew."""
        self.get_customer(customer_id)
        offer = self.get_offer(offer_id)
        if offer.period is None:
            raise Unprocessable(f"Offer {offer_id} is a one-off offer, not a subscription")
        one_of("status", status, SUBSCRIPTION_STATUSES)
        details = None
        if payment_details_id is not None:
            details = self.get_payment_details(payment_details_id)
            if details.customer_id != customer_id:
                raise Unprocessable(
                    f"Payment details {payment_details_id} do not belong to customer {customer_id}"
                )
        due = (
            self._parse_date("dateTo", date_to)
            if date_to is not None
            else add_period(self.clock.now_s(), offer.period)
        )
        subscription = self._new_subscription(
            customer_id=customer_id,
            offer=offer,
            details=details,
            payment_method_id=self.config.mollie_payment_method_id,
            date_to=due,
            status=status,
        )
        self.notify()
        return subscription

    def get_subscription(self, subscription_id: int) -> Subscription:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise NotFound(f"Subscription {subscription_id} not found")
        return subscription

    def patch_subscription(self, subscription_id: int, changes: dict[str, Any]) -> Subscription:
        """PATCH /subscriptions/{id}: exactly one of expiresAt, couponCode, paymentDetailsId,
        status. ``status: terminated`` is how the Termination guide terminates."""
        subscription = self.get_subscription(subscription_id)
        if not changes:
            raise Unprocessable(
                "One of 'expiresAt', 'couponCode', 'paymentDetailsId', 'status' is required"
            )
        if len(changes) > 1:
            raise Unprocessable(
                f"Only one parameter can be changed at a time, got {', '.join(sorted(changes))}"
            )
        (name, value), *_ = changes.items()
        if value is None:
            raise Unprocessable(f"Field '{name}' must not be null")
        if name == "status":
            new_status = one_of("status", str(value), SUBSCRIPTION_STATUSES)
            if subscription.status == SUBSCRIPTION_TERMINATED:
                if new_status != SUBSCRIPTION_TERMINATED:
                    raise Unprocessable(f"Subscription {subscription_id} is terminated")
            elif new_status == SUBSCRIPTION_TERMINATED:
                subscription.terminated_via = TERMINATED_VIA_PATCH
            subscription.status = new_status
        elif name == "expiresAt":
            subscription.date_to = self._parse_date("expiresAt", value)
            subscription.cycle_started_at = self.clock.now_s()
        elif name == "couponCode":
            subscription.coupon_code = str(value)
        elif name == "paymentDetailsId":
            details = self.get_payment_details(int(value))
            if details.customer_id != subscription.customer_id:
                raise Unprocessable(
                    f"Payment details {details.id} do not belong to customer "
                    f"{subscription.customer_id}"
                )
            subscription.payment_details_id = details.id
            subscription.payment_method_id = details.payment_method_id
        else:
            raise Unprocessable(f"Field '{name}' cannot be changed")
        self.notify()
        return subscription

    def terminate_subscription(self, subscription_id: int, reason: str) -> Subscription:
        """POST /subscriptions/{id}/terminate. Terminating a terminated subscription changes
        nothing and answers it again (idempotent); the first reason is kept."""
        subscription = self.get_subscription(subscription_id)
        if subscription.status != SUBSCRIPTION_TERMINATED:
            subscription.status = SUBSCRIPTION_TERMINATED
            subscription.termination_reason = reason
            subscription.terminated_via = TERMINATED_VIA_TERMINATE
            self.notify()
        return subscription

    def list_subscriptions(
        self,
        *,
        customer_id: int | None,
        offer_id: str | None,
        payment_method_id: int | None,
        statuses: list[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Subscription], int]:
        """GET /subscriptions: filtered, oldest first; nothing without a filter."""
        if customer_id is None and offer_id is None and payment_method_id is None:
            return [], 0
        matching = [
            s
            for s in sorted(self.subscriptions.values(), key=lambda s: s.id)
            if (customer_id is None or s.customer_id == customer_id)
            and (offer_id is None or s.offer_id == offer_id)
            and (payment_method_id is None or s.payment_method_id == payment_method_id)
            and (not statuses or s.status in statuses)
        ]
        return matching[offset : offset + limit], len(matching)

    @staticmethod
    def _parse_date(field_name: str, value: Any) -> datetime:
        try:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError("not a date")
            return parse_moment(value).replace(microsecond=0)
        except (ValueError, OverflowError, OSError) as exc:
            raise Unprocessable(
                f"Field '{field_name}' must be unix seconds or an ISO-8601 date"
            ) from exc

    def cycle_payments(self, subscription: Subscription) -> list[Payment]:
        """Recurring payments made for the subscription's current cycle."""
        return [
            p
            for p in self.payments_by_subscription.get(subscription.id, [])
            if p.payment_operation == PAYMENT_OPERATION_RECURRING
            and p.cycle_due == subscription.date_to
        ]

    def cycle_authorised(self, subscription: Subscription) -> bool:
        return any(
            p.status in (PAYMENT_STATUS_AUTHORIZED, *SETTLED_STATUSES)
            for p in self.cycle_payments(subscription)
        )

    def cycle_captured(self, subscription: Subscription) -> bool:
        return any(p.status in SETTLED_STATUSES for p in self.cycle_payments(subscription))

    def sent_events(self, subscription: Subscription) -> set[str]:
        """Keys of the dunning events already sent for the subscription's current cycle."""
        due, sent = self.billing_progress.get(subscription.id, (subscription.date_to, set()))
        if due != subscription.date_to:
            sent = set()
        self.billing_progress[subscription.id] = (subscription.date_to, sent)
        return sent

    # ---------------------------------------------------------------------------- ledger

    def ledger(self) -> dict[str, Any]:
        """Every payment with its money, and totals per currency, to compare with Mollie.

        Totals count every record Cleeng holds, duplicates included (that is what Cleeng
        would report). ``duplicateRecords`` counts the records that repeated a fact already
        recorded (an already paid order, or the same status and externalPaymentId for the
        order), and ``duplicates`` lists them, so a test can assert exactly-once recording.
        """
        items: list[dict[str, Any]] = []
        duplicates: list[dict[str, Any]] = []
        totals: dict[str, dict[str, int]] = {}
        for p in sorted(self.payments.values(), key=lambda p: p.id):
            settled = p.status in SETTLED_STATUSES
            net = p.amount_minor - p.refunded_minor if settled else 0
            items.append(
                {
                    "paymentId": p.id,
                    "orderId": p.order_id,
                    "customerId": p.customer_id,
                    "subscriptionId": p.subscription_id,
                    "externalPaymentId": p.external_payment_id,
                    "status": p.status,
                    "paymentOperation": p.payment_operation,
                    "currency": p.currency,
                    "amountMinor": p.amount_minor,
                    "amount": format_major(p.amount_minor, p.currency),
                    "refundedMinor": p.refunded_minor,
                    "refundedAmount": format_major(p.refunded_minor, p.currency),
                    "netMinor": net,
                    "createdAt": utc_iso(p.created_at),
                    "duplicateOf": p.duplicate_of,
                    "refunds": [
                        {
                            "amountMinor": minor,
                            "amount": format_major(minor, p.currency),
                            "refundType": kind,
                            "at": utc_iso(at),
                        }
                        for minor, kind, at in p.refunds
                    ],
                }
            )
            if p.duplicate_of is not None:
                duplicates.append(
                    {
                        "paymentId": p.id,
                        "orderId": p.order_id,
                        "duplicateOf": p.duplicate_of,
                        "reason": p.duplicate_reason,
                        "status": p.status,
                        "externalPaymentId": p.external_payment_id,
                        "createdAt": utc_iso(p.created_at),
                    }
                )
            total = totals.setdefault(
                p.currency,
                {"capturedMinor": 0, "refundedMinor": 0, "netMinor": 0, "authorizedMinor": 0},
            )
            if settled:
                total["capturedMinor"] += p.amount_minor
                total["refundedMinor"] += p.refunded_minor
                total["netMinor"] += net
            elif p.status == PAYMENT_STATUS_AUTHORIZED:
                total["authorizedMinor"] += p.amount_minor
        return {
            "items": items,
            "totals": totals,
            "duplicateRecords": len(duplicates),
            "duplicates": duplicates,
        }
