"""Watch a year of monthly renewals through the running connector (started by `scripts/run`).

.venv/bin/python scripts/demo_renewals.py                   # buy, then 12 renewals, all paid
.venv/bin/python scripts/demo_renewals.py --fail-attempts 2 # the first 2 renewal charges decline
.venv/bin/python scripts/demo_renewals.py --months 3

It buys a monthly subscription through the API (paying on the Mollie checkout page for you),
then moves the Cleeng emulator's clock forward one month at a time. On the way the emulator's
billing engine sends the connector Cleeng's dunning webhooks with its default settings:
authorise 72, 48, 24 and 0 hours before the due date, capture at it, terminate 2 hours later
if nothing was captured. So a cycle charges the card at most five times; `--fail-attempts 5`
or more ends the subscription in its first renewal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from settings import EMULATOR_FRONTEND_API_KEY

FINAL = {"captured", "rejected", "failed", "refunded_cleeng_refused"}
RECURRING = "recurring-payment"
# Past the due date and the default 2-hour grace period, short of the next cycle's first
# attempt 72 hours before the next due date.
PAST_GRACE = timedelta(hours=3)
# Real seconds the billing engine waits for the connector to act on each webhook.
SETTLE_SECONDS = 10
MONTH_DEADLINE_SECONDS = 120


def show(title: str, body: Any) -> None:
    print(f"\n== {title}\n{json.dumps(body, indent=2)}")


def utc(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def subscription_of(http: httpx.Client, cleeng: str, customer_id: int) -> dict[str, Any] | None:
    items = http.get(f"{cleeng}/_emulator/subscriptions").raise_for_status().json()["items"]
    mine = [s for s in items if s["customerId"] == customer_id]
    return mine[-1] if mine else None


def buy(http: httpx.Client, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Seed an order for a new customer and pay it through the connector."""
    email = f"renewals-{uuid.uuid4().hex[:8]}@example.com"
    seeded = (
        http.post(f"{args.cleeng}/_emulator/seed/purchase", json={"email": email})
        .raise_for_status()
        .json()
    )
    order_id = str(seeded["orderId"])
    show("1. Cleeng order seeded (a monthly subscription offer)", seeded["order"])
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
    http.post(started["checkoutUrl"], data={"status": "paid"}, follow_redirects=False)
    deadline = time.monotonic() + 60
    state: dict[str, Any] = started
    while state["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        state = (
            http.get(f"{args.api}/purchases/{order_id}", headers=acting).raise_for_status().json()
        )
    show(f"2. Paid on the checkout page; GET /purchases/{order_id}", state)
    return state, int(seeded["customerId"])


def mollie_customer_of(http: httpx.Client, args: argparse.Namespace, customer_id: int) -> str:
    """The Mollie customer behind the Cleeng customer's latest payment details."""
    details = (
        http.get(f"{args.cleeng}/_emulator/payment-details", params={"customerId": customer_id})
        .raise_for_status()
        .json()["items"]
    )
    # Payment details token: mollie:cst_...:mdt_...
    return str(details[-1]["token"].split(":")[1])


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the running `scripts/run` stack answers, and the front-end key it accepts."""
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key",
        default=EMULATOR_FRONTEND_API_KEY,
        help="front-end API key (default: the sandbox key scripts/run accepts)",
    )
    parser.add_argument("--cleeng", default="http://127.0.0.1:8102")
    parser.add_argument("--mollie", default="http://127.0.0.1:8101")


def decline_charges(
    http: httpx.Client, args: argparse.Namespace, customer_id: int, count: int
) -> None:
    """Make the card decline the customer's next `count` charges at Mollie."""
    mollie_customer = mollie_customer_of(http, args, customer_id)
    outcome = {"status": "failed", "failureReason": "insufficient_funds"}
    answer = (
        http.post(
            f"{args.mollie}/_emulator/customers/{mollie_customer}/next-outcomes",
            json={"outcomes": [outcome] * count},
        )
        .raise_for_status()
        .json()
    )
    show(f"   The card will decline the next {count} charge(s)", answer)


