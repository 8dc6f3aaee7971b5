"""Every process's log lines: text for a person at a terminal, JSON for a log pipeline.

`configure_logging` is the one call a process's entry point makes. Whatever the format, each
record passes through `RedactingFilter` on the way out, so a secret or a customer's email in a
message, its arguments, an exception or a stack never reaches the output.

A JSON line carries what the record knows about where it comes from: the SDK's
`workflow.logger` and `activity.logger` attach the workflow (id, run id, type) and activity
(type, id, attempt); the business ids are read from the workflow id (`purchase:{orderId}`,
`billing:{subscriptionId}:{expiry}`, ...), the Mollie payment and refund ids from the message;
and the current trace and span ids where a span is active. Lines written outside workflow code
(the shim's) carry the id of the workflow the task last called (`telemetry.workflow_log_ids`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from opentelemetry import trace

from telemetry.redaction import Redactor

if TYPE_CHECKING:
    # Only for the annotations: the emulators configure their logs here without the
    # connector's settings (or anything those import) loaded.
    from settings import Settings

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# The business id a workflow id carries, by the workflow id's prefix (domain/*.py build them).
_WORKFLOW_ID_FIELDS: Mapping[str, str] = {
    "purchase": "order_id",
    "billing": "subscription_id",
    "refund": "cleeng_payment_id",
    "details-deactivated": "payment_details_id",
    "payment-details": "customer_id",
    "chargeback": "chargeback_id",
}
_MOLLIE_PAYMENT_ID = re.compile(r"\btr_[A-Za-z0-9]+")
_MOLLIE_REFUND_ID = re.compile(r"\bre_[A-Za-z0-9]+")

# Fields a caller may pass in `extra=` that a JSON line carries as they are.
EXTRA_ID_FIELDS = (
    "workflow_id",
    "order_id",
    "subscription_id",
    "cleeng_payment_id",
    "payment_details_id",
    "customer_id",
    "mollie_payment_id",
)


# Ids bound to the current task: a shim request's lines name the workflow it started,
# signalled or asked about (telemetry/workflow_log_ids.py).
_bound_ids: ContextVar[Mapping[str, str] | None] = ContextVar("log_ids", default=None)


def bind_log_ids(**ids: str) -> None:
    """Add `ids` to every line logged from here on in this task (an asyncio task, e.g. one
    request the shim serves, has a context of its own, so they end with it)."""
    _bound_ids.set({**(_bound_ids.get() or {}), **ids})


def settings_secrets(settings: Settings) -> list[str]:
    """The secrets this process holds, blanked out of its logs by value."""
    secrets = [
        settings.effective_publisher_token,
        settings.effective_mollie_api_key,
        settings.effective_webhook_secret,
        *settings.effective_frontend_api_keys,
    ]
    return [secret for secret in secrets if secret]


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, exception and stack with the redaction applied.

    It sits on the handlers (a logger's own filters do not see records from its children),
    and renders the message once, so the arguments cannot bring a secret back later.
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A filter's exception would reach the code that logged (a workflow task would
            # fail on a log line): keep the template, drop arguments that do not fit it.
            message = f"{record.msg} [arguments did not fit the message]"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def record_ids(record: logging.LogRecord) -> dict[str, Any]:
    """Workflow, activity and business ids a record knows, for a JSON line."""
    ids: dict[str, Any] = {}
    in_workflow: Mapping[str, Any] | None = getattr(record, "temporal_workflow", None)
    in_activity: Mapping[str, Any] | None = getattr(record, "temporal_activity", None)
    if in_workflow:
        ids.update(
            workflow_id=in_workflow.get("workflow_id"),
            run_id=in_workflow.get("run_id"),
            workflow_type=in_workflow.get("workflow_type"),
        )
    if in_activity:
        ids.update(
            workflow_id=in_activity.get("workflow_id"),
            run_id=in_activity.get("workflow_run_id"),
            workflow_type=in_activity.get("workflow_type"),
            activity=in_activity.get("activity_type"),
            activity_id=in_activity.get("activity_id"),
            attempt=in_activity.get("attempt"),
        )
    for field in EXTRA_ID_FIELDS:
        value = getattr(record, field, None)
        if value is not None:
            ids[field] = value
    for field, value in (_bound_ids.get() or {}).items():
        # The record's own ids first: an activity that queries another workflow is still
        # the activity of its own.
        if ids.get(field) is None:
            ids[field] = value
    workflow_id = ids.get("workflow_id")
    if isinstance(workflow_id, str):
        prefix, _, rest = workflow_id.partition(":")
        business_field = _WORKFLOW_ID_FIELDS.get(prefix)
        if business_field and rest:
            # billing:{subscriptionId}:{expiry} and refund:{paymentId}:{key}: the first part.
            ids.setdefault(business_field, rest.split(":", 1)[0])
    message = record.getMessage()
    if payments := sorted(set(_MOLLIE_PAYMENT_ID.findall(message))):
        ids["mollie_payment_ids"] = payments
    if refunds := sorted(set(_MOLLIE_REFUND_ID.findall(message))):
        ids["mollie_refund_ids"] = refunds
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        ids.update(trace_id=f"{span.trace_id:032x}", span_id=f"{span.span_id:016x}")
    return {key: value for key, value in ids.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, process (and pid), message, ids,
    exception."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": self.process,
            "pid": record.process,
            "message": record.getMessage(),
            **record_ids(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


def log_handler(
    log_format: LogFormat, process: str, secrets: Iterable[str], stream: TextIO | None = None
) -> logging.Handler:
    """A handler that writes redacted lines in `log_format` to `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter(process) if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    return handler


def configure_logging(
    log_format: LogFormat,
    process: str,
    secrets: Iterable[str] = (),
    *,
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Replace the root logger's handlers with one redacting handler; returns it. Libraries'
    loggers (uvicorn, httpx, temporalio) propagate to the root, so their lines are formatted
    and redacted the same way."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    handler = log_handler(log_format, process, secrets, stream)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def configure_process_logging(settings: Settings, process: str) -> logging.Handler:
    """`configure_logging` as the connector's processes call it, from their settings."""
    return configure_logging(settings.log_format, process, settings_secrets(settings))


def env_log_format() -> LogFormat:
    """LOG_FORMAT as a process without the connector's settings (an emulator) reads it."""
    return "json" if os.environ.get("LOG_FORMAT", "").strip().lower() == "json" else "text"
