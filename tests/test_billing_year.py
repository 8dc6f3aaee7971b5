"""A year of monthly renewals, driven by the Cleeng emulator's billing engine and clock.

Six subscribers buy through the shim; the connector is registered for Cleeng's dunning
webhooks; the Cleeng clock then moves twelve months, one cycle at a time, with the emulator's
default dunning settings (authorise 72, 48, 24 and 0 hours before the due date, capture at
it, terminate 2 hours after). Some cards decline some charges, one so often that its
subscription is terminated. Afterwards Cleeng's ledger and Mollie's must agree payment for
payment, and every cycle's workflow must have taken exactly the path its declines call for.

The Mollie clock stays put: authorisations hold for 7 days on it, so none expires.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

import webhook_registration
from api.cleeng_payloads import iso_utc
from api.cleeng_webhooks import HANDLED_TOPICS
from clients import cleeng_contract as contract
from clients.cleeng import CleengClient
from domain.billing import BillingView, billing_workflow_id
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.billing import Subscriber, subscribed_customer

pytestmark = pytest.mark.asyncio

MONTHS = 12
# Past the due date plus the default grace period (2 h), short of the next cycle's first
# attempt (72 h before a due date a month later).
PAST_GRACE = timedelta(hours=3)
# Real seconds the billing engine waits for the connector after each webhook; a step takes
# well under one, so the engine never sends the next attempt while the last one runs.
SETTLE_SECONDS = 30
DEADLINE_SECONDS = 30
# Charges Cleeng's default dunning asks for in a cycle: four authorisations, then (with none
# authorised) the capture charges the card directly.
ATTEMPTS_PER_CYCLE = 5


@dataclass(frozen=True)
class Plan:
    """A subscriber: the price, and how many charges decline in which renewal (1 = first)."""

    name: str
    price: str
    declines: dict[int, int] = field(default_factory=dict)

    def outcomes(self, cycle: int) -> list[str]:
        """What the cycle's workflow records, attempt by attempt."""
        declined = self.declines.get(cycle, 0)
        if declined >= ATTEMPTS_PER_CYCLE:
            return ["rejected"] * ATTEMPTS_PER_CYCLE + ["terminated"]
        if declined == ATTEMPTS_PER_CYCLE - 1:
            return ["rejected"] * declined + ["captured"]
        return ["rejected"] * declined + ["authorised", "captured"]

    def webhooks(self, cycle: int) -> Counter[str]:
        """Topics the engine sends in the cycle: authorisations until one holds, and so on."""
        declined = self.declines.get(cycle, 0)
        sent = Counter(
            {
                contract.TOPIC_AUTHORISATION: min(declined + 1, ATTEMPTS_PER_CYCLE - 1),
                contract.TOPIC_CAPTURE: 1,
            }
        )
        if declined >= ATTEMPTS_PER_CYCLE:
            sent[contract.TOPIC_TERMINATION] = 1
        return sent

    @property
    def cycles(self) -> int:
        """Cycles played: up to the one that ends in termination, else every month."""
        ending = [c for c, n in self.declines.items() if n >= ATTEMPTS_PER_CYCLE]
        return min(ending, default=MONTHS)

    @property
    def renewals(self) -> int:
        return self.cycles - 1 if self.terminated else self.cycles

    @property
    def terminated(self) -> bool:
        return any(n >= ATTEMPTS_PER_CYCLE for n in self.declines.values())

    @property
    def declined_charges(self) -> int:
        return sum(n for c, n in self.declines.items() if c <= self.cycles)


PLANS = (
    Plan("pays every month", "9.99"),
    Plan("declined once, authorised on the next attempt", "4.99", {1: 1}),
    Plan("authorised on the last attempt", "12.50", {2: 3}),
    Plan("every authorisation declined, charged at the capture", "19.00", {3: 4}),
    Plan("every charge of month 4 declined: terminated", "7.49", {2: 1, 4: 5}),
    Plan("declines scattered over the year", "15.00", {5: 2, 9: 1, 12: 4}),
)


@pytest.fixture(scope="module")
async def year_connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    """A connector on emulators of its own, subscribed to Cleeng's dunning webhooks."""
    async with connector_on_own_emulators(temporal_env) as connector:
        settings = connector.settings
        cleeng = CleengClient(settings.cleeng_base_url, settings.effective_publisher_token)
        try:
            changed = await webhook_registration.register(
                cleeng,
                f"{connector.api_url}/webhooks/cleeng",
                settings.effective_webhook_secret,
                settings.cleeng_payment_method_id,
            )
        finally:
            await cleeng.aclose()
        assert sorted(changed) == sorted(HANDLED_TOPICS)
        yield connector


