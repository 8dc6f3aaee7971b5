"""Mollie amounts (`{"currency": "EUR", "value": "10.00"}`) as integer minor units."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import unprocessable

# Currencies Mollie settles without a fractional part; every other one has two decimals.
_ZERO_DECIMAL = frozenset({"JPY", "ISK"})
SUPPORTED_CURRENCIES = frozenset(
    {
        "AED", "AUD", "BGN", "BRL", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF",
        "ILS", "ISK", "JPY", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "RUB", "SEK",
        "SGD", "THB", "TWD", "USD", "ZAR",
    }
)  # fmt: skip
_VALUE = re.compile(r"^(\d+)(?:\.(\d+))?$")


def decimals(currency: str) -> int:
    return 0 if currency in _ZERO_DECIMAL else 2


@dataclass(frozen=True)
class Money:
    """An amount in minor units; never a float, so sums and comparisons are exact."""

    currency: str
    minor: int

    def to_json(self) -> dict[str, str]:
        places = decimals(self.currency)
        sign = "-" if self.minor < 0 else ""
        units, cents = divmod(abs(self.minor), 10**places)
        value = f"{units}.{cents:0{places}d}" if places else str(units)
        return {"currency": self.currency, "value": f"{sign}{value}"}

    def whole_units(self) -> int | None:
        """The amount in major units when it has no fractional part (for magic amounts)."""
        units, rest = divmod(self.minor, 10 ** decimals(self.currency))
        return units if rest == 0 else None

    def __add__(self, other: Money) -> Money:
        return Money(self.currency, self.minor + other.minor)

    def __sub__(self, other: Money) -> Money:
        return Money(self.currency, self.minor - other.minor)

    def negated(self) -> Money:
        return Money(self.currency, -self.minor)


def zero(currency: str) -> Money:
    return Money(currency, 0)


def parse_amount(raw: Any, field: str = "amount") -> Money:
    """Validate an amount object the way Mollie does and convert it; 422 names the field."""
    if not isinstance(raw, dict):
        raise unprocessable(
            f"The {field} is invalid: expected an object with currency and value.", field
        )
    currency = raw.get("currency")
    value = raw.get("value")
    if not isinstance(currency, str) or not currency:
        raise unprocessable(f"The {field} currency is missing.", field)
    if currency not in SUPPORTED_CURRENCIES:
        raise unprocessable(f"The currency '{currency}' is not supported.", field)
    if not isinstance(value, str):
        raise unprocessable(f'The {field} value must be a string, for example "10.00".', field)
    match = _VALUE.match(value)
    places = decimals(currency)
    fraction = match.group(2) if match else None
    if match is None or len(fraction or "") != places:
        shape = "without decimals" if places == 0 else f"with exactly {places} decimals"
        raise unprocessable(
            f"The {field} value '{value}' is invalid: {currency} amounts are written {shape}.",
            field,
        )
    minor = int(match.group(1)) * 10**places + int(fraction or "0")
    return Money(currency, minor)
