"""What each Mollie payment method can do for a subscription, in one table.

The facts, each with its source page, are in docs/mollie-contract.md ("Method capabilities");
`tests/test_method_capabilities.py` holds this module and that table together. Workflows decide
from here what they may ask Mollie for:

- the first payment of a subscription may be 0.00 only where `zero_first_payment` says so;
  elsewhere a free trial pays the smallest amount, refunded once it is paid;
- only a mandate whose method can hold funds is asked for `captureMode: manual`;
- a charge whose method stays `pending` for days is put in Cleeng as `authorized` at once
  (Cleeng's order would expire unpaid after 24 hours) and updated when Mollie settles it.

Pure data and functions: the workflow sandbox imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from domain.money import Money

# Mandate methods (a Mollie mandate's `method`).
MANDATE_CREDITCARD: Final = "creditcard"
MANDATE_DIRECTDEBIT: Final = "directdebit"
MANDATE_PAYPAL: Final = "paypal"


@dataclass(frozen=True, kw_only=True)
class MethodCapability:
    """One Mollie method as the first payment of a subscription."""

    method: str
    mandate_method: str | None
    """The mandate a paid `first` payment leaves; None: the method starts no subscription."""
    zero_first_payment: bool
    """Mollie accepts 0.00 for a `first` payment with this method."""
    manual_capture: bool
    """Mollie accepts `captureMode: manual` (a hold) for this method."""
    smallest_first_minor: int = 1
    """The least a paid first payment can be, in minor units, where 0.00 is refused: Mollie's
    minimum for the method (EUR; the SEPA methods take no other currency)."""


def _method(
    method: str,
    mandate: str | None,
    *,
    zero: bool = False,
    hold: bool = False,
    smallest_minor: int = 1,
) -> MethodCapability:
    return MethodCapability(
        method=method,
        mandate_method=mandate,
        zero_first_payment=zero,
        manual_capture=hold,
        smallest_first_minor=smallest_minor,
    )


# The methods a subscriber may pick for the first payment, and what they leave; one row per row
# of "Method capabilities" in docs/mollie-contract.md, where each value has its source or [?].
FIRST_PAYMENT_METHODS: Final[dict[str, MethodCapability]] = {
    capability.method: capability
    for capability in (
        _method("creditcard", MANDATE_CREDITCARD, zero=True, hold=True),
        # A card payment, but Mollie's Apple Pay page is silent on recurring: treated as a card
        # for the mandate, without asking for 0.00 or a hold.
        _method("applepay", MANDATE_CREDITCARD),
        _method("paypal", MANDATE_PAYPAL, zero=True),
        _method("ideal", MANDATE_DIRECTDEBIT),
        # Mollie's minimums: Bancontact EUR 0.02, EPS EUR 1.00 ("Method capabilities").
        _method("bancontact", MANDATE_DIRECTDEBIT, smallest_minor=2),
        _method("eps", MANDATE_DIRECTDEBIT, smallest_minor=100),
        _method("belfius", MANDATE_DIRECTDEBIT),
        _method("kbc", MANDATE_DIRECTDEBIT),
        _method("trustly", MANDATE_DIRECTDEBIT),
        # Gone from Mollie's method list and from its first payments for SEPA Direct Debit.
        _method("sofort", None),
        _method("giropay", None),
        # Not among the methods Mollie names for a first payment that leaves a SEPA mandate.
        _method("directdebit", None),
    )
}

# Mandate methods whose recurring charge Mollie can hold with `captureMode: manual`.
HOLDING_MANDATES: Final = frozenset({MANDATE_CREDITCARD})

# Mandate methods whose recurring charge can stay `pending` longer than Cleeng keeps an order
# (24 hours): SEPA Direct Debit settles a business day or more after its debit date.
SLOW_SETTLING_MANDATES: Final = frozenset({MANDATE_DIRECTDEBIT})

# The smallest amount a first payment can carry where 0.00 is not allowed, in minor units.
SMALLEST_FIRST_PAYMENT_MINOR: Final = 1


def capability(method: str | None) -> MethodCapability | None:
    """The method's row, or None for a method unknown here (or none chosen yet)."""
    return FIRST_PAYMENT_METHODS.get(method) if method else None


def zero_first_payment_allowed(method: str | None) -> bool:
    """May a `first` payment with this method be 0.00? With no method chosen, Mollie's checkout
    offers only the methods that take 0.00, so it may."""
    if method is None:
        return True
    row = capability(method)
    return row is not None and row.zero_first_payment


def mandate_can_hold(mandate_method: str | None) -> bool:
    """Can Mollie hold funds (manual capture) on a recurring charge of this mandate?"""
    return mandate_method in HOLDING_MANDATES


def mandate_settles_slowly(mandate_method: str | None) -> bool:
    """Can this mandate's recurring charge stay pending for days?"""
    return mandate_method in SLOW_SETTLING_MANDATES


def first_payment_amount(order_amount: Money, method: str | None) -> Money:
    """What a subscription's first payment charges: the order's amount; for a free trial 0.00
    where the method takes it, else the smallest amount the method takes (refunded once
    paid)."""
    if order_amount.minor > 0 or zero_first_payment_allowed(method):
        return order_amount
    row = capability(method)
    smallest = row.smallest_first_minor if row else SMALLEST_FIRST_PAYMENT_MINOR
    return Money(minor=smallest, currency=order_amount.currency)
