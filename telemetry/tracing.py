"""OpenTelemetry tracing: shim request → workflow → activity → HTTP call, as one trace.

- The shim's FastAPI app gets a server span per request (FastAPI's own OpenTelemetry
  support, which acts once a tracer provider is set: `api/app.py`).
- The Temporal client carries the current span into workflow and activity headers
  (`temporalio.contrib.opentelemetry.TracingInterceptor`, see `temporal_connection.py`), so
  the workflow's and its activities' spans are children of the request that started them.
- The Cleeng client (httpx) and the Mollie client (requests) get a client span per call.

Off by default (`TRACING_EXPORTER=none`): no provider, no instrumentation, no interceptor.
Every span leaves through `RedactingSpanExporter`, which removes query strings from URLs and
passes every string attribute, event and status through the same redaction as the logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status
from opentelemetry.util.types import Attributes, AttributeValue

from settings import Settings
from telemetry.redaction import Redactor

logger = logging.getLogger(__name__)

# Attributes that hold a URL or its query: they keep scheme, host and path only (a query may
# carry anything its sender put there).
_URL_ATTRIBUTES = frozenset({"http.url", "url.full", "http.target"})
_QUERY_ATTRIBUTES = frozenset({"url.query"})


def tracing_on(settings: Settings) -> bool:
    return settings.tracing_exporter != "none"


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class RedactingSpanExporter(SpanExporter):
    """Hands spans to `exporter` with their URLs cut to the path and every string redacted."""

    def __init__(self, exporter: SpanExporter, redact: Redactor) -> None:
        self.exporter = exporter
        self.redact = redact

    def _value(self, key: str, value: AttributeValue) -> AttributeValue:
        if isinstance(value, str):
            if key in _QUERY_ATTRIBUTES:
                return ""
            return self.redact(_without_query(value) if key in _URL_ATTRIBUTES else value)
        if isinstance(value, Sequence) and value and isinstance(value[0], str):
            return [self.redact(str(item)) for item in value]
        return value

    def _attributes(self, attributes: Attributes) -> Attributes:
        if not attributes:
            return attributes
        return {key: self._value(key, value) for key, value in attributes.items()}

    def _clean(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, self.redact(status.description))
        return ReadableSpan(
            name=self.redact(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(event.name, self._attributes(event.attributes), event.timestamp)
                for event in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([self._clean(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def chosen_exporter(settings: Settings) -> SpanExporter:
    """The exporter TRACING_EXPORTER names (console for `none`: install_tracing never asks)."""
    if settings.tracing_exporter == "otlp":
        # Imported here: only a process that sends OTLP pays for the protobuf exporter.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
        return OTLPSpanExporter()
    return ConsoleSpanExporter()


def install_tracing(
    settings: Settings,
    service_name: str,
    secrets: Sequence[str] = (),
    *,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Make this process's spans go to the exporter TRACING_EXPORTER names (or `exporter`,
    e.g. an in-memory one) and instrument the HTTP clients; None when tracing is off.

    Call it once per process, before any client is built: OpenTelemetry keeps one global
    provider, and the instrumentation patches httpx and requests for the whole process.
    """
    if exporter is None and not tracing_on(settings):
        return None
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    chosen = exporter or chosen_exporter(settings)
    redacting = RedactingSpanExporter(chosen, Redactor(secrets))
    provider.add_span_processor(BatchSpanProcessor(redacting))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    RequestsInstrumentor().instrument(tracer_provider=provider)
    logger.info("tracing on: spans go to %s", type(chosen).__name__)
    return provider


def uninstall_tracing(provider: TracerProvider) -> None:
    """Undo `install_tracing`'s instrumentation and flush and stop its provider."""
    HTTPXClientInstrumentor().uninstrument()
    RequestsInstrumentor().uninstrument()
    provider.shutdown()
