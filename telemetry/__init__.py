"""What the connector tells its operators: log lines, traces and the worker's SDK metrics.

`logs` formats every process's log lines (text or JSON) and passes each through `redaction`,
which removes secrets and clear-text customer data. `tracing` wires OpenTelemetry through the
shim, the Temporal client and worker, and the HTTP clients. `sdk_metrics` gives a worker the
Temporal runtime that serves the SDK's Prometheus metrics.
"""
