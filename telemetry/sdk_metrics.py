"""The Temporal SDK's own metrics of a worker (workflow, activity, task slot, poller and
request series), served for Prometheus at WORKER_METRICS_ADDRESS.

The SDK's core collects them per `Runtime`; the client the worker polls with must be connected
with that runtime (`connect_temporal(..., runtime=...)`), and one runtime serves one address,
so each worker process has its own port (the launcher hands them out).
"""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from settings import Settings


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving the SDK's metrics at WORKER_METRICS_ADDRESS; None when it is unset
    (the SDK's default runtime, which collects none)."""
    if not settings.worker_metrics_address:
        return None
    return metrics_runtime(settings.worker_metrics_address)


def metrics_runtime(bind_address: str) -> Runtime:
    """A runtime whose SDK metrics are at `http://{bind_address}/metrics`: durations in
    seconds and counters ending in `_total`, as Prometheus names them elsewhere."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                counters_total_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
