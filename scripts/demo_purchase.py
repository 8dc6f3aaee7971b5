"""Walk one initial purchase through the running connector (started by `scripts/run`).

.venv/bin/python scripts/demo_purchase.py             # presses "paid" for you
.venv/bin/python scripts/demo_purchase.py --outcome failed
.venv/bin/python scripts/demo_purchase.py --manual    # you click on the checkout page
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import httpx

from settings import EMULATOR_FRONTEND_API_KEY

FINAL = {"captured", "rejected", "failed", "refunded_cleeng_refused"}


def show(title: str, body: Any) -> None:
    print(f"\n== {title}\n{json.dumps(body, indent=2)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key",
        default=EMULATOR_FRONTEND_API_KEY,
        help="front-end API key (default: the sandbox key scripts/run accepts)",
    )
    parser.add_argument("--cleeng", default="http://127.0.0.1:8102")
    parser.add_argument(
        "--outcome", default="paid", choices=["paid", "failed", "canceled", "expired"]
    )
    parser.add_argument("--price", type=float, default=9.99)
    parser.add_argument("--manual", action="store_true", help="pay in the browser yourself")
    args = parser.parse_args()

    with httpx.Client(timeout=60) as http:
        seeded = (
            http.post(f"{args.cleeng}/_emulator/seed/purchase", json={"price": args.price})
            .raise_for_status()
            .json()
        )
        order_id = str(seeded["orderId"])
        show("1. Cleeng order seeded", seeded["order"])

        # As the publisher's backend: its API key, and the customer it acts for.
        acting = {
            "Authorization": f"Bearer {args.api_key}",
            "X-Cleeng-Customer-Id": str(seeded["customerId"]),
        }
        started = (
            http.post(
                f"{args.api}/purchases",
                json={"orderId": order_id, "redirectUrl": f"{args.api}/purchases/{order_id}"},
                headers=acting,
            )
            .raise_for_status()
            .json()
        )
        show("2. POST /purchases", started)

        checkout_url = started["checkoutUrl"]
        if args.manual:
            print(f"\n3. Open {checkout_url} and choose an outcome; waiting ...")
        else:
            http.post(checkout_url, data={"status": args.outcome}, follow_redirects=False)
            print(f"\n3. Pressed '{args.outcome}' on {checkout_url}")

        deadline = time.monotonic() + (900 if args.manual else 60)
        state: dict[str, Any] = started
        while state["status"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            state = (
                http.get(f"{args.api}/purchases/{order_id}", headers=acting)
                .raise_for_status()
                .json()
            )
        show(f"4. GET /purchases/{order_id}", state)

        recorded = (
            http.get(f"{args.cleeng}/_emulator/payments", params={"orderId": order_id})
            .raise_for_status()
            .json()
        )
        show("5. What Cleeng recorded", recorded)
        print(
            f"\nTrace it in the Temporal Web UI: http://127.0.0.1:8233 "
            f"(workflow id purchase:{order_id})"
        )
    return 0 if state["status"] in FINAL else 1


if __name__ == "__main__":
    sys.exit(main())
