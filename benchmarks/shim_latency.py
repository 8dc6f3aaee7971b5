"""How fast the shim answers, against a running connector (`scripts/run`).

    .venv/bin/python benchmarks/shim_latency.py [--rounds 40]

Measures, side by side in one run, the round trip the front end and Cleeng wait for:
- `POST /purchases` (update-with-start: Cleeng order read + Mollie customer + payment),
- a repeated `POST /purchases` for the same order (the update on a running workflow),
- a signed Cleeng capture webhook (signal-with-start, acknowledged once Temporal accepted),
- a Mollie webhook (`id=tr_...`, a signal).
Prints median and 95th percentile per kind, in milliseconds. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import time
import uuid
from typing import Any

import httpx

from settings import EMULATOR_FRONTEND_API_KEY, EMULATOR_WEBHOOK_SECRET


def timed(http: httpx.Client, url: str, **request: Any) -> float:
    """Milliseconds for one POST; any error answer stops the benchmark."""
    start = time.perf_counter()
    response = http.post(url, **request)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code >= 300:
        raise SystemExit(f"{response.request.url} answered {response.status_code}: {response.text}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--cleeng", default="http://127.0.0.1:8102")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {
        "POST /purchases (new)": [],
        "POST /purchases (repeat)": [],
        "Cleeng webhook (signed)": [],
        "Mollie webhook": [],
    }
    with httpx.Client(timeout=60) as http:
        for _ in range(args.rounds):
            email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
            seeded = http.post(
                f"{args.cleeng}/_emulator/seed/purchase", json={"email": email}
            ).json()
            # As the publisher's backend (sandbox key), back to the connector's own pages.
            body = {"orderId": str(seeded["orderId"]), "redirectUrl": f"{args.api}/docs"}
            acting = {
                "Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}",
                "X-Cleeng-Customer-Id": str(seeded["customerId"]),
            }
            purchase = f"{args.api}/purchases"
            samples["POST /purchases (new)"].append(
                timed(http, purchase, json=body, headers=acting)
            )
            started = http.post(purchase, json=body, headers=acting).json()
            samples["POST /purchases (repeat)"].append(
                timed(http, purchase, json=body, headers=acting)
            )
            samples["Mollie webhook"].append(
                timed(
                    http,
                    f"{args.api}/webhooks/mollie",
                    params={"workflow": f"purchase:{body['orderId']}"},
                    data={"id": started["molliePaymentId"]},
                )
            )
            envelope = {
                "broadcasterId": 1,
                "topic": "subscriptionReadyForTermination",
                "data": {
                    "subscriptionId": str(uuid.uuid4().int % 10**9),
                    "offerId": "S000000001_NL",
                    "customerId": 1,
                    "expirationDate": "2031-01-01T00:00:00Z",
                    "dunningAttemptDate": "2031-01-01T02:00:00Z",
                },
            }
            raw = json.dumps(envelope).encode()
            signature = hmac.new(EMULATOR_WEBHOOK_SECRET.encode(), raw, hashlib.sha256)
            headers = {
                "content-type": "application/json",
                "X-Cleeng-Signature": signature.hexdigest(),
            }
            samples["Cleeng webhook (signed)"].append(
                timed(http, f"{args.api}/webhooks/cleeng", content=raw, headers=headers)
            )
    print(f"{'request':<28}{'median ms':>12}{'p95 ms':>10}   (n={args.rounds})")
    for name, values in samples.items():
        ordered = sorted(values)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        print(f"{name:<28}{statistics.median(values):>12.1f}{p95:>10.1f}")


if __name__ == "__main__":
    main()
