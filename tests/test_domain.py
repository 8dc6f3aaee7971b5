"""Money and tokens: the conversions every amount and every renewal depends on."""

from __future__ import annotations

import pytest

from domain.money import Money, MoneyFormatError
from domain.tokens import MollieToken


@pytest.mark.parametrize(
    ("value", "currency", "minor", "text"),
    [
        ("9.99", "EUR", 999, "9.99"),
        (9.99, "eur", 999, "9.99"),
        (0.1 + 0.2 - 0.3 + 12.34, "EUR", 1234, "12.34"),
        ("1000", "JPY", 1000, "1000"),
        (49.5, "EUR", 4950, "49.50"),
        ("0", "EUR", 0, "0.00"),
        ("1.234", "KWD", 1234, "1.234"),
    ],
)
def test_decimal_amounts_convert_exactly(
    value: str | float, currency: str, minor: int, text: str
) -> None:
    money = Money.from_decimal(round(value, 6) if isinstance(value, float) else value, currency)
    assert money.minor == minor
    assert money.currency == currency.upper()
    assert money.to_decimal_string() == text


@pytest.mark.parametrize(
    ("value", "currency"), [("9.999", "EUR"), ("1.5", "JPY"), ("abc", "EUR"), ("NaN", "EUR")]
)
def test_amounts_finer_than_the_minor_unit_are_refused(value: str, currency: str) -> None:
    with pytest.raises(MoneyFormatError):
        Money.from_decimal(value, currency)


def test_currency_must_be_an_iso_code() -> None:
    with pytest.raises(MoneyFormatError, match="3-letter"):
        Money(minor=100, currency="EURO")


def test_token_round_trips_and_foreign_tokens_are_not_ours() -> None:
    token = MollieToken(customer_id="cst_abc123", mandate_id="mdt_xyz789")
    assert MollieToken.parse(token.encode()) == token
    assert MollieToken.parse("tok_en") is None
    assert MollieToken.parse("adyen:8415698462516") is None
    assert MollieToken.parse("mollie:cst_a:tr_b") is None