def play_month(
    http: httpx.Client, args: argparse.Namespace, customer_id: int, due: datetime
) -> dict[str, Any] | None:
    """Move Cleeng's clock past `due` and its grace period; wait for renewal or termination."""
    http.post(
        f"{args.cleeng}/_emulator/clock/advance",
        json={"to": iso(due + PAST_GRACE), "settleSeconds": SETTLE_SECONDS},
        timeout=None,
    ).raise_for_status()
    deadline = time.monotonic() + MONTH_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        subscription = subscription_of(http, args.cleeng, customer_id)
        if subscription is not None and (
            subscription["status"] != "active" or utc(subscription["dateTo"]) > due
        ):
            return subscription
        time.sleep(0.2)
    return None


def renewal_table(payments: list[dict[str, Any]]) -> str:
    rows = [("date (Cleeng clock)", "status", "externalPaymentId", "amount", "note")]
    for p in sorted(payments, key=lambda p: (p["updatedAt"], p["id"])):
        rows.append(
            (
                iso(utc(p["updatedAt"])),
                p["status"],
                str(p["externalPaymentId"]),
                f"{p['totalAmount']} {p['currency']}",
                p["rejectedReason"] or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stack_arguments(parser)
    parser.add_argument("--temporal-ui", default="http://127.0.0.1:8233")
    parser.add_argument("--months", type=int, default=12, help="renewals to play (default 12)")
    parser.add_argument(
        "--fail-attempts",
        type=int,
        default=0,
        metavar="N",
        help="the first N renewal charges decline (5 in one cycle end the subscription)",
    )
    args = parser.parse_args()

    with httpx.Client(timeout=60) as http:
        state, customer_id = buy(http, args)
        subscription = subscription_of(http, args.cleeng, customer_id)
        if state["status"] != "captured" or subscription is None:
            print("\nThe purchase did not go through; no subscription to renew.")
            return 1
        subscription_id = str(subscription["subscriptionId"])
        show("3. The subscription in Cleeng", subscription)
        if args.fail_attempts > 0:
            decline_charges(http, args, customer_id, args.fail_attempts)

        print(f"\n4. Moving the Cleeng clock {args.months} month(s), one renewal at a time")
        workflow_ids: list[str] = []
        complete = True
        for month in range(1, args.months + 1):
            due = utc(subscription["dateTo"])
            workflow_ids.append(f"billing:{subscription_id}:{iso(due)}")
            after = play_month(http, args, customer_id, due)
            if after is None:
                print(
                    f"   month {month:2}: cycle due {iso(due)} did not finish within "
                    f"{MONTH_DEADLINE_SECONDS} s. Is the connector subscribed to Cleeng's "
                    "webhooks? (scripts/run does it: python -m webhook_registration)"
                )
                complete = False
                break
            subscription = after
            if subscription["status"] != "active":
                print(f"   month {month:2}: cycle due {iso(due)} -> {subscription['status']}")
                break
            until = iso(utc(subscription["dateTo"]))
            print(f"   month {month:2}: cycle due {iso(due)} -> renewed until {until}")

        payments = (
            http.get(
                f"{args.cleeng}/_emulator/payments", params={"subscriptionId": subscription_id}
            )
            .raise_for_status()
            .json()["items"]
        )
    renewals = [p for p in payments if p["paymentOperation"] == RECURRING]
    captured = sum(1 for p in renewals if p["status"] == "captured")
    rejected = sum(1 for p in renewals if p["status"] == "rejected")

    print(f"\n== 5. Renewals of subscription {subscription_id} recorded in Cleeng")
    print(renewal_table(renewals))
    print(
        f"\n{captured} captured renewal(s), {rejected} rejected attempt(s); "
        f"subscription {subscription['status']}, dateTo {iso(utc(subscription['dateTo']))}."
    )

    query = f'CleengSubscriptionId="{subscription_id}"'
    print(
        "\nTrace them in the Temporal Web UI, one workflow per billing cycle:\n"
        f"  {args.temporal_ui}/namespaces/default/workflows?query={quote(query, safe='')}\n"
        f"  (search {query}; ids billing:{subscription_id}:<due date>, e.g. {workflow_ids[0]})\n"
        f"  or: temporal workflow list --query '{query}'"
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
