"""Money as integer minor units plus an ISO 4217 currency.

Floats never hold money here. Cleeng speaks decimal major units (``9.99``) and Mollie decimal
strings with exactly the currency's digits (``"9.99"``, ``"1000"`` for JPY); both are converted
at their client's edge with the helpers below.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Currencies whose minor unit is not 1/100. Anything else uses two decimals.
_CURRENCY_EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "ISK": 0,
    "KRW": 0,
    "CLP": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def currency_exponent(currency: str) -> int:
    """Number of decimals of `currency`'s minor unit."""
    return _CURRENCY_EXPONENTS.get(currency.upper(), 2)


class MoneyFormatError(ValueError):
    """A decimal amount that cannot be expressed exactly in the currency's minor units."""


@dataclass(frozen=True, kw_only=True)
class Money:
    """An amount in minor units (cents) and its currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise MoneyFormatError(f"currency must be a 3-letter ISO code, got {self.currency!r}")

    @classmethod
    def from_decimal(cls, value: str | int | float | Decimal, currency: str) -> Money:
        """Parse a decimal major-unit amount exactly; reject sub-minor-unit precision."""
        try:
            # str() first: Decimal(9.99) would carry the float's binary error.
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise MoneyFormatError(f"not a decimal amount: {value!r}") from exc
        if not amount.is_finite():
            raise MoneyFormatError(f"not a finite amount: {value!r}")
        exponent = currency_exponent(currency)
        scaled = amount.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise MoneyFormatError(
                f"{value!r} has more than {exponent} decimals for {currency.upper()}"
            )
        return cls(minor=int(scaled), currency=currency.upper())

    def to_decimal(self) -> Decimal:
        exponent = currency_exponent(self.currency)
        return (Decimal(self.minor).scaleb(-exponent)).quantize(
            Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP
        )

    def to_decimal_string(self) -> str:
        """Exactly the currency's number of decimals, as Mollie wants it."""
        return format(self.to_decimal(), "f")

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"
