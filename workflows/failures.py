"""Reading a failed activity or child workflow: the one place workflows look into a failure."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError, FailureError


def failure_type(error: FailureError) -> str | None:
    """The stable ApplicationError type of the cause (e.g. `CleengOrderExpired`), if any."""
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def describe_failure(error: FailureError) -> str:
    """`Type: message` of the cause, for a view or a log line an operator reads."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}"
    return str(cause or error)


def describe_innermost_failure(error: FailureError) -> str:
    """`Type: message` of the first application error down the chain of causes: a failed
    child workflow's cause is the activity that failed it, whose cause says why."""
    cause: BaseException | None = error
    while isinstance(cause, FailureError):
        if isinstance(cause, ApplicationError):
            return f"{cause.type}: {cause.message}"
        cause = cause.cause
    return str(cause or error)


def failure_message(error: FailureError) -> str:
    cause = error.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or error)


def refused_for_good(error: FailureError) -> bool:
    """The service refused (a permanent error): retrying cannot help, the refusal is the
    outcome. A call that stopped on a retry limit or a non-retryable type is not this."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.non_retryable
