"""The payment methods of the emulated account, Mollie's "List payment methods" filters and
"Get payment method" (which each listed method's `_links.self` points to).

Written from docs.mollie.com: the reference pages "List payment methods"
(https://docs.mollie.com/reference/list-methods) and "Get payment method"
(https://docs.mollie.com/reference/get-method) for the queries and answers, and each
method's page (https://docs.mollie.com/docs/<method>, "Key information") for its countries,
currencies, limits and whether it can be the first payment of a recurring sequence. What
those pages leave open is marked [I] below and in docs/mollie-contract.md.

The account has every method enabled (`status: activated`): in test mode Mollie lists pending
and enabled methods alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import MollieError, unprocessable
from .money import SUPPORTED_CURRENCIES, Money, decimals, parse_amount

ONEOFF = "oneoff"
FIRST = "first"
RECURRING = "recurring"
SEQUENCE_TYPES = frozenset({ONEOFF, FIRST, RECURRING})
RESOURCES = frozenset({"payments", "orders"})
# The only wallet the reference names for `includeWallets`.
WALLETS = frozenset({"applepay"})
# "Possible values" of `locale` on the reference page.
LOCALES = frozenset(
    {
        "en_US", "en_GB", "nl_NL", "nl_BE", "fr_FR", "fr_BE", "de_DE", "de_AT", "de_CH",
        "es_ES", "ca_ES", "pt_PT", "it_IT", "nb_NO", "sv_SE", "fi_FI", "da_DK", "is_IS",
        "hu_HU", "pl_PL", "lv_LV", "lt_LT",
    }
)  # fmt: skip
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# "By default, only payment methods for the Euro currency are returned."
DEFAULT_CURRENCY = "EUR"

# Currencies Mollie takes PayPal payments in ("Multicurrency": every currency PayPal supports),
# as far as this emulator knows the currency at all.
_PAYPAL_CURRENCIES = frozenset(
    {
        "AUD", "BRL", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "JPY",
        "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RUB", "SEK", "SGD", "THB", "TWD", "USD",
    }
) & SUPPORTED_CURRENCIES  # fmt: skip
_EUR_ONLY = frozenset({"EUR"})


@dataclass(frozen=True, kw_only=True)
class PaymentMethod:
    """One method as its docs.mollie.com page describes it. Limits are in euro cents; other
    currencies get the same figures in their own units ([I]: Mollie converts at its rate)."""

    id: str
    description: str
    currencies: frozenset[str]
    countries: frozenset[str] | None
    """Billing countries the method serves; None: any country."""
    minimum_cents: int
    maximum_cents: int | None
    sequence_types: frozenset[str]
    """The sequence types the method is listed for."""
    zero_first_payment: bool = False
    """A `first` payment may be 0.00 (cards and PayPal only)."""
    wallet: bool = False
    """Listed only when `includeWallets` names it."""

    def minimum(self, sequence_type: str, currency: str) -> Money:
        if sequence_type == FIRST and self.zero_first_payment:
            return Money(currency, 0)
        return Money(currency, math.ceil(self.minimum_cents * _units_per_cent(currency)))

    def maximum(self, currency: str) -> Money | None:
        if self.maximum_cents is None:
            return None
        return Money(currency, math.floor(self.maximum_cents * _units_per_cent(currency)))


def _units_per_cent(currency: str) -> float:
    return float(10 ** decimals(currency)) / 100


_ALL = frozenset({ONEOFF, FIRST, RECURRING})
_ONEOFF_AND_FIRST = frozenset({ONEOFF, FIRST})

# In the order the emulator lists them (Mollie orders by the locale's preference).
METHODS: tuple[PaymentMethod, ...] = (
    # docs/credit-card: global, every currency; "EUR 0.00 (first payment), EUR 0.01 (regular
    # payment)" up to EUR 10,000; recurring and first payment: yes.
    PaymentMethod(
        id="creditcard",
        description="Card",
        currencies=SUPPORTED_CURRENCIES,
        countries=None,
        minimum_cents=1,
        maximum_cents=1_000_000,
        sequence_types=_ALL,
        zero_first_payment=True,
    ),
    # docs/apple-pay: a wallet (includeWallets=applepay); its first payment leaves a card
    # mandate, recurring charges then run as `creditcard`. A 0.00 first payment is documented
    # for cards and PayPal only, so not here [I].
    PaymentMethod(
        id="applepay",
        description="Apple Pay",
        currencies=SUPPORTED_CURRENCIES,
        countries=None,
        minimum_cents=1,
        maximum_cents=1_000_000,
        sequence_types=_ONEOFF_AND_FIRST,
        wallet=True,
    ),
    # docs/paypal: PayPal's currencies; a 0.00 first payment is allowed; leaves a PayPal
    # mandate. Maximum [I].
    PaymentMethod(
        id="paypal",
        description="PayPal",
        currencies=_PAYPAL_CURRENCIES,
        countries=None,
        minimum_cents=1,
        maximum_cents=1_000_000,
        sequence_types=_ALL,
        zero_first_payment=True,
    ),
    # docs/ideal: NL, EUR; first payment leaves a SEPA Direct Debit mandate.
    PaymentMethod(
        id="ideal",
        description="iDEAL",
        currencies=_EUR_ONLY,
        countries=frozenset({"NL"}),
        minimum_cents=1,
        maximum_cents=5_000_000,
        sequence_types=_ONEOFF_AND_FIRST,
    ),
    # docs/bancontact: BE, EUR, minimum EUR 0.02; leaves a SEPA Direct Debit mandate.
    PaymentMethod(
        id="bancontact",
        description="Bancontact",
        currencies=_EUR_ONLY,
        countries=frozenset({"BE"}),
        minimum_cents=2,
        maximum_cents=None,
        sequence_types=_ONEOFF_AND_FIRST,
    ),
    # docs/eps: AT, EUR, minimum EUR 1.00; leaves a SEPA Direct Debit mandate.
    PaymentMethod(
        id="eps",
        description="eps",
        currencies=_EUR_ONLY,
        countries=frozenset({"AT"}),
        minimum_cents=100,
        maximum_cents=5_000_000,
        sequence_types=_ONEOFF_AND_FIRST,
    ),
    # docs/belfius: BE, EUR; leaves a SEPA Direct Debit mandate.
    PaymentMethod(
        id="belfius",
        description="Belfius Pay Button",
        currencies=_EUR_ONLY,
        countries=frozenset({"BE"}),
        minimum_cents=1,
        maximum_cents=5_000_000,
        sequence_types=_ONEOFF_AND_FIRST,
    ),
    # docs/kbc: BE, EUR; leaves a SEPA Direct Debit mandate.
    PaymentMethod(
        id="kbc",
        description="KBC/CBC Payment Button",
        currencies=_EUR_ONLY,
        countries=frozenset({"BE"}),
        minimum_cents=1,
        maximum_cents=5_000_000,
        sequence_types=_ONEOFF_AND_FIRST,
    ),
    # docs/trustly: EUR in the emulator, the SEPA countries Trustly serves [I]; leaves a SEPA
    # Direct Debit mandate.
    PaymentMethod(
        id="trustly",
        description="Trustly",
        currencies=_EUR_ONLY,
        countries=frozenset(
            {"AT", "BE", "DE", "EE", "ES", "FI", "LT", "LV", "NL", "PL", "SE", "SK"}
        ),
        minimum_cents=1,
        maximum_cents=1_000_000,
        sequence_types=_ONEOFF_AND_FIRST,
    ),
    # docs/bank-transfer: EUR; one-off only (no mandate).
    PaymentMethod(
        id="banktransfer",
        description="Bank transfer",
        currencies=_EUR_ONLY,
        countries=None,
        minimum_cents=1,
        maximum_cents=100_000_000,
        sequence_types=frozenset({ONEOFF}),
    ),
    # docs/przelewy24: PL, PLN and EUR; one-off only.
    PaymentMethod(
        id="przelewy24",
        description="Przelewy24",
        currencies=frozenset({"PLN", "EUR"}),
        countries=frozenset({"PL"}),
        minimum_cents=1,
        maximum_cents=1_200_000,
        sequence_types=frozenset({ONEOFF}),
    ),
    # docs/sepa-direct-debit: EUR; charges an existing mandate, so listed for `recurring` only.
    PaymentMethod(
        id="directdebit",
        description="SEPA Direct Debit",
        currencies=_EUR_ONLY,
        countries=None,
        minimum_cents=1,
        maximum_cents=100_000,
        sequence_types=frozenset({RECURRING}),
    ),
)


@dataclass(frozen=True, kw_only=True)
class MethodQuery:
    """The filters of one "List payment methods" request, checked."""

    sequence_type: str
    amount: Money | None
    currency: str
    billing_country: str | None
    wallets: frozenset[str]
    locale: str | None
    resource: str


def parse_query(params: Mapping[str, str]) -> MethodQuery:
    """The query string of `GET /v2/methods`; a malformed value is a 422 naming it."""
    sequence_type = params.get("sequenceType", ONEOFF)
    if sequence_type not in SEQUENCE_TYPES:
        options = ", ".join(sorted(SEQUENCE_TYPES))
        raise unprocessable(f"The 'sequenceType' must be one of: {options}.", "sequenceType")
    amount = _amount(params)
    billing_country = params.get("billingCountry")
    if billing_country is not None and not _COUNTRY.match(billing_country):
        raise unprocessable(
            f"The billing country '{billing_country}' is not an ISO 3166-1 alpha-2 code.",
            "billingCountry",
        )
    locale = params.get("locale")
    if locale is not None and locale not in LOCALES:
        raise unprocessable(f"The locale '{locale}' is invalid.", "locale")
    resource = params.get("resource", "payments")
    if resource not in RESOURCES:
        raise unprocessable("The 'resource' must be one of: orders, payments.", "resource")
    return MethodQuery(
        sequence_type=sequence_type,
        amount=amount,
        currency=amount.currency if amount else DEFAULT_CURRENCY,
        billing_country=billing_country,
        wallets=_wallets(params.get("includeWallets")),
        locale=locale,
        resource=resource,
    )


def _amount(params: Mapping[str, str]) -> Money | None:
    value, currency = params.get("amount[value]"), params.get("amount[currency]")
    if "amount" in params or (value is None) != (currency is None):
        raise unprocessable(
            "The amount is invalid: send both amount[value] and amount[currency].", "amount"
        )
    if value is None:
        return None
    return parse_amount({"value": value, "currency": currency})


def _wallets(raw: str | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    named = frozenset(part.strip() for part in raw.split(","))
    if not named <= WALLETS:
        unknown = ", ".join(sorted(named - WALLETS))
        raise unprocessable(f"Unknown wallet in 'includeWallets': {unknown}.", "includeWallets")
    return named


def parse_single_query(params: Mapping[str, str]) -> MethodQuery:
    """The query string of `GET /v2/methods/{id}` ("Get payment method"): `currency` for the
    limits, `locale`, and [I] `sequenceType` for which minimum applies."""
    sequence_type = params.get("sequenceType", ONEOFF)
    if sequence_type not in SEQUENCE_TYPES:
        options = ", ".join(sorted(SEQUENCE_TYPES))
        raise unprocessable(f"The 'sequenceType' must be one of: {options}.", "sequenceType")
    currency = params.get("currency", DEFAULT_CURRENCY)
    if currency not in SUPPORTED_CURRENCIES:
        raise unprocessable(f"The currency '{currency}' is not supported.", "currency")
    locale = params.get("locale")
    if locale is not None and locale not in LOCALES:
        raise unprocessable(f"The locale '{locale}' is invalid.", "locale")
    return MethodQuery(
        sequence_type=sequence_type,
        amount=None,
        currency=currency,
        billing_country=None,
        wallets=WALLETS,
        locale=locale,
        resource="payments",
    )


def method_by_id(method_id: str, query: MethodQuery) -> PaymentMethod:
    """One method by id; 404 for a method the account does not have, and [I] 422 naming
    `currency` for a currency the method does not take ("we will return an error")."""
    found = next((m for m in METHODS if m.id == method_id), None)
    if found is None:
        raise MollieError(404, f"No method exists with token {method_id}.")
    if query.currency not in found.currencies:
        raise unprocessable(
            f"The currency '{query.currency}' is not supported by {found.description}.",
            "currency",
        )
    return found


def available(query: MethodQuery) -> list[PaymentMethod]:
    """The methods the account offers for this request, in the emulator's order."""
    return [method for method in METHODS if _offered(method, query)]


def _offered(method: PaymentMethod, query: MethodQuery) -> bool:
    if query.sequence_type not in method.sequence_types:
        return False
    if method.wallet and method.id not in query.wallets:
        return False
    if query.currency not in method.currencies:
        return False
    if (
        query.billing_country is not None
        and method.countries is not None
        and query.billing_country not in method.countries
    ):
        # [I] The reference says the billing country is used to check the customer's
        # eligibility; the emulator applies it to the country-bound methods.
        return False
    if query.amount is None:
        return True
    if query.amount.minor < method.minimum(query.sequence_type, query.currency).minor:
        return False
    ceiling = method.maximum(query.currency)
    return ceiling is None or query.amount.minor <= ceiling.minor
