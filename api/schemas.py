"""HTTP bodies of the shim's front-end API (pydantic at the edge), and its error bodies.

Every error answer is documented: `Problem` (`{"detail": "..."}`) for everything but 422, and
`ValidationProblem` for 422, whose entries name the field (`loc`) and what is wrong (`msg`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from clients.cleeng_contract import INT32_MAX, parse_int32_id
from domain.methods import FIRST_PAYMENT_METHODS, capability
from domain.purchase import PurchaseView

INT32_ID_PATTERN = r"^[1-9][0-9]{0,9}$"
# How Cleeng ids are documented here: Cleeng's own examples send them as strings or numbers;
# the reference types them int32 ("Create an order", "Create payment details").
CLEENG_ID_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": INT32_ID_PATTERN},
        {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
    ],
    "description": "Cleeng id: a positive int32, as a string or a number",
}

# Methods whose Mollie `first` payment leaves a mandate for renewals behind, as
# domain/methods.py knows them (cards, Apple Pay and PayPal, and the bank methods that create a
# SEPA Direct Debit mandate). Any other method could not pay for a subscription's renewals.
SUBSCRIPTION_METHODS: tuple[str, ...] = tuple(
    sorted(method for method, row in FIRST_PAYMENT_METHODS.items() if row.mandate_method)
)


def _subscription_method(value: str) -> str:
    row = capability(value)
    if row is None or row.mandate_method is None:
        raise ValueError(
            f"{value!r} cannot start a subscription (it leaves no mandate for renewals); "
            f"use one of: {', '.join(SUBSCRIPTION_METHODS)}"
        )
    return value


MandateMethod = Annotated[
    str,
    AfterValidator(_subscription_method),
    WithJsonSchema({"type": "string", "enum": list(SUBSCRIPTION_METHODS)}),
]

# The two fields every checkout the front end starts (a purchase, a card change) carries.
RedirectUrl = Annotated[
    str,
    Field(
        pattern=r"^https?://[^\s]+$",
        max_length=2000,
        description="Where Mollie sends the customer after the checkout: an address under one "
        "of the publisher origins the connector is configured with",
    ),
]
CheckoutMethod = Annotated[
    MandateMethod | None,
    Field(
        description="Mollie payment method; omit to let the customer choose. Only methods "
        "that leave a mandate for renewals behind",
    ),
]


def int32_id(value: Any) -> str | None:
    """A Cleeng id as canonical text if it is a positive int32 (string or integer), else None."""
    # As documented by INT32_ID_PATTERN, text ids carry no leading zero here.
    if isinstance(value, str) and value.startswith("0"):
        return None
    parsed = parse_int32_id(value)
    return None if parsed is None else str(parsed)


def _cleeng_id(value: Any) -> str:
    text = int32_id(value)
    if text is None:
        raise ValueError("must be a Cleeng id: a positive int32, as a string or a number")
    return text


# A string or an int in, canonical text out; documented as `CLEENG_ID_SCHEMA`.
CleengId = Annotated[str, BeforeValidator(_cleeng_id), WithJsonSchema(CLEENG_ID_SCHEMA)]


def field_error(location: tuple[str, ...], message: str, value: Any) -> RequestValidationError:
    """A 422 naming one field, in the same shape as FastAPI's own validation errors."""
    return RequestValidationError(
        [{"type": "value_error", "loc": location, "msg": message, "input": value}]
    )


class PurchaseRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "orderId": "812345678",
                    "redirectUrl": "https://shop.example.com/thank-you",
                    "method": "creditcard",
                }
            ]
        },
    )

    order_id: CleengId = Field(alias="orderId")
    redirect_url: RedirectUrl = Field(alias="redirectUrl")
    method: CheckoutMethod = None


class PurchaseResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "orderId": "812345678",
                    "status": "awaiting_payment",
                    "checkoutUrl": "http://127.0.0.1:8101/checkout/tr_4Hq7eP2x",
                    "molliePaymentId": "tr_4Hq7eP2x",
                    "cleengPaymentId": None,
                    "amount": {"minor": 999, "currency": "EUR"},
                }
            ]
        },
    )

    order_id: str = Field(alias="orderId")
    status: str
    checkout_url: str | None = Field(default=None, alias="checkoutUrl")
    mollie_payment_id: str | None = Field(default=None, alias="molliePaymentId")
    cleeng_payment_id: str | None = Field(default=None, alias="cleengPaymentId")
    amount: dict[str, Any] | None = None
    failure_reason: str | None = Field(default=None, alias="failureReason")
    error: str | None = None

    @classmethod
    def from_view(cls, view: PurchaseView) -> PurchaseResponse:
        amount = (
            {"minor": view.amount_minor, "currency": view.currency}
            if view.amount_minor is not None and view.currency
            else None
        )
        return cls(
            order_id=view.order_id,
            status=view.status,
            checkout_url=view.checkout_url,
            mollie_payment_id=view.mollie_payment_id,
            cleeng_payment_id=view.cleeng_payment_id,
            amount=amount,
            failure_reason=view.failure_reason,
            error=view.error,
        )


class Problem(BaseModel):
    """Error body: `detail` names the problem."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'orderId']")
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """422 body: one entry per field that is wrong."""

    detail: list[FieldProblem]


_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "Bearer: send Authorization: Bearer <key>",
        "schema": {"type": "string"},
    }
}
_RESPONSES: dict[int, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "Missing or invalid API key, or no customer established",
        "headers": _WWW_AUTHENTICATE,
    },
    403: {"model": Problem, "description": "The customer named is not the caller's customer"},
    404: {"model": Problem, "description": "Nothing of this customer's under this id"},
    422: {
        "model": ValidationProblem,
        "description": "A field is wrong: malformed, unknown order, redirectUrl outside the "
        "allowed origins",
    },
    502: {"model": Problem, "description": "Mollie refused the checkout"},
    503: {
        "model": Problem,
        "description": "Temporal or Cleeng unreachable, or the checkout could not be set up "
        "in time (Mollie or Cleeng kept failing); try again after Retry-After seconds",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    },
}


# Seconds a 202 (checkout still starting) asks the front end to wait before it polls.
POLL_AFTER_SECONDS = 2


def still_starting_response(model: type[BaseModel], poll_path: str) -> dict[int | str, Any]:
    """The documented 202 of a route that starts a checkout: not ready within the wait."""
    return {
        202: {
            "model": model,
            "description": "The checkout is still being set up (Mollie or Cleeng is slow or "
            "unreachable, it is retried in the background): the body is its current state, "
            f"`status: starting`, no checkoutUrl. Poll `GET {poll_path}` (the Location header) "
            "after Retry-After seconds until checkoutUrl appears; repeating this POST is safe "
            "and joins the same checkout.",
            "headers": {
                "Location": {"description": "Where to poll", "schema": {"type": "string"}},
                "Retry-After": {
                    "description": "Seconds to wait before polling",
                    "schema": {"type": "integer"},
                },
            },
        }
    }


def front_end_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a front-end route."""
    return {code: _RESPONSES[code] for code in codes}
