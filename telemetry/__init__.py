"""What the connector tells its operators: log lines, traces and the worker's SDK metrics.

- `logs` formats every process's log lines (text or JSON) and passes each through
  `redaction`, which removes secrets and clear-text customer data;
  `workflow_log_ids` names in the shim's lines the workflow each request called.
- `tracing` sets up OpenTelemetry for a process (provider, exporter, HTTP clients); the
  Temporal client carries spans into workflows and activities (`temporal_connection.py`).
- `sdk_metrics` gives a worker the Temporal runtime that serves the SDK's Prometheus metrics.
"""
