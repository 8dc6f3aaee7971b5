"""ASGI plumbing shared by the connector's API and the emulators: handing an app a request
body a middleware has already read.

The API's input limits (api/limits.py) and the Mollie emulator's Idempotency-Key handling
(emulators/mollie/idempotency.py) both read the whole body before the app runs. It carries no
knowledge of Cleeng or Mollie, so the emulators may share it (they share no client or domain
code with the connector).
"""

from __future__ import annotations

from starlette.types import Message, Receive


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, once, then defers to the real
    one (which waits for the client's disconnect, as the server would)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
