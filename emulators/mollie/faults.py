"""Fault injection for the API and the webhooks; everything is off until configured.

Two forms: random rates drawn from a seeded generator (reproducible runs), and a queue of
`failNext` rules that fail the next matching requests deterministically. An `afterCommit`
rule lets the request do its work and then loses the reply, the case idempotency keys exist
for. Latency is applied inside the request (see `middleware.LatencyMiddleware`), so a slow
request is also "in flight" for the idempotency layer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class FailRuleIn(BaseModel):
    """One deterministic failure rule as posted to `/_emulator/faults`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    method: str | None = None
    path_prefix: str = "/v2/"
    status: int | Literal["timeout"] = 503
    count: int = Field(default=1, ge=1)
    after_commit: bool = False
    hang_seconds: float = Field(default=30.0, gt=0, le=600)


class FaultSettingsIn(BaseModel):
    """The whole fault configuration; posting it replaces the previous one."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=120_000)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_after_commit_rate: float = Field(default=0.0, ge=0, le=1)
    drop_webhook_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_webhook_rate: float = Field(default=0.0, ge=0, le=1)
    # Held back until the next webhook to the same receiver went out (or a short bound).
    reorder_webhook_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int | None = None
    fail_next: list[FailRuleIn] = Field(default_factory=list)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request: answer `status` (or hang), before or after doing the work."""

    status: int | Literal["timeout"]
    after_commit: bool
    hang_seconds: float = 30.0


class FaultInjector:
    """Holds the fault settings and decides, request by request, what goes wrong."""

    def __init__(self) -> None:
        self.settings = FaultSettingsIn()
        self._rules: list[FailRuleIn] = []
        self._rng = random.Random()

    def configure(self, settings: FaultSettingsIn) -> None:
        self.settings = settings
        self._rules = [rule.model_copy() for rule in settings.fail_next]
        self._rng = random.Random(settings.seed)

    def reset(self) -> None:
        self.configure(FaultSettingsIn())

    def snapshot(self) -> dict[str, Any]:
        data = self.settings.model_dump(by_alias=True, exclude={"fail_next"})
        data["failNext"] = [rule.model_dump(by_alias=True) for rule in self._rules]
        return data

    @property
    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000

    def decide(self, method: str, path: str) -> FaultDecision | None:
        for rule in self._rules:
            if (rule.method is None or rule.method.upper() == method) and path.startswith(
                rule.path_prefix
            ):
                rule.count -= 1
                if rule.count <= 0:
                    self._rules.remove(rule)
                return FaultDecision(rule.status, rule.after_commit, rule.hang_seconds)
        s = self.settings
        if s.rate_limit_rate and self._rng.random() < s.rate_limit_rate:
            return FaultDecision(429, after_commit=False)
        if s.error_rate and self._rng.random() < s.error_rate:
            return FaultDecision(503, after_commit=False)
        if (
            s.timeout_after_commit_rate
            and method != "GET"
            and self._rng.random() < s.timeout_after_commit_rate
        ):
            return FaultDecision("timeout", after_commit=True)
        return None

    def drop_webhook(self) -> bool:
        rate = self.settings.drop_webhook_rate
        return bool(rate) and self._rng.random() < rate

    def duplicate_webhook(self) -> bool:
        rate = self.settings.duplicate_webhook_rate
        return bool(rate) and self._rng.random() < rate

    def reorder_webhook(self) -> bool:
        rate = self.settings.reorder_webhook_rate
        return bool(rate) and self._rng.random() < rate
