"""Request bodies of the Core API, typed strictly as Cleeng's 3.1 reference documents them.

No lax coercion: an int32 field given as a JSON string (``"123"``) is refused, a string
field given as a JSON number is refused, integers outside int32 are refused, each with 422
and a message naming the field. Ids the reference types as *strings* (``orderId`` and
``paymentDetailsId`` of create-a-payment, ``subscriptionId`` of create-an-order and
create-a-payment) must be JSON strings of digits. JSON ``null`` on an optional field counts as
not sent. Unknown keys are ignored, as a real API would.

Type errors come from pydantic (rendered by :mod:`emulators.cleeng.errors`); the conditional
rules ("required when status is refunded", ...) are each model's :meth:`check`, run by the
route before anything is looked up or changed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from .errors import Unprocessable
from .reference import (
    CREATE_PAYMENT_STATUSES,
    INT32_MAX,
    INT32_MIN,
    PAYMENT_OPERATION_RECURRING,
    PAYMENT_OPERATIONS,
    PAYMENT_STATUS_REFUNDED,
    PAYMENT_STATUS_REJECTED,
    REFUND_TYPE_KEY,
    REFUND_TYPES,
    REFUNDED_AMOUNT_KEY,
    TERMINATE_REASON_KEY,
    TERMINATE_REASONS,
    UPDATE_PAYMENT_STATUSES,
)
from .store import DetailsInput, PaymentPatch

_DIGITS = re.compile(r"^[0-9]+$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def _numeric_id(value: str) -> str:
    if not _DIGITS.match(value):
        raise PydanticCustomError(
            "numeric_id", 'Input should be a string of digits (a Cleeng id, e.g. "123123123")'
        )
    return value


def _country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise PydanticCustomError("country", "Input should be a two-letter country code")
    return value


Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
PositiveInt32 = Annotated[int, Field(gt=0, le=INT32_MAX)]
# An id the reference types as a string: a JSON string of digits, e.g. "123123123".
IdString = Annotated[str, AfterValidator(_numeric_id)]
Country = Annotated[str, AfterValidator(_country)]


def one_of(field_name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Unprocessable(f"Field '{field_name}' must be one of {', '.join(allowed)}")
    return value


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


class _Body(BaseModel):
    """Strict JSON types; unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


# ------------------------------------------------------------------------------- orders


class OrderCreate(_Body):
    """Body of POST /3.1/orders (create-an-order)."""

    customerId: Int32
    offerId: str
    # Required, except that customerIP can stand in for them ("required conditionally when
    # currency or country not supplied").
    currency: str | None = None
    country: Country | None = None
    customerIP: str | None = None
    paymentMethodId: Int32 | None = None
    couponCode: str | None = None
    taxRate: str | None = None
    billingAddress: dict[str, Any] | None = None
    # "Required on pair with subscriptionId" and vice versa.
    paymentOperation: str | None = None
    subscriptionId: IdString | None = None
    buyAsAGift: bool | None = None
    deliveryDetails: dict[str, Any] | None = None

    def check(self) -> None:
        if self.customerIP is None:
            for name in ("currency", "country"):
                if getattr(self, name) is None:
                    raise Unprocessable(f"Field '{name}' is required unless 'customerIP' is given")
        else:
            try:
                ipaddress.ip_address(self.customerIP)
            except ValueError as exc:
                raise Unprocessable("Field 'customerIP' must be an IP address") from exc
        if self.paymentOperation is not None and self.subscriptionId is None:
            raise Unprocessable("Field 'subscriptionId' is required with 'paymentOperation'")
        if self.subscriptionId is not None and self.paymentOperation is None:
            raise Unprocessable("Field 'paymentOperation' is required with 'subscriptionId'")
        if self.paymentOperation is not None:
            one_of("paymentOperation", self.paymentOperation, PAYMENT_OPERATIONS)
            # [inferred] An order tied to a subscription is that subscription's renewal.
            if self.paymentOperation != PAYMENT_OPERATION_RECURRING:
                raise Unprocessable(
                    f"Field 'paymentOperation' must be {PAYMENT_OPERATION_RECURRING} "
                    "when 'subscriptionId' is given"
                )


# ---------------------------------------------------------------------- payment details


class PaymentDetailsCreate(_Body):
    """Body of POST /3.1/payment_details (create-payment-details), and the shape of an inline
    ``paymentDetails`` object."""

    customerId: Int32
    token: str
    paymentMethodId: PositiveInt32
    paymentMethodSpecificParams: dict[str, Any] | None = None
    active: bool | None = None  # default true

    def check(self, prefix: str = "") -> None:
        if _blank(self.token):
            raise Unprocessable(f"Field '{prefix}token' must not be empty")

    def to_input(self) -> DetailsInput:
        return DetailsInput(
            customer_id=self.customerId,
            token=self.token,
            payment_method_id=self.paymentMethodId,
            params=dict(self.paymentMethodSpecificParams or {}),
            active=True if self.active is None else self.active,
        )


