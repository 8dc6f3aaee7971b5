"""Cleeng Core API 3.1 as its published reference documents it: the emulator's own constants.

The emulator stands in for real Cleeng in CI, so it shares nothing with the connector's
client (no import from ``clients`` or ``domain``): a wrong guess in the client must fail a
test instead of being mirrored here. Every value below names the page of Cleeng's reference
(developers.cleeng.com/reference/<page>) or guide it comes from; ``[inferred]`` marks what
those pages do not spell out (a JSON key, a response wrapper, a header) and the emulator had
to choose.
"""

from __future__ import annotations

from typing import Final

# ------------------------------------------------------------------------------ basics

# Base URL https://api.cleeng.com/3.1 on every Core API 3.1 page.
API_PREFIX: Final = "/3.1"
# Authentication: every Core API request carries the publisher token in this header.
PUBLISHER_TOKEN_HEADER: Final = "X-Publisher-Token"
# Request schemas type ids such as customerId, paymentMethodId (create-an-order,
# create-payment-details) and paymentId (update-a-payment, path) as int32.
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

# ----------------------------------------------------------------------------- orders

# Connector Checklist: "orders expire after 24 hours unless the payment is captured".
ORDER_LIFETIME_SECONDS: Final = 24 * 3600
# create-an-order / get-an-order answer the order; the wrapper key is [inferred].
ORDER_WRAPPER_KEY: Final = "order"

# --------------------------------------------------------------------------- payments

# create-a-payment: status is one of rejected, authorized, cancelled, captured.
PAYMENT_STATUS_AUTHORIZED: Final = "authorized"
PAYMENT_STATUS_CAPTURED: Final = "captured"
PAYMENT_STATUS_REJECTED: Final = "rejected"
PAYMENT_STATUS_CANCELLED: Final = "cancelled"
# update-a-payment: status is one of rejected, captured, refunded.
PAYMENT_STATUS_REFUNDED: Final = "refunded"
CREATE_PAYMENT_STATUSES: Final = (
    PAYMENT_STATUS_REJECTED,
    PAYMENT_STATUS_AUTHORIZED,
    PAYMENT_STATUS_CANCELLED,
    PAYMENT_STATUS_CAPTURED,
)
UPDATE_PAYMENT_STATUSES: Final = (
    PAYMENT_STATUS_REJECTED,
    PAYMENT_STATUS_CAPTURED,
    PAYMENT_STATUS_REFUNDED,
)

# create-a-payment: paymentOperation initial-payment, recurring-payment;
# update-a-payment also lists initial-free-transaction (free trials).
PAYMENT_OPERATION_INITIAL: Final = "initial-payment"
PAYMENT_OPERATION_RECURRING: Final = "recurring-payment"
PAYMENT_OPERATION_FREE: Final = "initial-free-transaction"
PAYMENT_OPERATIONS: Final = (
    PAYMENT_OPERATION_INITIAL,
    PAYMENT_OPERATION_RECURRING,
    PAYMENT_OPERATION_FREE,
)

# update-a-payment: a refunded amount and a type of refund (refund | chargeback) are
# documented by meaning; the page does not show their keys: [inferred].
REFUNDED_AMOUNT_KEY: Final = "refundedAmount"
REFUND_TYPE_KEY: Final = "refundType"
REFUND_TYPE_REFUND: Final = "refund"
REFUND_TYPE_CHARGEBACK: Final = "chargeback"
REFUND_TYPES: Final = (REFUND_TYPE_REFUND, REFUND_TYPE_CHARGEBACK)

# create-a-payment / update-a-payment / cancel-a-payment answer
# {"success": true, "payment": {...}}: the wrapper key is [inferred].
PAYMENT_WRAPPER_KEY: Final = "payment"

# -------------------------------------------------------------------- payment details

# create-payment-details answers {"success": true, "data": {...}}: [inferred].
PAYMENT_DETAILS_WRAPPER_KEY: Final = "data"
# list-a-customer-authorised-payments (and list-subscriptions) answer a collection;
# the key holding its items is [inferred].
LIST_ITEMS_KEY: Final = "items"
# list-subscriptions: the total count next to the items is [inferred].
LIST_TOTAL_KEY: Final = "totalCount"

# ---------------------------------------------------------------------- subscriptions

# get-a-subscription / update-subscription answer {"success": true, "subscription": {...}}
# and refuse with {"success": false, "subscription": null, "message": ...}: [inferred].
SUBSCRIPTION_WRAPPER_KEY: Final = "subscription"
# update-subscription: "activating, stopping and terminating a subscription" (one copy of the
# page marks the status field deprecated in favour of the activate/cancel/terminate endpoints;
# the Termination guide, docs/termination, terminates with PATCH {"status": "terminated"}).
SUBSCRIPTION_ACTIVE: Final = "active"
SUBSCRIPTION_STOPPED: Final = "stopped"
SUBSCRIPTION_TERMINATED: Final = "terminated"
SUBSCRIPTION_STATUSES: Final = (SUBSCRIPTION_ACTIVE, SUBSCRIPTION_STOPPED, SUBSCRIPTION_TERMINATED)
# list-subscriptions: limit 1..100, default 20.
LIST_SUBSCRIPTIONS_LIMIT_DEFAULT: Final = 20
LIST_SUBSCRIPTIONS_LIMIT_MAX: Final = 100
# terminate-subscription: one required enum; the page shows its values but not its key:
# [inferred] "terminationType", as the only machine-readable 3.1 schema known names it.
TERMINATE_REASON_KEY: Final = "terminationType"
TERMINATE_REASONS: Final = ("paymentCancel", "userCancel", "publisherCancel", "policyViolation")

# ------------------------------------------------------------------------- webhooks

# webhook-subscription-topics: the topics a payment connector subscribes to.
TOPIC_AUTHORISATION: Final = "subscriptionReadyForPaymentAuthorisation"
TOPIC_CAPTURE: Final = "subscriptionReadyForPaymentCapture"
TOPIC_TERMINATION: Final = "subscriptionReadyForTermination"
TOPIC_REFUND: Final = "refundPayment"
TOPIC_CAPTURE_PAYMENT: Final = "capturePayment"
TOPIC_DETAILS_DEACTIVATED: Final = "paymentDetailsDeactivated"
TOPICS: Final = (
    TOPIC_AUTHORISATION,
    TOPIC_CAPTURE,
    TOPIC_TERMINATION,
    TOPIC_REFUND,
    TOPIC_CAPTURE_PAYMENT,
    TOPIC_DETAILS_DEACTIVATED,
)
# webhook-subscription-topics: the envelope is {broadcasterId, topic, data}.
ENVELOPE_BROADCASTER_KEY: Final = "broadcasterId"
ENVELOPE_TOPIC_KEY: Final = "topic"
ENVELOPE_DATA_KEY: Final = "data"
# Webhook verification is HMAC-SHA256 with a shared secret (webhook subscriptions); the
# header carrying the signature is not documented: [inferred].
DEFAULT_SIGNATURE_HEADER: Final = "X-Cleeng-Signature"
