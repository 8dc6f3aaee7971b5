"""What of the Cleeng emulator survives a restart (``--state-file``), and how it comes back.

Kept: customers, offers, orders, payments (with their refunds, so the ledger), payment
details, subscriptions and their billing progress, dunning settings, webhook subscriptions,
the webhook delivery log, the clock's offset and the id counters (so ids never repeat).
Not kept: fault settings (a test sets them for itself) and requests in flight.

A webhook still pending when the state was saved is due again at once after a restart, so a
webhook lost with the process is sent (again) rather than forgotten: the receiver may see it
twice, which Cleeng's own redelivery can do as well.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..state_file import DEFAULT_SAVE_INTERVAL_SECONDS, StateKeeper, load_and_keep, schema_of
from .dunning import DunningSettings
from .emulator import CleengEmulator
from .models import Customer, Offer, Order, Payment, PaymentDetails, Subscription, WebhookEndpoint
from .webhooks import DELIVERY_PENDING, Delivery, DeliveryAttempt

KIND = "cleeng-emulator"
SCHEMA = schema_of(
    Customer,
    Offer,
    Order,
    Payment,
    PaymentDetails,
    Subscription,
    WebhookEndpoint,
    DunningSettings,
    Delivery,
    DeliveryAttempt,
)


def capture(emulator: CleengEmulator) -> dict[str, Any]:
    """The emulator's state as plain data (the records themselves; pickling copies them)."""
    store = emulator.store
    return {
        "clock_offset": emulator.clock.offset,
        "next_ids": {kind: allocator._next for kind, allocator in store._ids.items()},
        "customers": store.customers,
        "offers": store.offers,
        "orders": store.orders,
        "payments": store.payments,
        "payment_details": store.payment_details,
        "subscriptions": store.subscriptions,
        "billing_progress": store.billing_progress,
        "dunning": store.dunning.entries(),
        "webhook_endpoints": store.webhook_endpoints,
        "deliveries": emulator.webhooks.deliveries,
    }


def restore(emulator: CleengEmulator, state: dict[str, Any]) -> None:
    """Put saved state back into a freshly built emulator (before it serves anything)."""
    store = emulator.store
    offset: timedelta = state["clock_offset"]
    # Only the offset is kept: real time went on while the emulator was down, as it would
    # have for a running one.
    emulator.clock._offset = offset
    for kind, next_id in state["next_ids"].items():
        if kind in store._ids:
            store._ids[kind]._next = next_id
    store.customers = state["customers"]
    store.offers = state["offers"]
    store.orders = state["orders"]
    store.payments = state["payments"]
    store.payments_by_subscription = {}
    store.payments_by_order = {}
    for payment in store.payments.values():
        store.payments_by_order.setdefault(payment.order_id, []).append(payment)
        if payment.subscription_id is not None:
            store.payments_by_subscription.setdefault(payment.subscription_id, []).append(payment)
    store.payment_details = state["payment_details"]
    store.subscriptions = state["subscriptions"]
    store.billing_progress = state["billing_progress"]
    store.dunning.clear()
    for method_id, cycle, settings in state["dunning"]:
        store.dunning.set(method_id, cycle, settings)
    store.webhook_endpoints = state["webhook_endpoints"]
    deliveries: list[Delivery] = state["deliveries"]
    due_now = time.monotonic()  # the saved deadlines were another process's monotonic clock
    for delivery in deliveries:
        if delivery.status == DELIVERY_PENDING:
            delivery.next_real = due_now
    webhooks = emulator.webhooks
    webhooks.deliveries = deliveries
    webhooks._ids = itertools.count(max((d.id for d in deliveries), default=0) + 1)
    store.notify()


def keeper_for(
    emulator: CleengEmulator,
    path: Path,
    interval_seconds: float = DEFAULT_SAVE_INTERVAL_SECONDS,
) -> StateKeeper:
    """Load `path` into the emulator if it exists, and return what keeps it saved."""
    store = emulator.store
    return load_and_keep(
        path,
        kind=KIND,
        schema=SCHEMA,
        capture=lambda: capture(emulator),
        restore=lambda state: restore(emulator, state),
        describe=lambda: (
            f"{len(store.customers)} customers, {len(store.orders)} orders, "
            f"{len(store.payments)} payments, {len(store.subscriptions)} subscriptions"
        ),
        interval_seconds=interval_seconds,
    )