async def get_json(http: httpx.AsyncClient, url: str) -> Any:
    response = await http.get(url)
    response.raise_for_status()
    return response.json()


async def subscriptions(http: httpx.AsyncClient, connector: Connector) -> dict[str, Any]:
    body = await get_json(http, f"{connector.emulators.cleeng_url}/_emulator/subscriptions")
    return {str(s["subscriptionId"]): s for s in body["items"]}


async def eventually(
    check: Callable[[], Any], description: str, timeout: float = DEADLINE_SECONDS
) -> None:
    """Await an async `check` returning true, with a deadline."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {timeout} s: {description}")


async def decline_next_charges(
    http: httpx.AsyncClient, connector: Connector, subscriber: Subscriber, count: int
) -> None:
    response = await http.post(
        f"{connector.emulators.mollie_url}/_emulator/customers/"
        f"{subscriber.mollie_customer_id}/next-outcomes",
        json={"outcomes": [{"status": "failed", "failureReason": "insufficient_funds"}] * count},
    )
    response.raise_for_status()


async def play_one_cycle(
    http: httpx.AsyncClient, connector: Connector, played: dict[str, list[datetime]]
) -> None:
    """Move the Cleeng clock past every active subscription's due date and grace period,
    then await each of them renewed (its due date moved on) or terminated."""
    before = await subscriptions(http, connector)
    due = {
        sub_id: datetime.fromtimestamp(s["dateTo"], UTC)
        for sub_id, s in before.items()
        if s["status"] == "active"
    }
    target = max(due.values()) + PAST_GRACE
    response = await http.post(
        f"{connector.emulators.cleeng_url}/_emulator/clock/advance",
        json={"to": target.isoformat(), "settleSeconds": SETTLE_SECONDS},
    )
    response.raise_for_status()

    async def all_moved_on() -> bool:
        now = await subscriptions(http, connector)
        return all(
            now[sub_id]["status"] == "terminated"
            or datetime.fromtimestamp(now[sub_id]["dateTo"], UTC) > moment
            for sub_id, moment in due.items()
        )

    await eventually(all_moved_on, f"every subscription renewed or terminated after {target}")
    for sub_id, moment in due.items():
        played[sub_id].append(moment)


def minor(amount: dict[str, str]) -> tuple[str, int]:
    """A Mollie amount as (currency, minor units); every price here is in EUR."""
    assert amount["currency"] == "EUR"
    return amount["currency"], int(Decimal(amount["value"]).scaleb(2))


@pytest.mark.long_running(seconds=15)
async def test_a_year_of_renewals_leaves_both_ledgers_in_agreement(
    year_connector: Connector,
) -> None:
    connector = year_connector
    subscribers = [await subscribed_customer(connector, price=float(p.price)) for p in PLANS]
    played: dict[str, list[datetime]] = {s.subscription_id: [] for s in subscribers}

    async with httpx.AsyncClient(timeout=None) as http:
        for month in range(1, MONTHS + 1):
            for plan, subscriber in zip(PLANS, subscribers, strict=True):
                if declines := plan.declines.get(month):
                    await decline_next_charges(http, connector, subscriber, declines)
            await play_one_cycle(http, connector, played)

        final = await subscriptions(http, connector)
        cleeng_ledger = await get_json(http, f"{connector.emulators.cleeng_url}/_emulator/ledger")
        mollie_ledger = await get_json(http, f"{connector.emulators.mollie_url}/_emulator/ledger")
        webhooks = await get_json(http, f"{connector.emulators.cleeng_url}/_emulator/webhooks")

    # Every cycle's workflow finished, having done exactly what the declines call for.
    for plan, subscriber in zip(PLANS, subscribers, strict=True):
        dues = played[subscriber.subscription_id]
        assert len(dues) == plan.cycles, plan.name
        for cycle, due in enumerate(dues, start=1):
            handle = connector.client.get_workflow_handle(
                billing_workflow_id(subscriber.subscription_id, iso_utc(due)),
                result_type=BillingView,
            )
            view = await asyncio.wait_for(handle.result(), DEADLINE_SECONDS)
            assert [a.outcome for a in view.attempts] == plan.outcomes(cycle), (
                plan.name,
                cycle,
                view,
            )
        subscription = final[subscriber.subscription_id]
        if plan.terminated:
            assert subscription["status"] == "terminated", plan.name
            # It stopped renewing: the due date is still the one of the terminated cycle.
            assert datetime.fromtimestamp(subscription["dateTo"], UTC) == dues[-1]
        else:
            assert subscription["status"] == "active", plan.name
            assert datetime.fromtimestamp(subscription["dateTo"], UTC) > dues[-1]

    # Cleeng's webhooks: each one delivered, signed, and only those each cycle needed.
    items = webhooks["items"]
    assert [d for d in items if d["status"] != "delivered" or not d["signed"]] == []
    for plan, subscriber in zip(PLANS, subscribers, strict=True):
        sent: dict[str, Counter[str]] = {}
        for delivery in items:
            data = delivery["payload"]["data"]
            if str(data["subscriptionId"]) == subscriber.subscription_id:
                sent.setdefault(data["expirationDate"], Counter())[delivery["topic"]] += 1
        expected = {
            iso_utc(due): plan.webhooks(cycle)
            for cycle, due in enumerate(played[subscriber.subscription_id], start=1)
        }
        assert sent == expected, plan.name

    cleeng = cleeng_ledger["items"]
    mollie = {p["id"]: p for p in mollie_ledger["payments"]}
    cleeng_ids = [p["externalPaymentId"] for p in cleeng]
    assert len(cleeng_ids) == len(set(cleeng_ids)), "a Mollie payment recorded twice in Cleeng"

    # Cleeng -> Mollie: every captured payment was paid at Mollie, same money; every
    # rejected one failed there (or never reached Mollie); nothing is left authorised.
    for record in cleeng:
        assert record["status"] in ("captured", "rejected"), record
        external = mollie.get(record["externalPaymentId"])
        if record["status"] == "captured":
            assert external is not None, record
            assert external["status"] == "paid", (record, external)
            assert minor(external["amount"]) == (record["currency"], record["amountMinor"])
            assert minor(external["amountRefunded"]) == ("EUR", 0)
        elif external is None:
            assert record["externalPaymentId"].startswith("none:"), record
        else:
            assert external["status"] == "failed", (record, external)
            assert minor(external["amount"]) == (record["currency"], record["amountMinor"])
        if (
            external is not None
            and record["paymentOperation"] == contract.PAYMENT_OPERATION_RECURRING
        ):
            assert external["sequenceType"] == "recurring"
            assert external["metadata"]["subscriptionId"] == str(record["subscriptionId"])

    # Mollie -> Cleeng: every payment paid at Mollie is captured in Cleeng; every failed one
    # is recorded rejected; none is left authorised, open or pending.
    status_in_cleeng = {p["externalPaymentId"]: p["status"] for p in cleeng}
    for payment in mollie.values():
        assert payment["status"] in ("paid", "failed"), payment
        wanted = "captured" if payment["status"] == "paid" else "rejected"
        assert status_in_cleeng.get(payment["id"]) == wanted, payment

    captured_minor = sum(minor(p["amount"])[1] for p in mollie.values() if p["status"] == "paid")
    assert cleeng_ledger["totals"]["EUR"]["capturedMinor"] == captured_minor
    assert cleeng_ledger["totals"]["EUR"]["authorizedMinor"] == 0

    # Per subscription: one captured renewal per month renewed, one rejection per decline.
    for plan, subscriber in zip(PLANS, subscribers, strict=True):
        renewals = [
            p
            for p in cleeng
            if str(p["subscriptionId"]) == subscriber.subscription_id
            and p["paymentOperation"] == contract.PAYMENT_OPERATION_RECURRING
        ]
        statuses = Counter(p["status"] for p in renewals)
        assert statuses == Counter(
            {"captured": plan.renewals, "rejected": plan.declined_charges}
        ), plan.name
        at_mollie = Counter(
            p["status"]
            for p in mollie.values()
            if p["customerId"] == subscriber.mollie_customer_id and p["sequenceType"] == "recurring"
        )
        assert at_mollie == Counter({"paid": plan.renewals, "failed": plan.declined_charges})
        assert {p["amountMinor"] for p in renewals} == {int(Decimal(plan.price).scaleb(2))}
