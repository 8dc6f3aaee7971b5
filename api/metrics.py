"""Prometheus counters of the shim (`GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ShimMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Outcomes: taken (`accepted`, `signalled`, `follow_up`, `coalesced`, `duplicate`,
        # `ignored`) and refused (`bad_signature` 401, `rejected` 400/422, `rate_limited`
        # 429, `unavailable` 503).
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
        # How Mollie webhooks were resolved: `found` (ours), `not_ours`, `not_found`,
        # `cached` (a negative answer from memory), `shared` (joined a look-up in flight),
        # `unavailable` (Mollie could not answer: the webhook got 503).
        self.mollie_lookups = Counter(
            "connector_mollie_webhook_lookups_total",
            "Mollie payment look-ups made to route Mollie webhooks, by result",
            ["result"],
            registry=self.registry,
        )
        # Every 503 answered because Temporal was unreachable or too busy, by route template
        # (never the concrete path: it may carry an order id per request).
        self.temporal_unavailable = Counter(
            "connector_temporal_unavailable_total",
            "Requests answered 503 because Temporal was unreachable or busy, by route",
            ["route"],
            registry=self.registry,
        )
