"""What of the Mollie emulator survives a restart (``--state-file``), and how it comes back.

Kept: customers (with the outcomes forced for their next charges), mandates, payments with
their captures, refunds and chargebacks (so the ledger) and what is scheduled for them (a
pending debit's settlement, a paid one's reversal), each payment's webhookUrl and its webhook
delivery log, the answers remembered for Idempotency-Keys, and the clock's offset. Mollie ids
are random, so there is no counter to keep.
Not kept: fault settings (a test sets them for itself), the request journal, and requests in
flight (an Idempotency-Key whose first request had not finished is forgotten, so its retry does
the work again, as after a server error).

A webhook attempt that was under way when the state was saved is due again after a restart:
the receiver may get it twice, as it may from Mollie.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..state_file import DEFAULT_SAVE_INTERVAL_SECONDS, StateKeeper, load_and_keep, schema_of
from .emulator import MollieEmulator
from .idempotency import StoredResponse
from .models import Capture, Chargeback, Customer, Mandate, Outcome, Payment, Refund, Reversal
from .money import Money
from .webhooks import Attempt, Delivery

KIND = "mollie-emulator"
SCHEMA = schema_of(
    Customer,
    Mandate,
    Payment,
    Capture,
    Refund,
    Chargeback,
    Outcome,
    Reversal,
    Money,
    Delivery,
    Attempt,
    StoredResponse,
)


def capture(emulator: MollieEmulator) -> dict[str, Any]:
    """The emulator's state as plain data (the records themselves; pickling copies them)."""
    store = emulator.store
    return {
        "clock_offset": emulator.clock.offset,
        "customers": store.customers,
        "mandates": store.mandates,
        "payments": store.payments,
        "captures": store.captures,
        "refunds": store.refunds,
        "chargebacks": store.chargebacks,
        # The task of an attempt in flight belongs to this process; without it the delivery
        # is simply due again.
        "deliveries": [dataclasses.replace(d, task=None) for d in emulator.webhooks.deliveries],
        "idempotency": {
            key: entry
            for key, entry in emulator.idempotency._entries.items()
            if not entry.in_flight
        },
    }


def restore(emulator: MollieEmulator, state: dict[str, Any]) -> None:
    """Put saved state back into a freshly built emulator (before it serves anything)."""
    offset: timedelta = state["clock_offset"]
    # Only the offset is kept: real time went on while the emulator was down, as it would
    # have for a running one.
    emulator.clock.raise_offset_to(offset)
    store = emulator.store
    for table, saved in (
        (store.customers, state["customers"]),
        (store.mandates, state["mandates"]),
        (store.payments, state["payments"]),
        (store.captures, state["captures"]),
        (store.refunds, state["refunds"]),
        (store.chargebacks, state["chargebacks"]),
    ):
        table.clear()
        table.update(saved)
    store.reindex()
    emulator.webhooks.restore(state["deliveries"])
    emulator.idempotency._entries.update(state["idempotency"])


def keeper_for(
    emulator: MollieEmulator,
    path: Path,
    interval_seconds: float = DEFAULT_SAVE_INTERVAL_SECONDS,
) -> StateKeeper:
    """Load `path` into the emulator if it exists, and return what keeps it saved."""
    return load_and_keep(
        path,
        kind=KIND,
        schema=SCHEMA,
        capture=lambda: capture(emulator),
        restore=lambda state: restore(emulator, state),
        describe=lambda: (
            f"{len(emulator.store.customers)} customers, {len(emulator.store.payments)} "
            f"payments, {len(emulator.webhooks.deliveries)} webhook deliveries"
        ),
        interval_seconds=interval_seconds,
    )
