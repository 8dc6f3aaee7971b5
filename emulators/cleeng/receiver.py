"""A minimal webhook receiver, for demos and tests of the emulator's webhooks.

It records every webhook with whether its HMAC signature checks out, answers scripted
status codes (200 once the script runs out), and can react to a webhook in a separate
thread *after* acknowledging it, the way a real connector hands work to a queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response

from .reference import DEFAULT_SIGNATURE_HEADER


@dataclass(frozen=True, kw_only=True)
class ReceivedWebhook:
    """One webhook as the receiver saw it, with how it answered."""

    topic: str
    payload: dict[str, Any]
    signature: str | None
    signature_valid: bool
    answered: int

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.payload.get("data", {})
        return data


class WebhookReceiver:
    """Serve :attr:`app` somewhere, subscribe ``<base>/hook`` and look at :attr:`received`."""

    def __init__(
        self,
        secret: str | None = None,
        signature_header: str = DEFAULT_SIGNATURE_HEADER,
        on_webhook: Callable[[ReceivedWebhook], None] | None = None,
    ) -> None:
        self.secret = secret
        self.signature_header = signature_header
        self.on_webhook = on_webhook
        self.statuses: deque[int] = deque()
        self.received: list[ReceivedWebhook] = []
        self._changed = threading.Condition()
        self.app = FastAPI(title="webhook receiver")
        self.app.add_api_route("/hook", self._hook, methods=["POST"])

    def reset(self) -> None:
        """Forget what was received and scripted; keep the secret."""
        with self._changed:
            self.received.clear()
            self.statuses.clear()
            self.on_webhook = None

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        signature = request.headers.get(self.signature_header)
        valid = (
            signature is not None
            and self.secret is not None
            and hmac.compare_digest(
                signature, hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            )
        )
        payload: dict[str, Any] = json.loads(body)
        with self._changed:
            status = self.statuses.popleft() if self.statuses else 200
            hook = ReceivedWebhook(
                topic=str(payload.get("topic")),
                payload=payload,
                signature=signature,
                signature_valid=valid,
                answered=status,
            )
            self.received.append(hook)
            self._changed.notify_all()
        if status == 200 and self.on_webhook is not None:
            threading.Thread(target=self.on_webhook, args=(hook,), daemon=True).start()
        return Response(status_code=status)

    def accepted(self, topic: str | None = None) -> list[ReceivedWebhook]:
        """Webhooks answered with 200, optionally of one topic."""
        with self._changed:
            return [
                h
                for h in self.received
                if h.answered == 200 and (topic is None or h.topic == topic)
            ]

    def wait_for(self, predicate: Callable[[list[ReceivedWebhook]], bool], timeout: float) -> bool:
        """Block until `predicate(received)` holds or `timeout` seconds pass."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.received)), timeout)
