"""Cleeng Core API 3.1 wire details the connector relies on, kept in one place.

Every value cites the reference page it comes from (developers.cleeng.com/reference/...), or
says [inferred] where the reference describes a field without naming its key. The full table,
with what the connector does where the reference is silent, is docs/cleeng-contract.md.
The Cleeng emulator never imports this module: it has its own reading of the reference, so a
wrong guess here fails a test instead of being shared by both sides.
"""

from __future__ import annotations

import re
from typing import Final

API_PREFIX: Final = "/3.1"

# Payment statuses ("create-a-payment", "update-a-payment").
PAYMENT_STATUS_CAPTURED: Final = "captured"
PAYMENT_STATUS_AUTHORIZED: Final = "authorized"
PAYMENT_STATUS_REJECTED: Final = "rejected"
PAYMENT_STATUS_CANCELLED: Final = "cancelled"
PAYMENT_STATUS_REFUNDED: Final = "refunded"

# paymentOperation values ("update-a-payment" lists all three).
PAYMENT_OPERATION_INITIAL: Final = "initial-payment"
PAYMENT_OPERATION_RECURRING: Final = "recurring-payment"
PAYMENT_OPERATION_FREE: Final = "initial-free-transaction"

# PATCH /3.1/payments/{id} with status refunded: the page describes "Refunded amount" (float
# > 0) and "Type of refund: refund or chargeback" without showing their keys [inferred].
REFUNDED_AMOUNT_KEY: Final = "refundedAmount"
REFUND_TYPE_KEY: Final = "refundType"
REFUND_TYPE_REFUND: Final = "refund"
REFUND_TYPE_CHARGEBACK: Final = "chargeback"
# refundedReason is required with status refunded; Cleeng's refundPayment webhook may carry
# none, so the connector says this.
DEFAULT_REFUNDED_REASON: Final = "Refund requested in Cleeng"

# POST /3.1/subscriptions/{id}/terminate ("terminate-subscription"): one required enum; the page
# shows its values, not its key [inferred: "terminationType", the name the only machine-readable
# 3.1 schema known to us gives it; see docs/cleeng-contract.md].
TERMINATION_REASON_KEY: Final = "terminationType"
TERMINATION_REASONS: Final = frozenset(
    {"paymentCancel", "userCancel", "publisherCancel", "policyViolation"}
)
# The connector terminates after Cleeng's dunning gave up on payment.
TERMINATION_REASON_PAYMENT: Final = "paymentCancel"
# How to terminate (setting CLEENG_TERMINATION_CALL): the PATCH {"status": "terminated"} the
# Connector Checklist and the Termination guide (docs/termination) name, the default; or
# POST .../terminate, whose body key is inferred.
TERMINATE_BY_POST: Final = "terminate"
TERMINATE_BY_PATCH: Final = "patch"

# Response wrappers: the reference pages show no response bodies we could read [inferred];
# the client accepts the wrapped and the bare form.
ORDER_WRAPPER_KEY: Final = "order"
PAYMENT_WRAPPER_KEY: Final = "payment"
PAYMENT_DETAILS_WRAPPER_KEY: Final = "data"
SUBSCRIPTION_WRAPPER_KEY: Final = "subscription"
LIST_ITEMS_KEY: Final = "items"

# Webhook signature: HMAC-SHA256 over the raw body; the header name is not documented.
DEFAULT_SIGNATURE_HEADER: Final = "X-Cleeng-Signature"

# "Orders expire after 24 hours unless the payment is captured" ("create-an-order").
ORDER_LIFETIME_SECONDS: Final = 24 * 3600

# int32 ids ("create-an-order", "create-payment-details", "update-a-payment" path).
INT32_MAX: Final = 2**31 - 1
_INT32_DIGITS: Final = re.compile(r"[0-9]{1,10}")


def parse_int32_id(value: object) -> int | None:
    """A Cleeng id the reference types int32: a positive JSON integer, or its ASCII decimal
    digits (Cleeng's own examples send ids both ways). None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _INT32_DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and 0 < value <= INT32_MAX:
        return value
    return None


# Webhook topics a connector handles ("payments-pre-configuration").
TOPIC_AUTHORISATION: Final = "subscriptionReadyForPaymentAuthorisation"
TOPIC_CAPTURE: Final = "subscriptionReadyForPaymentCapture"
TOPIC_TERMINATION: Final = "subscriptionReadyForTermination"
TOPIC_REFUND: Final = "refundPayment"
TOPIC_CAPTURE_PAYMENT: Final = "capturePayment"
TOPIC_DETAILS_DEACTIVATED: Final = "paymentDetailsDeactivated"
