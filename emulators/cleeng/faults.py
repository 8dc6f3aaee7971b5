"""Fault injection for the Core API (``/3.1/...``), off by default.

Random faults (latency, 5xx, 429, reply lost after the write, dropped, duplicated and
reordered webhooks) are drawn from a seeded generator; ``failNext`` rules fail the next matching
requests deterministically, for tests. An *after-commit* fault lets the request do its work
and then loses the reply: an error status instead of the real answer, or a hang until the
client gives up (``"status": "timeout"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .reference import API_PREFIX

logger = logging.getLogger("emulators.cleeng.faults")

TIMEOUT: Literal["timeout"] = "timeout"


class FailNextRule(BaseModel):
    """Fail the next `count` requests whose method and path match."""

    model_config = ConfigDict(extra="forbid")

    method: str | None = Field(default=None, description="HTTP method; any when omitted")
    pathPrefix: str = Field(default=API_PREFIX, description="e.g. /3.1/payments")
    status: int | Literal["timeout"] = Field(
        default=503, description="HTTP status to answer, or 'timeout' to hang"
    )
    count: int = Field(default=1, ge=1)
    afterCommit: bool = Field(
        default=False, description="perform the write first, then lose the reply"
    )


class FaultSettings(BaseModel):
    """Body of POST /_emulator/faults. Rates are probabilities per request (0..1)."""

    model_config = ConfigDict(extra="forbid")

    latencyMs: int | None = Field(default=None, ge=0, le=60_000)
    errorRate: float | None = Field(default=None, ge=0, le=1)
    rateLimitRate: float | None = Field(default=None, ge=0, le=1)
    timeoutAfterCommitRate: float | None = Field(default=None, ge=0, le=1)
    dropWebhookRate: float | None = Field(default=None, ge=0, le=1)
    duplicateWebhookRate: float | None = Field(default=None, ge=0, le=1)
    reorderWebhookRate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="hold a webhook back until the next one to the same receiver went out",
    )
    seed: int | None = None
    failNext: list[FailNextRule] = Field(default_factory=list)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request: answer `status` (or hang), before or after the work."""

    status: int | Literal["timeout"]
    after_commit: bool


class FaultInjector:
    """Current fault settings and the dice; shared by the middleware and webhook delivery."""

    def __init__(self, seed: int | None = None) -> None:
        self._default_seed = seed
        self.reset()

    def reset(self) -> None:
        self.latency_ms = 0
        self.error_rate = 0.0
        self.rate_limit_rate = 0.0
        self.timeout_after_commit_rate = 0.0
        self.drop_webhook_rate = 0.0
        self.duplicate_webhook_rate = 0.0
        self.reorder_webhook_rate = 0.0
        self.rules: list[FailNextRule] = []
        self._rng = random.Random(self._default_seed)

    def configure(self, settings: FaultSettings) -> None:
        """Change only the fields given; ``failNext`` rules are appended."""
        if settings.latencyMs is not None:
            self.latency_ms = settings.latencyMs
        if settings.errorRate is not None:
            self.error_rate = settings.errorRate
        if settings.rateLimitRate is not None:
            self.rate_limit_rate = settings.rateLimitRate
        if settings.timeoutAfterCommitRate is not None:
            self.timeout_after_commit_rate = settings.timeoutAfterCommitRate
        if settings.dropWebhookRate is not None:
            self.drop_webhook_rate = settings.dropWebhookRate
        if settings.duplicateWebhookRate is not None:
            self.duplicate_webhook_rate = settings.duplicateWebhookRate
        if settings.reorderWebhookRate is not None:
            self.reorder_webhook_rate = settings.reorderWebhookRate
        if settings.seed is not None:
            self._rng = random.Random(settings.seed)
        self.rules.extend(rule.model_copy() for rule in settings.failNext)

    def snapshot(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "errorRate": self.error_rate,
            "rateLimitRate": self.rate_limit_rate,
            "timeoutAfterCommitRate": self.timeout_after_commit_rate,
            "dropWebhookRate": self.drop_webhook_rate,
            "duplicateWebhookRate": self.duplicate_webhook_rate,
            "reorderWebhookRate": self.reorder_webhook_rate,
            "failNext": [rule.model_dump() for rule in self.rules],
        }

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def decide(self, method: str, path: str) -> FaultDecision | None:
        """What, if anything, goes wrong with this request. Rules first, then the dice."""
        for rule in self.rules:
            if (rule.method is None or rule.method.upper() == method.upper()) and path.startswith(
                rule.pathPrefix
            ):
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                return FaultDecision(rule.status, rule.afterCommit)
        if self._roll(self.rate_limit_rate):
            return FaultDecision(429, False)
        if self._roll(self.error_rate):
            return FaultDecision(503, False)
        if self._roll(self.timeout_after_commit_rate):
            return FaultDecision(TIMEOUT, True)
        return None

    def drop_webhook(self) -> bool:
        return self._roll(self.drop_webhook_rate)

    def duplicate_webhook(self) -> bool:
        return self._roll(self.duplicate_webhook_rate)

    def reorder_webhook(self) -> bool:
        return self._roll(self.reorder_webhook_rate)


_MESSAGES = {429: "Too many requests", 503: "Service unavailable"}


async def _send_error(send: Send, status: int) -> None:
    body = json.dumps({"message": f"Injected fault: {_MESSAGES.get(status, f'HTTP {status}')}"})
    headers = [(b"content-type", b"application/json")]
    if status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def _hang(receive: Receive, seconds: float) -> bool:
    """Hold the request open until the client disconnects (True) or `seconds` pass."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_disconnect(), seconds)
    except TimeoutError:
        return False
    return True


class FaultMiddleware:
    """ASGI middleware applying the injector's decisions to Core API requests."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, hang_seconds: float) -> None:
        self.app = app
        self.injector = injector
        self.hang_seconds = hang_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.injector.latency_ms:
            await asyncio.sleep(self.injector.latency_ms / 1000)
        decision = self.injector.decide(scope["method"], scope["path"])
        if decision is None:
            await self.app(scope, receive, send)
            return
        logger.info(
            "injecting %s%s into %s %s",
            decision.status,
            " after commit" if decision.after_commit else "",
            scope["method"],
            scope["path"],
        )
        if decision.after_commit:

            async def swallow(message: Message) -> None:
                return None  # the work is done, the reply is "lost"

            await self.app(scope, receive, swallow)
        if decision.status == TIMEOUT:
            if not await _hang(receive, self.hang_seconds):
                await _send_error(send, 504)
            return
        await _send_error(send, decision.status)
