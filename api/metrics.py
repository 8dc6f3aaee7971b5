"""Prometheus counters of the shim (`GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ShimMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "connector_webhooks_total",
            "Webhooks received, by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.purchases = Counter(
            "connector_purchase_requests_total",
            "POST /purchases answers, by outcome",
            ["outcome"],
            registry=self.registry,
        )
