"""Lenient parsing of Cleeng's webhook payloads, strict about ids.

Cleeng's own examples mix strings and integers for the same id and send timestamps with `Z` or
with an offset; everything is normalised here: ids to decimal strings, times to UTC `...Z`.
Every id is checked against its documented type before anything starts, because ids end up in
Cleeng URLs and workflow ids: the Core API 3.1 reference types customer, order, payment,
payment details, payment method and subscription ids as int32, so anything but a positive
int32 (e.g. `"9/../../customers/1/payment_details#"`) is refused naming the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from clients.cleeng_contract import parse_int32_id

_OFFER_ID = r"^[A-Za-z0-9_-]{1,64}$"
_LOOSE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _as_int32_id(value: Any) -> Any:
    """A positive int32 given as a JSON integer or a string of digits → its decimal string."""
    parsed = parse_int32_id(value)
    if parsed is not None:
        return str(parsed)
    raise ValueError("must be a positive 32-bit integer id (a JSON integer or a string of digits)")


def _as_loose_id(value: Any) -> Any:
    """An id whose type Cleeng does not document (broadcasterId): a short token, no more."""
    if isinstance(value, bool):
        raise ValueError("must be an id (string or integer), not a boolean")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and _LOOSE_ID.fullmatch(value):
        return value
    raise ValueError("must be an id of letters, digits, '_' or '-' (at most 64)")


def _as_utc(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return value


CleengId = Annotated[str, BeforeValidator(_as_int32_id)]
LooseId = Annotated[str, BeforeValidator(_as_loose_id)]
CleengTime = Annotated[datetime, BeforeValidator(_as_utc)]


def iso_utc(moment: datetime) -> str:
    """One spelling per instant, so `billing:{id}:{date}` is the same for every webhook."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CleengEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    broadcaster_id: LooseId | None = Field(default=None, alias="broadcasterId")
    topic: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]


class DunningData(BaseModel):
    """`data` of the authorisation, capture and termination webhooks."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    subscription_id: CleengId = Field(alias="subscriptionId")
    offer_id: str = Field(alias="offerId", pattern=_OFFER_ID)
    customer_id: CleengId = Field(alias="customerId")
    expiration_date: CleengTime = Field(alias="expirationDate")
    dunning_attempt_date: CleengTime | None = Field(default=None, alias="dunningAttemptDate")
    payment_details_id: CleengId | None = Field(default=None, alias="paymentDetailsId")
    payment_method_id: CleengId | None = Field(default=None, alias="paymentMethodId")
    token: str | None = Field(default=None, max_length=256)
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    payment_country: str | None = Field(default=None, alias="paymentCountry", max_length=8)
    customer_email: str | None = Field(default=None, alias="customerEmail", max_length=320)


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """`data.expirationDate: Field required; ...` — names every bad field."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


class RefundData(BaseModel):
    """`data` of `refundPayment`: Cleeng publishes no payload for it, so every key here is
    inferred (docs/cleeng-contract.md); `request_key` is the digest of the whole `data`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    payment_id: CleengId = Field(alias="paymentId")
    external_payment_id: str = Field(alias="externalPaymentId", pattern=r"^tr_[A-Za-z0-9]{1,64}$")
    amount: Decimal = Field(gt=0, max_digits=14)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    order_id: CleengId | None = Field(default=None, alias="orderId")
    customer_id: CleengId | None = Field(default=None, alias="customerId")
    payment_method_id: CleengId | None = Field(default=None, alias="paymentMethodId")
    reason: str | None = Field(default=None, max_length=500)
    payment_operation: (
        Literal["initial-payment", "recurring-payment", "initial-free-transaction"] | None
    ) = Field(default=None, alias="paymentOperation")
    request_key: str = Field(default="", exclude=True)


class DeactivationData(BaseModel):
    """`data` of `paymentDetailsDeactivated`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    payment_details_id: CleengId = Field(alias="paymentDetailsId")
    customer_id: CleengId = Field(alias="customerId")
    payment_method_id: CleengId | None = Field(default=None, alias="paymentMethodId")
    token: str | None = Field(default=None, max_length=256)
