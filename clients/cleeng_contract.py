"""The Cleeng wire details we could not confirm, kept in one place.

Cleeng's public documentation leaves some keys, wrappers and paths unstated. The connector's
Cleeng client and the Cleeng emulator both read them from here, so if real Cleeng turns out to
differ, one edit fixes both sides. Each constant says how sure we are: [C] confirmed,
[L] likely (meaning documented, key inferred), [?] a best guess.
"""

from __future__ import annotations

from typing import Final

API_PREFIX: Final = "/3.1"

# Payment statuses. The reference spells "authorized" [?]; tutorials say "authorised".
PAYMENT_STATUS_CAPTURED: Final = "captured"  # [C]
PAYMENT_STATUS_AUTHORIZED: Final = "authorized"  # [?] spelling
PAYMENT_STATUS_REJECTED: Final = "rejected"  # [C]
PAYMENT_STATUS_CANCELLED: Final = "cancelled"  # [C]
PAYMENT_STATUS_REFUNDED: Final = "refunded"  # [C]

PAYMENT_OPERATION_INITIAL: Final = "initial-payment"  # [C]
PAYMENT_OPERATION_RECURRING: Final = "recurring-payment"  # [C]
PAYMENT_OPERATION_FREE: Final = "initial-free-transaction"  # [C]

# PATCH /payments/{id} keys for partial refunds and the refund type [C meaning, ? keys].
REFUNDED_AMOUNT_KEY: Final = "refundedAmount"
REFUND_TYPE_KEY: Final = "refundType"
REFUND_TYPE_REFUND: Final = "refund"
REFUND_TYPE_CHARGEBACK: Final = "chargeback"

# Response wrappers [L/?]: the client also accepts a bare object where noted.
ORDER_WRAPPER_KEY: Final = "order"  # {"order": {...}} or bare [?]
PAYMENT_WRAPPER_KEY: Final = "payment"  # {"success": true, "payment": {...}} [L]
PAYMENT_DETAILS_WRAPPER_KEY: Final = "data"  # {"success": true, "data": {...}} [L]
SUBSCRIPTION_WRAPPER_KEY: Final = "subscription"  # {"success": true, "subscription": {...}} [L]
LIST_ITEMS_KEY: Final = "items"  # collections: {"items": [...]} [?]

# Lookup of payments already recorded for an order: GET /3.1/payments?orderId=N [?].
# Cleeng documents no such list; the connector uses it to stay idempotent on retries and
# treats 404/405 from it as "lookup unavailable".
PAYMENTS_BY_ORDER_QUERY_PARAM: Final = "orderId"

# Webhook signature: HMAC-SHA256 over the raw body; header name undocumented [?].
DEFAULT_SIGNATURE_HEADER: Final = "X-Cleeng-Signature"

# Order expiry: Cleeng orders expire 24 hours after creation unless paid [C].
ORDER_LIFETIME_SECONDS: Final = 24 * 3600

# Webhook topics a connector handles [C].
TOPIC_AUTHORISATION: Final = "subscriptionReadyForPaymentAuthorisation"
TOPIC_CAPTURE: Final = "subscriptionReadyForPaymentCapture"
TOPIC_TERMINATION: Final = "subscriptionReadyForTermination"
TOPIC_REFUND: Final = "refundPayment"
TOPIC_CAPTURE_PAYMENT: Final = "capturePayment"
TOPIC_DETAILS_DEACTIVATED: Final = "paymentDetailsDeactivated"
