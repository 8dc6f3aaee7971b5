"""Walk one initial purchase through the running connector (started by `scripts/run`).

.venv/bin/python scripts/demo_purchase.py             # presses "paid" for you
.venv/bin/python scripts/demo_purchase.py --outcome failed
.venv/bin/python scripts/demo_purchase.py --manual    # you click on the checkout page
.venv/bin/python scripts/demo_purchase.py --data-dir .data-b   # the stack run with that data dir

It finds the stack through `<data-dir>/stack.env`, which `scripts/run` writes; --api and
--cleeng override it.
"""

from __future__ import annotations

import argparse
import sys

import httpx
from demo_stack import (
    FINAL,
    purchase_outcome,
    reporting_unreachable,
    resolve_stack,
    seed_order,
    show,
    stack_arguments,
    start_purchase,
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stack_arguments(parser)
    parser.add_argument(
        "--outcome",
        default="paid",
        choices=["paid", "failed", "canceled", "expired"],
        help="what to press on the checkout page (default %(default)s)",
    )
    parser.add_argument("--price", type=float, default=9.99, help="default %(default)s")
    parser.add_argument("--manual", action="store_true", help="pay in the browser yourself")
    args = parser.parse_args()
    resolve_stack(args)

    with reporting_unreachable(args), httpx.Client(timeout=60) as http:
        seeded = seed_order(http, args, price=args.price)
        order_id = seeded.order_id
        show("1. Cleeng order seeded", seeded.order)

        started = start_purchase(http, args, seeded)
        show("2. POST /purchases", started)

        checkout_url = started["checkoutUrl"]
        if args.manual:
            print(f"\n3. Open {checkout_url} and choose an outcome; waiting ...")
        else:
            http.post(checkout_url, data={"status": args.outcome}, follow_redirects=False)
            print(f"\n3. Pressed '{args.outcome}' on {checkout_url}")

        state = purchase_outcome(http, args, seeded, started, 900 if args.manual else 60)
        show(f"4. GET /purchases/{order_id}", state)

        recorded = (
            http.get(f"{args.cleeng}/_emulator/payments", params={"orderId": order_id})
            .raise_for_status()
            .json()
        )
        show("5. What Cleeng recorded", recorded)
        print(
            f"\nTrace it in the Temporal Web UI: {args.temporal_ui} "
            f"(workflow id purchase:{order_id})"
        )
    return 0 if state["status"] in FINAL else 1


if __name__ == "__main__":
    sys.exit(main())
