"""Drift injected into the running sandbox (started by `scripts/run`), found and repaired.

.venv/bin/python scripts/demo_reconciliation.py
.venv/bin/python scripts/demo_reconciliation.py --data-dir .data-b   # another stack

It buys a monthly subscription, lets Cleeng's emulator ask for the renewal's authorisation,
then breaks three things the way production breaks them:
1. an operator terminates the billing cycle while its card hold is open (an orphan hold);
2. with Mollie's webhooks lost, someone refunds 1.00 in Mollie's Dashboard, and
3. the bank charges 2.00 back.
A reconciliation run (`python -m connector_ops reconcile now` does the same) finds all three
and repairs each through the connector's own workflows; a second run finds nothing left.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from typing import Any

import httpx
from demo_renewals import buy, iso, mollie_customer_of, subscription_of, utc
from demo_stack import reporting_unreachable, resolve_stack, show, stack_arguments
from temporalio.client import Client

from codec.keys import with_sandbox_keys
from connector_ops.schedules import reconcile_now
from connector_ops.stack_file import follow_stack
from domain.reconciliation import ReconciliationReport
from settings import EMULATOR_MOLLIE_API_KEY, Settings
from temporal_connection import connect_temporal, load_settings

AUTHORISED_DEADLINE_SECONDS = 60


def mollie_payments(http: httpx.Client, mollie: str) -> list[dict[str, Any]]:
    ledger = http.get(f"{mollie}/_emulator/ledger").raise_for_status().json()
    payments: list[dict[str, Any]] = ledger["payments"] if isinstance(ledger, dict) else ledger
    return payments


def wait_for_hold(http: httpx.Client, mollie: str, customer_id: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + AUTHORISED_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for payment in mollie_payments(http, mollie):
            if (
                payment.get("customerId") == customer_id
                and payment.get("sequenceType") == "recurring"
                and payment.get("status") == "authorized"
            ):
                return payment
        time.sleep(0.5)
    return None


def print_report(title: str, report: ReconciliationReport) -> None:
    print(f"\n== {title}\n{report.summary()}")
    for finding in report.findings:
        print(f"  - {finding.kind:24} {finding.action:18} {finding.detail}")


def stack_settings(args: argparse.Namespace) -> Settings:
    """The settings of the stack in --data-dir: its Temporal address (unless the environment
    sets TEMPORAL_ADDRESS) and, in sandbox mode, its key ring."""
    args.stack = follow_stack(args.data_dir)
    return with_sandbox_keys(load_settings(), args.data_dir)


async def connect(args: argparse.Namespace, settings: Settings) -> Client:
    try:
        return await connect_temporal(settings)
    except RuntimeError as error:  # the SDK's connect failure
        print(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"({args.stack.origin('TEMPORAL_ADDRESS')}): {type(error).__name__}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


async def reconcile(args: argparse.Namespace) -> tuple[ReconciliationReport, ReconciliationReport]:
    settings = stack_settings(args)
    client = await connect(args, settings)
    first = await reconcile_now(client, settings, window_hours=args.window_hours, repair=True)
    second = await reconcile_now(client, settings, window_hours=args.window_hours, repair=True)
    return first, second


async def terminate(args: argparse.Namespace, workflow_id: str) -> None:
    client = await connect(args, stack_settings(args))
    await client.get_workflow_handle(workflow_id).terminate("demo: terminated by mistake")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stack_arguments(parser)
    parser.add_argument("--window-hours", type=int, default=24, help="default %(default)s")
    args = parser.parse_args()
    resolve_stack(args)
    mollie_auth = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}

    with reporting_unreachable(args), httpx.Client(timeout=60) as http:
        state, customer_id = buy(http, args)
        subscription = subscription_of(http, args.cleeng, customer_id)
        if state["status"] != "captured" or subscription is None:
            print("\nThe purchase did not go through.")
            return 1
        due = utc(subscription["dateTo"])
        http.post(
            f"{args.cleeng}/_emulator/clock/advance",
            json={"to": iso(due - timedelta(hours=71)), "settleSeconds": 5},
            timeout=None,
        ).raise_for_status()
        hold = wait_for_hold(http, args.mollie, mollie_customer_of(http, args, customer_id))
        if hold is None:
            print("\nNo renewal was authorised. Is the connector subscribed to Cleeng's webhooks?")
            return 1
        cycle = f"billing:{subscription['subscriptionId']}:{iso(due)}"
        show(f"3. Renewal authorised: card hold {hold['id']} owned by {cycle}", hold)

        asyncio.run(terminate(args, cycle))
        print(f"\n4. Drift: {cycle} terminated while its hold is open")

        purchase_payment = state["molliePaymentId"]
        http.post(f"{args.mollie}/_emulator/faults", json={"dropWebhookRate": 1.0})
        try:
            refund = http.post(
                f"{args.mollie}/v2/payments/{purchase_payment}/refunds",
                json={"amount": {"currency": "EUR", "value": "1.00"}, "description": "Dashboard"},
                headers=mollie_auth,
            ).raise_for_status()
            http.post(
                f"{args.mollie}/_emulator/refunds/{refund.json()['id']}/status",
                json={"status": "refunded"},
            ).raise_for_status()
            http.post(
                f"{args.mollie}/_emulator/payments/{purchase_payment}/chargeback",
                json={"amount": {"currency": "EUR", "value": "2.00"}, "reason": "fraud"},
            ).raise_for_status()
            print(
                f"5. Drift: 1.00 refunded in Mollie's Dashboard and 2.00 charged back on "
                f"{purchase_payment}, their webhooks lost"
            )
            first, second = asyncio.run(reconcile(args))
        finally:
            http.delete(f"{args.mollie}/_emulator/faults")
        print_report("6. Reconciliation", first)
        print_report("7. Reconciliation again: repaired once, nothing left", second)
        order_payments = http.get(
            f"{args.cleeng}/_emulator/payments", params={"customerId": customer_id}
        ).raise_for_status()
        show("8. Cleeng's records of the customer", order_payments.json()["items"])
    return 0 if first.repaired == 3 and not second.findings else 1


if __name__ == "__main__":
    sys.exit(main())
