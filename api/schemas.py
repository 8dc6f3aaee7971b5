"""HTTP bodies of the shim's front-end API (pydantic at the edge)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.purchase import PurchaseView


def id_as_text(value: Any) -> Any:
    # Cleeng ids arrive as numbers or strings; normalise at the edge.
    if isinstance(value, bool):
        raise ValueError("must be an id (string or integer), not a boolean")
    if isinstance(value, int):
        return str(value)
    return value


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

    order_id: str = Field(alias="orderId", pattern=r"^[0-9]{1,18}$", description="Cleeng order id")
    redirect_url: str = Field(
        alias="redirectUrl",
        pattern=r"^https?://[^\s]+$",
        max_length=2000,
        description="Where Mollie sends the shopper after the checkout",
    )
    method: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]{2,32}$",
        description="Mollie payment method (creditcard, ideal, paypal...); omit to let the "
        "shopper choose",
    )

    _normalise = field_validator("order_id", mode="before")(id_as_text)


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
