"""Turn classified service failures into Temporal errors with stable types."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Final

from temporalio.exceptions import ApplicationError

from clients.errors import FailureKind, ServiceError

# Stable ApplicationError types of business outcomes, for workflows and operators.
ORDER_NOT_FOUND: Final = "OrderNotFound"
CLEENG_REFUSED: Final = "CleengRefusedPayment"
ORDER_EXPIRED: Final = "CleengOrderExpired"
"""Cleeng's documented refusal: the order expired unpaid; money taken for it goes back."""
RECORD_NOT_ACCEPTED: Final = "CleengRecordNotAccepted"
"""Cleeng did not take a record for an undocumented reason: retried, never compensated."""
REFUND_UNRECORDABLE: Final = "RefundUnrecordable"
REFUND_REFUSED: Final = "RefundRefused"
REFUND_FAILED: Final = "RefundFailed"
REFUND_NOT_SETTLED: Final = "RefundNotSettled"
"""Mollie had not settled a refund by its deadline; Cleeng was not told it is refunded."""
CHARGEBACK_UNMATCHED: Final = "ChargebackUnmatched"
CYCLE_CHARGED_BEFORE: Final = "CycleChargedBefore"
"""A billing cycle's earlier run left a paid, pending or held Mollie payment: a new run never
charges again; an operator records what the earlier run left."""


def to_application_error(error: ServiceError) -> ApplicationError:
    """Permanent failures stop retries; `Retry-After` becomes the next retry delay."""
    delay = (
        timedelta(seconds=error.retry_after_seconds)
        if error.retry_after_seconds is not None
        else None
    )
    return ApplicationError(
        str(error),
        {"service": error.service, "kind": str(error.kind), "status": error.status},
        type=error.error_type,
        non_retryable=error.kind is FailureKind.PERMANENT,
        next_retry_delay=delay,
    )


@contextmanager
def service_errors_as_application_errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as error:
        raise to_application_error(error) from error
