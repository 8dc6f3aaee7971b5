"""Watch a year of monthly renewals through the running connector (started by `scripts/run`).

.venv/bin/python scripts/demo_renewals.py                   # buy, then 12 renewals, all paid
.venv/bin/python scripts/demo_renewals.py --fail-attempts 2 # the first 2 renewal charges decline
.venv/bin/python scripts/demo_renewals.py --months 3
.venv/bin/python scripts/demo_renewals.py --method ideal    # SEPA Direct Debit: pending for days
.venv/bin/python scripts/demo_renewals.py --method paypal   # a PayPal mandate

It buys a monthly subscription through the API (paying on the Mollie checkout page for you),
then moves the Cleeng emulator's clock forward one month at a time. On the way the emulator's
billing engine sends the connector Cleeng's dunning webhooks with its default settings:
authorise 72, 48, 24 and 0 hours before the due date, capture at it, terminate 2 hours later
if nothing was captured. So a cycle charges the card at most five times; `--fail-attempts 5`
or more ends the subscription in its first renewal.

With `--method ideal` (or `paypal`) the first payment leaves a SEPA Direct Debit (or PayPal)
mandate, which Mollie cannot hold funds on. A direct debit stays `pending` at Mollie for days
of the Mollie emulator's clock (`--settle-hours`, its default 72), so the Mollie clock moves
along with Cleeng's: both step together through every dunning webhook and every settlement,
and the demo prints per cycle what each side did (pending -> authorized -> captured). With
Cleeng's default dunning a debit made 72 hours before the due date settles within a second of
the capture webhook at the due date, so either may come first. With `--fail-attempts N` the
bank refuses the first N debits when they settle: the connector records each `rejected` with
Mollie's reason, and Cleeng's next dunning attempt charges again.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from demo_stack import (
    purchase_outcome,
    reporting_unreachable,
    resolve_stack,
    seed_order,
    show,
    stack_arguments,
    start_purchase,
)

from connector_ops.stack_file import read_stack_file
from emulators.mollie.config import MollieEmulatorConfig

RECURRING = "recurring-payment"
# Past the due date and the default 2-hour grace period, short of the next cycle's first
# attempt 72 hours before the next due date.
PAST_GRACE = timedelta(hours=3)
# Real seconds the billing engine waits for the connector to act on each webhook.
SETTLE_SECONDS = 10
MONTH_DEADLINE_SECONDS = 120
# Both clocks together: moments this close are played as one move (webhooks of one cycle and
# its settlements are hours apart), and the connector gets this long to act on each.
CLUSTER = timedelta(minutes=10)
STEP_DEADLINE_SECONDS = 60
JUST_BEFORE = timedelta(seconds=2)
MOVES_PER_MONTH = 40
# A Cleeng record of a Mollie charge, by the charge's status.
RECORDED_AS = {"paid": "captured", "failed": "rejected", "pending": "authorized"}


def utc(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def subscription_of(http: httpx.Client, cleeng: str, customer_id: int) -> dict[str, Any] | None:
    items = http.get(f"{cleeng}/_emulator/subscriptions").raise_for_status().json()["items"]
    mine = [s for s in items if s["customerId"] == customer_id]
    return mine[-1] if mine else None


def buy(
    http: httpx.Client, args: argparse.Namespace, method: str | None = None
) -> tuple[dict[str, Any], int]:
    """Seed an order for a new customer and pay it through the connector (with `method`,
    Mollie's checkout offers only that method)."""
    email = f"renewals-{uuid.uuid4().hex[:8]}@example.com"
    seeded = seed_order(http, args, email=email)
    show("1. Cleeng order seeded (a monthly subscription offer)", seeded.order)
    started = start_purchase(http, args, seeded, method)
    http.post(started["checkoutUrl"], data={"status": "paid"}, follow_redirects=False)
    state = purchase_outcome(http, args, seeded, started, 60)
    paid_with = f" with {method}" if method else ""
    show(f"2. Paid{paid_with} on the checkout page; GET /purchases/{seeded.order_id}", state)
    return state, seeded.customer_id


def mollie_customer_of(http: httpx.Client, args: argparse.Namespace, customer_id: int) -> str:
    """The Mollie customer behind the Cleeng customer's latest payment details."""
    details = (
        http.get(f"{args.cleeng}/_emulator/payment-details", params={"customerId": customer_id})
        .raise_for_status()
        .json()["items"]
    )
    # Payment details token: mollie:cst_...:mdt_...
    return str(details[-1]["token"].split(":")[1])


def decline_charges(
    http: httpx.Client, args: argparse.Namespace, customer_id: int, count: int
) -> None:
    """Make the customer's next `count` charges at Mollie fail (a direct debit: when it would
    have settled)."""
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
    payer = {"ideal": "The bank", "paypal": "PayPal"}.get(getattr(args, "method", ""), "The card")
    show(f"   {payer} will refuse the next {count} charge(s)", answer)


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


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def clock_now(http: httpx.Client, base: str) -> datetime:
    return parse_time(http.get(f"{base}/_emulator/clock").raise_for_status().json()["now"])


def mollie_charges(
    http: httpx.Client, args: argparse.Namespace, mollie_customer: str
) -> dict[str, dict[str, Any]]:
    """The customer's recurring charges at Mollie, by payment id."""
    ledger = http.get(f"{args.mollie}/_emulator/ledger").raise_for_status().json()
    return {
        p["id"]: p
        for p in ledger["payments"]
        if p["customerId"] == mollie_customer and p["sequenceType"] == "recurring"
    }


def cleeng_renewals(
    http: httpx.Client, args: argparse.Namespace, subscription_id: str
) -> dict[int, dict[str, Any]]:
    """The subscription's renewal payments recorded in Cleeng, by Cleeng payment id."""
    items = (
        http.get(f"{args.cleeng}/_emulator/payments", params={"subscriptionId": subscription_id})
        .raise_for_status()
        .json()["items"]
    )
    return {p["id"]: p for p in items if p["paymentOperation"] == RECURRING}


def next_moment(
    http: httpx.Client,
    args: argparse.Namespace,
    subscription_id: str,
    mollie_customer: str,
) -> tuple[str, datetime, datetime] | None:
    """Which clock moves first (the one with nothing due), the first moment of the move and
    the instant to move both to: the next dunning webhook for the subscription or the next
    settlement of its pending charges, whichever comes first (a settlement on a tie), never
    past the other side's next moment."""
    schedule = (
        http.get(f"{args.cleeng}/_emulator/billing/schedule").raise_for_status().json()["items"]
    )
    cleeng = sorted(
        parse_time(e["at"]) for e in schedule if str(e["subscriptionId"]) == subscription_id
    )
    # The ledger's createdAt is whole seconds: the debit settles within a second after this.
    settle = timedelta(hours=args.settle_hours) + timedelta(seconds=1)
    mollie = sorted(
        parse_time(p["createdAt"]) + settle
        for p in mollie_charges(http, args, mollie_customer).values()
        if p["status"] == "pending"
    )
    if not cleeng and not mollie:
        return None
    if mollie and (not cleeng or mollie[0] <= cleeng[0]):
        mine, others = mollie, cleeng
    else:
        mine, others = cleeng, mollie
    group = [m for m in mine if m <= mine[0] + CLUSTER and (not others or m < others[0])]
    moment = max(group, default=mine[0])
    if mine is cleeng:
        return "mollie", mine[0], moment
    return ("cleeng" if not cleeng or moment < cleeng[0] else "mollie"), mine[0], moment


def all_recorded(
    http: httpx.Client, args: argparse.Namespace, subscription_id: str, mollie_customer: str
) -> bool:
    """Cleeng shows every charge as Mollie has it: pending authorized, paid captured, failed
    rejected."""
    recorded = {
        p["externalPaymentId"]: p["status"]
        for p in cleeng_renewals(http, args, subscription_id).values()
    }
    return all(
        recorded.get(charge_id) == RECORDED_AS.get(charge["status"])
        for charge_id, charge in mollie_charges(http, args, mollie_customer).items()
    )


def await_recorded(
    http: httpx.Client, args: argparse.Namespace, subscription_id: str, mollie_customer: str
) -> bool:
    deadline = time.monotonic() + STEP_DEADLINE_SECONDS
    while not all_recorded(http, args, subscription_id, mollie_customer):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


TOPIC_NAMES = {
    "subscriptionReadyForPaymentAuthorisation": "authorisation",
    "subscriptionReadyForPaymentCapture": "capture",
    "subscriptionReadyForTermination": "termination",
}


def webhooks_sent(http: httpx.Client, args: argparse.Namespace, subscription_id: str) -> list[str]:
    """Every dunning webhook Cleeng sent for the subscription, as `topic (attempt date)`."""
    items = http.get(f"{args.cleeng}/_emulator/webhooks").raise_for_status().json()["items"]
    return [
        f"{TOPIC_NAMES.get(d['topic'], d['topic'])} webhook "
        f"(attempt {d['payload']['data']['dunningAttemptDate']})"
        for d in items
        if str(d["payload"]["data"].get("subscriptionId")) == subscription_id
        and d["topic"] in TOPIC_NAMES
    ]


def describe_changes(
    before: tuple[dict[str, dict[str, Any]], dict[int, dict[str, Any]]],
    after: tuple[dict[str, dict[str, Any]], dict[int, dict[str, Any]]],
) -> list[str]:
    """What changed at Mollie and in Cleeng between two snapshots, one line each."""
    lines: list[str] = []
    for charge_id, charge in after[0].items():
        old = before[0].get(charge_id, {}).get("status")
        if old != charge["status"]:
            amount = f"{charge['amount']['value']} {charge['amount']['currency']}"
            change = (
                f"{old} -> {charge['status']}" if old else f"{charge['status']} (new, {amount})"
            )
            reason = f" ({charge['failureReason']})" if charge.get("failureReason") else ""
            lines.append(f"Mollie {charge_id}: {change}{reason}")
    for payment_id, payment in after[1].items():
        old = before[1].get(payment_id, {}).get("status")
        if old != payment["status"]:
            change = f"{old} -> {payment['status']}" if old else f"{payment['status']} (new)"
            reason = f" ({payment['rejectedReason']})" if payment.get("rejectedReason") else ""
            lines.append(
                f"Cleeng payment {payment_id} ({payment['externalPaymentId']}): {change}{reason}"
            )
    return lines


def move_mollie(http: httpx.Client, args: argparse.Namespace, moment: datetime) -> None:
    """The Mollie emulator's clock to `moment` (settling what falls due on the way)."""
    now = clock_now(http, args.mollie)
    if moment > now:
        http.post(
            f"{args.mollie}/_emulator/clock/advance",
            json={"seconds": (moment - now).total_seconds()},
            timeout=None,
        ).raise_for_status()


def move_cleeng(
    http: httpx.Client,
    args: argparse.Namespace,
    mollie_customer: str,
    moment: datetime,
    *,
    catch_up: bool = True,
) -> None:
    """The Cleeng emulator's clock to `moment`, sending the dunning webhooks due on the way (one
    whose time has passed, needed again after a refused debit, on a move of zero seconds unless
    `catch_up` is off)."""
    now = clock_now(http, args.cleeng)
    if moment <= now and not catch_up:
        return
    move: dict[str, Any] = {"to": iso(moment)} if moment > now else {"seconds": 0}
    # Cleeng's engine waits after each webhook until the connector recorded something. While
    # a debit is pending the connector charges nothing more and records nothing until it
    # settles, so there is nothing to wait for.
    pending = any(
        p["status"] == "pending" for p in mollie_charges(http, args, mollie_customer).values()
    )
    http.post(
        f"{args.cleeng}/_emulator/clock/advance",
        json={**move, "settleSeconds": 0 if pending else SETTLE_SECONDS},
        timeout=None,
    ).raise_for_status()


def play_month_in_lockstep(
    http: httpx.Client,
    args: argparse.Namespace,
    customer_id: int,
    subscription_id: str,
    due: datetime,
) -> dict[str, Any] | None:
    """Move both clocks together, through every dunning webhook and every settlement of the
    cycle due at `due`, until it renewed or ended; print what each move did. Each move takes
    both clocks to the next moment, the one with nothing due there first, so whatever happens
    happens with both clocks showing that moment."""
    mollie_customer = mollie_customer_of(http, args, customer_id)

    def snapshot() -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, Any]]]:
        return (
            mollie_charges(http, args, mollie_customer),
            cleeng_renewals(http, args, subscription_id),
        )

    for _ in range(MOVES_PER_MONTH):
        subscription = subscription_of(http, args.cleeng, customer_id)
        if subscription is not None and (
            subscription["status"] != "active" or utc(subscription["dateTo"]) > due
        ):
            return subscription
        upcoming = next_moment(http, args, subscription_id, mollie_customer)
        if upcoming is None:
            return None
        first, start, moment = upcoming
        before = snapshot()
        sent_before = len(webhooks_sent(http, args, subscription_id))
        # Both clocks to just before the move (nothing is due there), so whatever happens at
        # the moment, both show it within the seconds they also run in real time.
        move_mollie(http, args, start - JUST_BEFORE)
        move_cleeng(http, args, mollie_customer, start - JUST_BEFORE, catch_up=False)
        recorded = True
        for emulator in (first, "cleeng" if first == "mollie" else "mollie"):
            if emulator == "mollie":
                move_mollie(http, args, moment)
            else:
                move_cleeng(http, args, mollie_customer, moment)
            recorded = await_recorded(http, args, subscription_id, mollie_customer) and recorded
        lines = webhooks_sent(http, args, subscription_id)[sent_before:]
        lines = [f"Cleeng sent the {line}" for line in lines]
        lines += describe_changes(before, snapshot())
        if not recorded:
            lines.append(
                f"(Cleeng does not show every charge as Mollie has it after "
                f"{STEP_DEADLINE_SECONDS} s)"
            )
        stamp = iso(moment)
        for i, line in enumerate(lines or ["nothing changed"]):
            print(f"     {stamp if i == 0 else ' ' * len(stamp)}  {line}")
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
    parser.add_argument("--months", type=int, default=12, help="renewals to play (default 12)")
    parser.add_argument(
        "--method",
        choices=("creditcard", "ideal", "paypal"),
        default="creditcard",
        help="how the subscriber pays first: a card, iDEAL (leaves a SEPA Direct Debit "
        "mandate) or PayPal (default creditcard)",
    )
    parser.add_argument(
        "--settle-hours",
        type=float,
        default=MollieEmulatorConfig().pending_settle_seconds / 3600,
        help="how long the Mollie emulator keeps a direct debit pending, on its clock "
        "(its --pending-settle-seconds; default %(default)s)",
    )
    parser.add_argument(
        "--fail-attempts",
        type=int,
        default=0,
        metavar="N",
        help="the first N renewal charges decline (5 in one cycle end the subscription)",
    )
    args = parser.parse_args()
    resolve_stack(args)

    with reporting_unreachable(args), httpx.Client(timeout=60) as http:
        card = args.method == "creditcard"
        state, customer_id = buy(http, args, None if card else args.method)
        subscription = subscription_of(http, args.cleeng, customer_id)
        if state["status"] != "captured" or subscription is None:
            print("\nThe purchase did not go through; no subscription to renew.")
            return 1
        subscription_id = str(subscription["subscriptionId"])
        show("3. The subscription in Cleeng", subscription)
        if args.fail_attempts > 0:
            decline_charges(http, args, customer_id, args.fail_attempts)

        if card:
            print(f"\n4. Moving the Cleeng clock {args.months} month(s), one renewal at a time")
        else:
            print(
                f"\n4. Moving the Cleeng and Mollie clocks together {args.months} month(s), "
                "through every dunning webhook and settlement"
            )
        workflow_ids: list[str] = []
        complete = True
        for month in range(1, args.months + 1):
            due = utc(subscription["dateTo"])
            workflow_ids.append(f"billing:{subscription_id}:{iso(due)}")
            if card:
                after = play_month(http, args, customer_id, due)
            else:
                print(f"   month {month:2}: cycle due {iso(due)}")
                after = play_month_in_lockstep(http, args, customer_id, subscription_id, due)
            if after is None:
                limit = f"{MONTH_DEADLINE_SECONDS} s" if card else f"{MOVES_PER_MONTH} moves"
                print(
                    f"   month {month:2}: cycle due {iso(due)} did not finish within "
                    f"{limit}. Is the connector subscribed to Cleeng's "
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
        f"  or: {temporal_cli_recipe(args.data_dir)} workflow list --query '{query}'"
    )
    return 0 if complete else 1


def temporal_cli_recipe(data_dir: Path) -> str:
    """The `temporal` CLI of the venv, pointed at this stack's server and codec server (the
    histories are encrypted), so the printed recipe works as typed on any ports."""
    stack = read_stack_file(data_dir)
    address = (stack.get("TEMPORAL_ADDRESS") if stack else None) or "127.0.0.1:7233"
    codec = (stack.get("TEMPORAL_CODEC_ENDPOINT") if stack else None) or "http://127.0.0.1:8234"
    return f".venv/bin/temporal --address {address} --codec-endpoint {codec}"


if __name__ == "__main__":
    sys.exit(main())
