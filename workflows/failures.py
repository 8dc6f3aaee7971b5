"""Reading a failed activity or child workflow: the one place workflows look into a failure."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError


def _application_cause(error: FailureError) -> ApplicationError | None:
    """The ApplicationError that says why: the cause, looked for through the wrappers a
    failure travels in. A child workflow that failed on an activity arrives as
    ChildWorkflowError -> ActivityError -> ApplicationError; the first ApplicationError down
    that chain carries the stable type. Not the innermost: an activity's ApplicationError can
    itself have a cause (the client exception it was raised from), which the SDK encodes as an
    ApplicationError typed by its Python class. Timeouts and cancellations end the walk (their
    cause is a last attempt's failure, not the reason)."""
    cause = error.cause
    while isinstance(cause, (ChildWorkflowError, ActivityError)):
        cause = cause.cause
    return cause if isinstance(cause, ApplicationError) else None


def failure_type(error: FailureError) -> str | None:
    """The stable ApplicationError type of the cause (e.g. `CleengOrderExpired`), if any, also
    through a failed child's failed activity."""
    cause = _application_cause(error)
    return cause.type if cause is not None else None


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
    """The message of the cause's ApplicationError (as `failure_type` finds it), else the
    cause's own text."""
    cause = _application_cause(error)
    if cause is not None:
        return cause.message
    return str(error.cause or error)


def refused_for_good(error: FailureError) -> bool:
    """The service refused (a permanent error): retrying cannot help, the refusal is the
    outcome. A call that stopped on a retry limit or a non-retryable type is not this."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.non_retryable
