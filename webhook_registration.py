"""Subscribe the connector to the Cleeng webhook topics it handles.

    python -m webhook_registration [--url https://connector.example.com/webhooks/cleeng]

Cleeng's PUT replaces a topic's whole endpoint list, and dropping another connector's endpoint
is a production incident: this reads the current list, replaces only the entry with our URL
(or adds it), keeps every other endpoint as it was, and writes only topics that change. When the
current list cannot be read (an error, or an answer in a shape the client does not know), it
stops before any PUT: a list it did not read is never taken for an empty one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from api.cleeng_webhooks import HANDLED_TOPICS
from clients.cleeng import CleengClient
from settings import Settings
from temporal_connection import load_settings

logger = logging.getLogger("webhook_registration")


def our_endpoint(url: str, secret: str, payment_method_id: int) -> dict[str, Any]:
    return {
        "url": url,
        "filters": [{"name": "paymentMethodId", "options": {"value": payment_method_id}}],
        "verification": {
            "name": "HMAC",
            "options": {"hashAlg": "SHA256", "sharedSecret": secret},
        },
    }


def merged_endpoints(current: list[dict[str, Any]], ours: dict[str, Any]) -> list[dict[str, Any]]:
    """The topic's endpoints with ours in place of any older copy; order of others kept."""
    others = [endpoint for endpoint in current if endpoint.get("url") != ours["url"]]
    return [*others, ours]


async def register(
    cleeng: CleengClient, url: str, secret: str, payment_method_id: int
) -> list[str]:
    """Make sure every handled topic delivers to `url`; answers the topics that changed.
    Raises, having written nothing, when the current subscriptions cannot be read."""
    if not 16 <= len(secret.encode()) <= 64:
        raise ValueError("the Cleeng webhook secret must be 16 to 64 bytes long")
    ours = our_endpoint(url, secret, payment_method_id)
    current = await cleeng.webhook_subscriptions()
    changed: list[str] = []
    for topic in HANDLED_TOPICS:
        existing = current.get(topic, [])
        wanted = merged_endpoints(existing, ours)
        if wanted != existing:
            await cleeng.replace_webhook_subscriptions(topic, wanted)
            changed.append(topic)
    return changed


async def run(settings: Settings, url: str) -> list[str]:
    cleeng = CleengClient(
        settings.cleeng_base_url,
        settings.effective_publisher_token,
        timeout_seconds=settings.cleeng_timeout_seconds,
    )
    try:
        return await register(
            cleeng, url, settings.effective_webhook_secret, settings.cleeng_payment_method_id
        )
    finally:
        await cleeng.aclose()


def main() -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url",
        default=f"{settings.connector_public_url.rstrip('/')}/webhooks/cleeng",
        help="public URL of this connector's Cleeng webhook endpoint",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    changed = asyncio.run(run(settings, args.url))
    if changed:
        logger.info("subscribed %s to: %s", args.url, ", ".join(changed))
    else:
        logger.info("%s was already subscribed to every handled topic", args.url)


if __name__ == "__main__":
    main()
