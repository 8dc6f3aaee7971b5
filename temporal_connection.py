"""How every process of the connector reaches Temporal.

The worker, the API, the operator CLI and the schedules all connect through here, so they
agree on the address, the namespace, how payloads are encoded and which interceptors run.
"""

from __future__ import annotations

from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from settings import Settings
from telemetry.tracing import tracing_on
from telemetry.workflow_log_ids import WorkflowIdsInLogs


def data_converter(settings: Settings) -> DataConverter:
    """How workflow inputs, results and signals become payloads in the history."""
    return DataConverter.default


def client_interceptors(settings: Settings) -> list[Interceptor]:
    """Interceptors on every client (and so on every worker built from it)."""
    return [WorkflowIdsInLogs(), *tracing_interceptors(settings)]


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """With tracing on, the current span travels in the headers of workflow starts, signals,
    updates and activities, so the worker's spans join the trace of the request that caused
    them. Off, nothing is added to any call."""
    return [TracingInterceptor()] if tracing_on(settings) else []


async def connect_temporal(
    settings: Settings,
    *,
    retry_config: RetryConfig | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """`runtime`: the SDK runtime (e.g. one serving metrics, `telemetry.sdk_metrics`); the
    SDK's default when None."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=client_interceptors(settings),
        retry_config=retry_config,
        runtime=runtime,
    )
