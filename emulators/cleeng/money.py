"""Money at the edge: Cleeng JSON carries decimal major units, the emulator minor units."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 currencies without minor units among those Mollie settles; everything else has two.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "UGX", "XAF", "XOF"})


def exponent(currency: str) -> int:
    return 0 if currency.upper() in _ZERO_DECIMAL else 2


def to_major(minor: int, currency: str) -> float:
    """9.99 from 999 EUR; rounding keeps the float's repr exact (no 9.990000000001)."""
    digits = exponent(currency)
    return float(round(minor / 10**digits, digits))


def to_minor(major: float | int | str | Decimal, currency: str) -> int:
    """999 from 9.99 EUR; refuses negative amounts and more decimals than the currency has."""
    try:
        amount = Decimal(str(major))
    except InvalidOperation as exc:
        raise ValueError(f"{major!r} is not an amount") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{major!r} is not a non-negative amount")
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{major!r} has more decimals than {currency.upper()} allows")
    return int(scaled)


def format_major(minor: int, currency: str) -> str:
    """Fixed-decimal text ("9.99"), the way Mollie writes amounts, for ledger comparison."""
    digits = exponent(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"
