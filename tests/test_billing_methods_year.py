"""Renewals by card, by SEPA Direct Debit (a mandate from iDEAL) and by PayPal, in both of
Cleeng's recurring modes, with the Cleeng and Mollie clocks moving together.

Subscribers buy through the shim with `method` creditcard, ideal or paypal and pay on Mollie's
checkout page; the first payment leaves a `creditcard`, `directdebit` or `paypal` mandate.
Then `tests/support/clocks.Lockstep` moves both emulator clocks through every dunning webhook
and every settlement. A direct debit stays `pending` at Mollie for three days of Mollie's clock
while Cleeng lets a renewal order expire 24 hours after it was created unless its payment is
recorded, and Mollie holds funds (manual capture) on card mandates only. What a subscriber
and a publisher care about:

- every cycle renews exactly once, whatever the method and the mode;
- Cleeng's ledger and Mollie's agree payment for payment, and the connector refunds nothing;
- a direct debit is `authorized` in Cleeng while Mollie has it pending, then `captured` when
  it is paid, or `rejected` with Mollie's reason when the bank refuses it, after which
  Cleeng's next dunning attempt charges again;
- nothing is recorded `rejected` that Mollie did not refuse (a valid mandate never charged, a
  charge that was then paid).

Cleeng's dunning settings for Mollie in the two runs with refusals: attempts 160, 80, 48, 24
and 0 hours before the due date (authorise-then-capture: an authorisation at each, the
capture at the due date; capture-only, `authorizedFirst: false`: a charge at each). A
publisher billing direct debits starts that early so that a debit refused when it would have
settled, three days after the first attempt, still leaves an attempt whose debit settles by
the due date. With Cleeng's default (the first attempt 72 hours before the due date) a refused
debit is known only after the last attempt, and a paid one settles within a second of the
capture webhook at the due date (both emulator clocks also run in real time, so which comes
first is not defined); the third run starts 71 hours before, so a debit is plainly still
pending when Cleeng's capture webhooks come and settles an hour into the grace period.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
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
from domain.billing import CYCLE_CAPTURED, BillingView, billing_workflow_id
from emulators.mollie.config import MollieEmulatorConfig
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.billing import Subscriber, subscribed_customer
from tests.support.clocks import Lockstep, fail_next_charges, set_dunning

pytestmark = pytest.mark.asyncio

# Hours before the due date of each dunning attempt (see the module docstring).
SEPA_DUNNING = [160, 80, 48, 24, 0]
PENDING_AT_DUE_DUNNING = [71, 48, 24, 0]
SETTLE_DELAY = timedelta(seconds=MollieEmulatorConfig().pending_settle_seconds)
FAILURE_REASON = "insufficient_funds"
RESULT_DEADLINE_SECONDS = 30

AUTHORISED = ("authorized", "authorized")  # Cleeng authorized, Mollie holds the funds
DEBIT_PENDING = ("authorized", "pending")  # Cleeng authorized, Mollie has the debit pending
PAID = ("captured", "paid")
REFUSED = ("rejected", "failed")


@dataclass(frozen=True)
class Plan:
    """A subscriber: how they paid first, the mandate that leaves, and which renewals
    (1 = the first) the bank refuses once."""

    name: str
    method: str
    mandate: str
    price: str
    refused: frozenset[int] = field(default_factory=frozenset)

    @property
    def sepa(self) -> bool:
        return self.mandate == "directdebit"

    def path(self, authorised_first: bool, refused: bool) -> list[tuple[str, str]]:
        """The (Cleeng, Mollie) statuses one renewal charge goes through."""
        if self.sepa:
            return [DEBIT_PENDING, REFUSED if refused else PAID]
        if self.mandate == "creditcard" and authorised_first:
            return [AUTHORISED, PAID]
        return [PAID]


PLANS = (
    Plan("card", "creditcard", "creditcard", "9.99"),
    Plan("SEPA from iDEAL", "ideal", "directdebit", "12.50"),
    Plan("PayPal", "paypal", "paypal", "7.49"),
)


def with_refusals(months: int, *refused: int) -> tuple[Plan, ...]:
    """The three plans, and a second SEPA subscriber whose bank refuses some debits."""
    assert all(1 <= m <= months for m in refused)
    sepa_refused = Plan(
        "SEPA from iDEAL, refused at settlement",
        "ideal",
        "directdebit",
        "15.00",
        frozenset(refused),
    )
    return (*PLANS, sepa_refused)


@dataclass
class Year:
    """What one run left behind, for the assertions."""

    plans: tuple[Plan, ...]
    subscribers: list[Subscriber]
    lockstep: Lockstep
    months: int
    authorised_first: bool
    attempts: list[int]
    final: dict[str, Any]
    cleeng: dict[str, Any]
    cleeng_payments: list[dict[str, Any]]
    mollie: list[dict[str, Any]]
    mollie_requests: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]


@pytest.fixture
async def methods_connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
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


async def play(
    connector: Connector,
    plans: tuple[Plan, ...],
    months: int,
    *,
    authorised_first: bool,
    attempts: list[int],
) -> Year:
    async with httpx.AsyncClient(timeout=60) as http:
        await set_dunning(
            http, connector, authorized_first=authorised_first, payment_attempts=attempts
        )
        subscribers = [
            await subscribed_customer(connector, method=plan.method, price=float(plan.price))
            for plan in plans
        ]
        lockstep = Lockstep(connector, http, SETTLE_DELAY)
        lockstep.watch(s.subscription_id for s in subscribers)
        await lockstep.note(await lockstep.cleeng_now())
        for month in range(1, months + 1):
            for plan, subscriber in zip(plans, subscribers, strict=True):
                if month in plan.refused:
                    await fail_next_charges(
                        http, connector, subscriber.mollie_customer_id, 1, FAILURE_REASON
                    )
            await lockstep.play_cycle()

        async def get(url: str) -> Any:
            response = await http.get(url)
            response.raise_for_status()
            return response.json()

        cleeng_url, mollie_url = connector.emulators.cleeng_url, connector.emulators.mollie_url
        return Year(
            plans=plans,
            subscribers=subscribers,
            lockstep=lockstep,
            months=months,
            authorised_first=authorised_first,
            attempts=attempts,
            final=await lockstep.subscriptions(),
            cleeng=await get(f"{cleeng_url}/_emulator/ledger"),
            cleeng_payments=await lockstep.cleeng_payments(),
            mollie=await lockstep.mollie_payments(),
            mollie_requests=(await get(f"{mollie_url}/_emulator/requests"))["requests"],
            webhooks=(await get(f"{cleeng_url}/_emulator/webhooks"))["items"],
        )


def minor(amount: dict[str, str]) -> tuple[str, int]:
    return amount["currency"], int(Decimal(amount["value"]).scaleb(2))


async def assert_every_cycle_renewed_once(connector: Connector, year: Year) -> None:
    for plan, subscriber in zip(year.plans, year.subscribers, strict=True):
        dues = year.lockstep.dues[subscriber.subscription_id]
        assert len(dues) == year.months, plan.name
        assert dues == sorted(set(dues)), plan.name
        for cycle, due in enumerate(dues, start=1):
            handle = connector.client.get_workflow_handle(
                billing_workflow_id(subscriber.subscription_id, iso_utc(due)),
                result_type=BillingView,
            )
            view = await asyncio.wait_for(handle.result(), RESULT_DEADLINE_SECONDS)
            assert view.status == CYCLE_CAPTURED, (plan.name, cycle, view)
            # Charged (or held) at Cleeng's first attempt; after a refusal, again at the next.
            charged_at: dict[str, str] = {}
            for attempt in view.attempts:
                if attempt.mollie_payment_id is not None:
                    charged_at.setdefault(attempt.mollie_payment_id, attempt.attempt_date)
            attempts = [iso_utc(due - timedelta(hours=h)) for h in year.attempts]
            wanted = attempts[:2] if cycle in plan.refused else attempts[:1]
            assert list(charged_at.values()) == wanted, (plan.name, cycle, view)
        subscription = year.final[subscriber.subscription_id]
        assert subscription["status"] == "active", plan.name
        # Renewed once per cycle: the due date moved exactly one month past the last one.
        assert subscription["dateTo"] > dues[-1].timestamp(), plan.name
        assert subscription["dateTo"] - dues[-1].timestamp() <= 31 * 86400, plan.name


def assert_ledgers_agree(year: Year) -> None:
    """Payment for payment, as tests/test_billing_year.py compares them; no refunds."""
    cleeng = year.cleeng["items"]
    mollie = {p["id"]: p for p in year.mollie}
    assert year.cleeng["duplicateRecords"] == 0, year.cleeng["duplicates"]
    cleeng_ids = [p["externalPaymentId"] for p in cleeng]
    assert len(cleeng_ids) == len(set(cleeng_ids)), "a Mollie payment recorded twice in Cleeng"

    for record in cleeng:
        # Nothing left authorised, nothing refunded, nothing recorded without a charge.
        assert record["status"] in ("captured", "rejected"), record
        assert record["refundedMinor"] == 0, record
        external = mollie.get(record["externalPaymentId"])
        assert external is not None, record
        assert minor(external["amount"]) == (record["currency"], record["amountMinor"])
        wanted = "paid" if record["status"] == "captured" else "failed"
        assert external["status"] == wanted, (record, external)
        if record["paymentOperation"] == contract.PAYMENT_OPERATION_RECURRING:
            assert external["sequenceType"] == "recurring", external
            assert external["metadata"]["subscriptionId"] == str(record["subscriptionId"])

    status_in_cleeng = {p["externalPaymentId"]: p["status"] for p in cleeng}
    for payment in mollie.values():
        assert payment["status"] in ("paid", "failed"), payment
        wanted = "captured" if payment["status"] == "paid" else "rejected"
        assert status_in_cleeng.get(payment["id"]) == wanted, payment
        assert payment["refunds"] == [], payment
        assert minor(payment["amountRefunded"])[1] == 0, payment
        assert payment["chargebacks"] == [], payment

    captured = sum(minor(p["amount"])[1] for p in mollie.values() if p["status"] == "paid")
    assert year.cleeng["totals"]["EUR"]["capturedMinor"] == captured
    assert year.cleeng["totals"]["EUR"]["refundedMinor"] == 0
    assert year.cleeng["totals"]["EUR"]["authorizedMinor"] == 0
    # Mollie was never asked for something it refuses (a hold on a SEPA or PayPal mandate).
    assert [r for r in year.mollie_requests if r["status"] == 422] == []


def assert_each_method_took_its_path(year: Year) -> None:
    mollie = {p["id"]: p for p in year.mollie}
    records = {p["id"]: p for p in year.cleeng_payments}
    for plan, subscriber in zip(year.plans, year.subscribers, strict=True):
        renewals = sorted(
            (
                p
                for p in year.cleeng_payments
                if str(p["subscriptionId"]) == subscriber.subscription_id
                and p["paymentOperation"] == contract.PAYMENT_OPERATION_RECURRING
            ),
            key=lambda p: p["id"],
        )
        statuses = Counter(p["status"] for p in renewals)
        assert statuses == Counter({"captured": year.months, "rejected": len(plan.refused)}), (
            plan.name
        )
        at_mollie = [
            p
            for p in year.mollie
            if p["customerId"] == subscriber.mollie_customer_id and p["sequenceType"] == "recurring"
        ]
        assert Counter(p["status"] for p in at_mollie) == Counter(
            {"paid": year.months, "failed": len(plan.refused)}
        ), plan.name
        for payment in at_mollie:
            assert payment["method"] == plan.mandate, (plan.name, payment)
            # Only a card mandate is ever asked to hold funds, and only when Cleeng
            # authorises first.
            held = plan.mandate == "creditcard" and year.authorised_first
            assert payment["captureMode"] == ("manual" if held else "automatic"), payment
        for record in renewals:
            refused = record["status"] == "rejected"
            path = year.lockstep.path(record["id"])
            assert path == plan.path(year.authorised_first, refused), (plan.name, record, path)
            if refused:
                # Mollie's reason, recorded on the charge Mollie refused.
                failed = mollie[record["externalPaymentId"]]
                assert failed["failureReason"] == FAILURE_REASON, failed
                assert FAILURE_REASON in (record["rejectedReason"] or ""), record
        # A refused debit: Cleeng's next attempt in the same cycle charged again, and that
        # charge (a new Mollie payment, a new Cleeng record) was paid.
        by_cycle: dict[int, list[dict[str, Any]]] = {}
        for record in renewals:
            first_seen = year.lockstep.sightings[record["id"]][0].at
            cycle = next(
                i
                for i, due in enumerate(year.lockstep.dues[subscriber.subscription_id], start=1)
                if first_seen <= due + timedelta(hours=2)
            )
            by_cycle.setdefault(cycle, []).append(record)
        assert sorted(by_cycle) == list(range(1, year.months + 1)), plan.name
        for cycle, cycle_records in by_cycle.items():
            wanted = ["rejected", "captured"] if cycle in plan.refused else ["captured"]
            assert [r["status"] for r in cycle_records] == wanted, (plan.name, cycle)
            if cycle in plan.refused:
                rejected, captured = cycle_records
                refused_at = next(
                    s.at
                    for s in year.lockstep.sightings[rejected["id"]]
                    if s.cleeng_status == "rejected"
                )
                assert year.lockstep.sightings[captured["id"]][0].at >= refused_at
                assert rejected["externalPaymentId"] != captured["externalPaymentId"]
                assert records[captured["id"]]["status"] == "captured"


def assert_webhooks_delivered(year: Year) -> None:
    assert [d for d in year.webhooks if d["status"] != "delivered" or not d["signed"]] == []
    # No cycle came near its end unpaid.
    assert [d for d in year.webhooks if d["topic"] == contract.TOPIC_TERMINATION] == []


async def assert_year(connector: Connector, year: Year) -> None:
    await assert_every_cycle_renewed_once(connector, year)
    assert_ledgers_agree(year)
    assert_each_method_took_its_path(year)
    assert_webhooks_delivered(year)


@pytest.mark.long_running(seconds=12)
async def test_a_year_of_renewals_per_method_authorised_then_captured(
    methods_connector: Connector,
) -> None:
    """Cleeng authorises first: a card is held, then captured at the due date; a direct debit
    and PayPal are charged at the first authorisation. Two debits are refused at settlement."""
    months = 12
    plans = with_refusals(months, 2, 7)
    year = await play(
        methods_connector, plans, months, authorised_first=True, attempts=SEPA_DUNNING
    )
    await assert_year(methods_connector, year)


async def test_renewals_per_method_capture_only(methods_connector: Connector) -> None:
    """Cleeng charges at each attempt (`authorizedFirst: false`); one debit is refused at
    settlement, and the captures that come while its second debit is pending charge nothing."""
    months = 4
    plans = with_refusals(months, 3)
    year = await play(
        methods_connector, plans, months, authorised_first=False, attempts=SEPA_DUNNING
    )
    await assert_year(methods_connector, year)


@pytest.mark.parametrize("authorised_first", [True, False], ids=["authorise", "capture-only"])
async def test_renewals_per_method_debit_pending_at_the_due_date(
    methods_connector: Connector, authorised_first: bool
) -> None:
    """A debit made 71 hours before the due date is still pending when Cleeng's capture
    webhooks come (at the due date; capture-only: 48, 24 and 0 hours before it too). They
    charge nothing more; the debit settles an hour later, inside the grace period."""
    months = 3
    year = await play(
        methods_connector,
        PLANS,
        months,
        authorised_first=authorised_first,
        attempts=PENDING_AT_DUE_DUNNING,
    )
    await assert_year(methods_connector, year)
    [sepa] = [s for p, s in zip(PLANS, year.subscribers, strict=True) if p.sepa]
    dues = year.lockstep.dues[sepa.subscription_id]
    captures = sorted(
        d["payload"]["data"]["dunningAttemptDate"]
        for d in year.webhooks
        if d["topic"] == contract.TOPIC_CAPTURE
        and str(d["payload"]["data"]["subscriptionId"]) == sepa.subscription_id
    )
    hours = [0] if authorised_first else PENDING_AT_DUE_DUNNING
    assert captures == sorted(iso_utc(due - timedelta(hours=h)) for due in dues for h in hours)
    for record in year.cleeng_payments:
        if (
            str(record["subscriptionId"]) == sepa.subscription_id
            and record["paymentOperation"] == contract.PAYMENT_OPERATION_RECURRING
        ):
            # Still `authorized` when the capture webhook came at its due date; `captured`
            # once the debit settled, an hour into the grace period.
            sightings = year.lockstep.sightings[record["id"]]
            captured_at = next(s.at for s in sightings if s.cleeng_status == "captured")
            assert any(
                timedelta(hours=1) <= captured_at - due < timedelta(hours=2) for due in dues
            ), sightings
