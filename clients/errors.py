"""One place that decides what a failure from Cleeng or Mollie means.

Every client raises `ServiceError` with a `FailureKind`; activities turn that into a Temporal
`ApplicationError` (see `activities.errors`), so retry decisions are made here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    RETRYABLE = "retryable"
    """Transient: 409 in flight, 429, 5xx, a failed GET. Temporal retries."""
    PERMANENT = "permanent"
    """The request is wrong or refused for good (400/401/403/404/422): retrying cannot help."""
    UNKNOWN_OUTCOME = "unknown_outcome"
    """A write whose reply was lost: resolve by lookup, then retry with the same key."""


class ServiceError(Exception):
    """A classified failure talking to an external service."""

    def __init__(
        self,
        service: str,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.kind = kind
        self.message = message
        self.status = status
        self.field = field
        self.retry_after_seconds = retry_after_seconds

    @property
    def retryable(self) -> bool:
        """Worth trying again: transient, or a write whose outcome is unknown."""
        return self.kind in (FailureKind.RETRYABLE, FailureKind.UNKNOWN_OUTCOME)

    @property
    def error_type(self) -> str:
        """Stable name callers and operators can switch on, e.g. `CleengPermanent`."""
        return f"{self.service.capitalize()}{self.kind.title().replace('_', '')}"

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.service}{status}: {self.message}"


_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 422})


def kind_for_status(status: int) -> FailureKind:
    """Classify an HTTP error status. 409 (in flight), 429 and 5xx are worth retrying."""
    if status in _PERMANENT_STATUSES:
        return FailureKind.PERMANENT
    return FailureKind.RETRYABLE


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header given in seconds; dates are ignored (rare here)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