# ----------------------------------------------------------------------------- payments


class PaymentCreate(_Body):
    """Body of POST /3.1/payments (create-a-payment)."""

    orderId: IdString
    status: str
    paymentOperation: str
    # "Required when paymentDetails are not created in the call".
    paymentDetailsId: IdString | None = None
    paymentDetails: PaymentDetailsCreate | None = None
    externalPaymentId: str | None = None
    rejectedReason: str | None = None
    # Required when paymentOperation is recurring-payment.
    subscriptionId: IdString | None = None

    def check(self) -> None:
        one_of("status", self.status, CREATE_PAYMENT_STATUSES)
        one_of("paymentOperation", self.paymentOperation, PAYMENT_OPERATIONS)
        if self.paymentDetailsId is None and self.paymentDetails is None:
            raise Unprocessable(
                "Field 'paymentDetailsId' is required unless 'paymentDetails' are given"
            )
        if self.paymentDetailsId is not None and self.paymentDetails is not None:
            # [inferred] Which one would Cleeng use? Refuse the ambiguity.
            raise Unprocessable("Give either 'paymentDetailsId' or 'paymentDetails', not both")
        if self.paymentDetails is not None:
            self.paymentDetails.check("paymentDetails.")
        if self.paymentOperation == PAYMENT_OPERATION_RECURRING and self.subscriptionId is None:
            raise Unprocessable(
                f"Field 'subscriptionId' is required for {PAYMENT_OPERATION_RECURRING}"
            )


class PaymentUpdate(_Body):
    """Body of PATCH /3.1/payments/{paymentId} (update-a-payment)."""

    status: str
    # Required when status is refunded.
    orderId: Int32 | None = None
    paymentOperation: str | None = None
    refundedReason: str | None = None
    # Required when status is rejected.
    rejectedReason: str | None = None
    externalPaymentId: str | None = None
    paymentDetails: PaymentDetailsCreate | None = None
    # Keys [inferred]; only with status refunded.
    refunded_amount: float | None = Field(
        default=None, alias=REFUNDED_AMOUNT_KEY, gt=0, allow_inf_nan=False
    )
    refund_type: str | None = Field(default=None, alias=REFUND_TYPE_KEY)

    def check(self) -> None:
        one_of("status", self.status, UPDATE_PAYMENT_STATUSES)
        if self.status == PAYMENT_STATUS_REFUNDED:
            for name in ("orderId", "paymentOperation", "refundedReason"):
                value = getattr(self, name)
                if value is None or (isinstance(value, str) and _blank(value)):
                    raise Unprocessable(f"Field '{name}' is required when status is refunded")
        else:
            for key, value in (
                (REFUNDED_AMOUNT_KEY, self.refunded_amount),
                (REFUND_TYPE_KEY, self.refund_type),
            ):
                if value is not None:
                    # [inferred] A refund amount or type on a non-refund is a client mistake.
                    raise Unprocessable(f"Field '{key}' is only allowed when status is refunded")
        if self.status == PAYMENT_STATUS_REJECTED and _blank(self.rejectedReason):
            raise Unprocessable("Field 'rejectedReason' is required when status is rejected")
        if self.paymentOperation is not None:
            one_of("paymentOperation", self.paymentOperation, PAYMENT_OPERATIONS)
        if self.refund_type is not None:
            one_of(REFUND_TYPE_KEY, self.refund_type, REFUND_TYPES)
        if self.paymentDetails is not None:
            self.paymentDetails.check("paymentDetails.")

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
            payment_details=self.paymentDetails.to_input() if self.paymentDetails else None,
        )


# ------------------------------------------------------------------------ subscriptions


class SubscriptionUpdate(_Body):
    """Body of PATCH /3.1/subscriptions/{subscriptionId} (update-subscription): exactly one of
    expiresAt, couponCode, paymentDetailsId, status."""

    status: str | None = None
    # Unix seconds or an ISO-8601 string [inferred]; checked by the store.
    expiresAt: Any = None
    couponCode: str | None = None
    paymentDetailsId: Int32 | None = None  # int32 like the other ids [inferred]

    def changes(self) -> dict[str, Any]:
        """Only the keys the client actually sent."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class SubscriptionTerminate(_Body):
    """Body of POST /3.1/subscriptions/{subscriptionId}/terminate (terminate-subscription)."""

    reason: str = Field(alias=TERMINATE_REASON_KEY)

    def check(self) -> None:
        one_of(TERMINATE_REASON_KEY, self.reason, TERMINATE_REASONS)
