"""Request bodies. Ids arrive as strings or integers (Cleeng's own examples mix them); pydantic's
lax mode turns ``"123"`` into ``123``. Unknown keys are ignored, as a real API would."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clients.cleeng_contract import REFUND_TYPE_KEY, REFUNDED_AMOUNT_KEY

from .store import DetailsInput, PaymentPatch


class _Body(BaseModel):
    """Core API bodies ignore unknown keys, as a real API would."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class OrderCreate(_Body):
    """Body of POST /3.1/orders."""

    customerId: int
    offerId: str | None = None
    currency: str | None = None
    country: str | None = None
    paymentMethodId: int | None = None
    paymentOperation: str | None = None
    subscriptionId: int | None = None
    couponCode: str | None = None


class PaymentDetailsCreate(_Body):
    """Body of POST /3.1/payment_details (and inline `paymentDetails`)."""

    customerId: int | None = None
    token: str
    paymentMethodId: int
    paymentMethod: str | None = None
    paymentMethodSpecificParams: dict[str, Any] = Field(default_factory=dict)
    active: bool = True

    def to_input(self) -> DetailsInput:
        return DetailsInput(
            customer_id=self.customerId,
            token=self.token,
            payment_method_id=self.paymentMethodId,
            params=self.paymentMethodSpecificParams,
            active=self.active,
            payment_method=self.paymentMethod,
        )


class PaymentCreate(_Body):
    """Body of POST /3.1/payments."""

    orderId: int
    status: str
    paymentOperation: str | None = None
    paymentDetailsId: int | None = None
    paymentDetails: PaymentDetailsCreate | None = None
    externalPaymentId: str | None = None
    rejectedReason: str | None = None
    subscriptionId: int | None = None
    paymentMethod: str | None = None


class PaymentUpdate(_Body):
    """Body of PATCH /3.1/payments/{id}."""

    status: str | None = None
    externalPaymentId: str | None = None
    rejectedReason: str | None = None
    refundedReason: str | None = None
    refunded_amount: float | None = Field(default=None, alias=REFUNDED_AMOUNT_KEY)
    refund_type: str | None = Field(default=None, alias=REFUND_TYPE_KEY)
    orderId: int | None = None
    paymentOperation: str | None = None

    def to_patch(self) -> PaymentPatch:
        return PaymentPatch(
            status=self.status,
            external_payment_id=self.externalPaymentId,
            rejected_reason=self.rejectedReason,
            refunded_reason=self.refundedReason,
            refunded_amount=self.refunded_amount,
            refund_type=self.refund_type,
            order_id=self.orderId,
            payment_operation=self.paymentOperation,
        )


class SubscriptionUpdate(_Body):
    """Body of PATCH /3.1/subscriptions/{id}: one field at a time."""

    status: str | None = None
    expiresAt: int | str | None = None
    couponCode: str | None = None

    def changes(self) -> dict[str, Any]:
        """Only the keys the client actually sent."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}
