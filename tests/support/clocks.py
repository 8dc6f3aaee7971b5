"""Both emulators' clocks moved together, for renewals whose charges settle days later.

The Cleeng emulator sends its dunning webhooks as its clock passes their times; the Mollie
emulator settles a SEPA debit `pending_settle_seconds` (three days) after the charge, as its
own clock passes that. Moving only Cleeng's clock leaves every debit pending; moving the two
apart lets one service see a moment the other has not reached. `Lockstep` plays one timeline
of discrete moments, in their order: the next webhook Cleeng's engine will send, or the next
pending Mollie charge due to settle, whichever comes first (a settlement first when both fall
on the same instant). Each move first brings both clocks to just before the moment (nothing
is due there), then takes them to the moment, the one with nothing due there first, so that
whatever happens at the moment happens with both clocks showing it (within the second or so
that both clocks, running in real time too, move while the connector works): a
charge the connector makes in answer to a Cleeng webhook is dated at the webhook's instant on
Mollie's clock too (a card hold made on a clock weeks behind would expire as soon as it
caught up), and the Cleeng record of a settlement is dated when the debit settled. A move goes
no further than the other emulator's next moment, so neither passes anything the other has
due. After each move it awaits the connector at rest:
every Cleeng and Mollie webhook answered, and every billing workflow of the subscriptions it
watches waiting (no workflow task and no activity pending) or closed. Nothing sleeps for a
fixed time.

After each move it also notes what both ledgers show, so a test can tell which states a
renewal went through (a direct debit `authorized` in Cleeng while `pending` at Mollie, then
`captured` once paid) and not only where it ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.cleeng_payloads import iso_utc
from domain.billing import billing_workflow_id
from tests.conftest import Connector

# Moments closer together than this are played as one: subscribers who bought a few seconds
# apart renew a few seconds apart, and their webhooks need no step each. Every gap the
# renewals depend on (dunning attempts, grace period, settlement) is hours long.
CLUSTER = timedelta(minutes=10)
# The ledgers' timestamps are whole seconds; a settlement is due up to a second after the
# pending charge's `createdAt` plus the settlement delay.
SETTLEMENT_SLACK = timedelta(seconds=1)
# How far before a move's first moment both clocks are brought first.
JUST_BEFORE = timedelta(seconds=2)
# Real seconds the connector may take to come to rest after one move of the clocks.
REST_DEADLINE_SECONDS = 30.0
# Moves allowed for one billing cycle before the driver gives up (a renewal that never ends).
MAX_STEPS_PER_CYCLE = 40


def parse_time(value: str | int) -> datetime:
    """A timestamp from either emulator: unix seconds, or ISO 8601 with `Z` or an offset."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


async def eventually(
    check: Callable[[], Awaitable[bool]], description: str, timeout: float
) -> None:
    """Await `check()` true, polling, with a deadline that fails the test."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {timeout} s: {description}")


@dataclass(frozen=True)
class Sighting:
    """A Cleeng payment record as seen after one move, with its Mollie payment's status."""

    at: datetime
    cleeng_status: str
    mollie_status: str | None


@dataclass
class Lockstep:
    """Moves the Cleeng and Mollie emulator clocks of one connector together."""

    connector: Connector
    http: httpx.AsyncClient
    settle_delay: timedelta
    """The Mollie emulator's `pending_settle_seconds`."""
    subscription_ids: set[str] = field(default_factory=set)
    """The subscriptions whose cycle workflows must be at rest after each move."""
    sightings: dict[int, list[Sighting]] = field(default_factory=dict)
    """Cleeng payment id -> every distinct (Cleeng status, Mollie status) seen, in order."""
    dues: dict[str, list[datetime]] = field(default_factory=dict)
    """Subscription id -> the due date of every cycle played."""
    steps: int = 0
    _open_cycles: set[str] = field(default_factory=set)

    @property
    def cleeng(self) -> str:
        return self.connector.emulators.cleeng_url

    @property
    def mollie(self) -> str:
        return self.connector.emulators.mollie_url

    def watch(self, subscription_ids: Iterable[str]) -> None:
        for subscription_id in subscription_ids:
            self.subscription_ids.add(subscription_id)
            self.dues.setdefault(subscription_id, [])

    async def _get(self, url: str, **params: Any) -> Any:
        response = await self.http.get(url, params=params or None)
        response.raise_for_status()
        return response.json()

    async def subscriptions(self) -> dict[str, dict[str, Any]]:
        body = await self._get(f"{self.cleeng}/_emulator/subscriptions")
        return {str(s["subscriptionId"]): s for s in body["items"]}

    async def cleeng_now(self) -> datetime:
        return parse_time((await self._get(f"{self.cleeng}/_emulator/clock"))["now"])

    async def mollie_now(self) -> datetime:
        return parse_time((await self._get(f"{self.mollie}/_emulator/clock"))["now"])

    async def mollie_payments(self) -> list[dict[str, Any]]:
        payments: list[dict[str, Any]] = (await self._get(f"{self.mollie}/_emulator/ledger"))[
            "payments"
        ]
        return payments

    async def cleeng_payments(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self._get(f"{self.cleeng}/_emulator/payments"))[
            "items"
        ]
        return items

    # ------------------------------------------------------------------------- timeline

    async def next_moment(self) -> tuple[str, datetime, datetime] | None:
        """Which clock moves first (the one with nothing due), the first moment of the move
        and the instant to move both to. Moments of one emulator within CLUSTER of its first
        are played in one move, never past the other emulator's next moment."""
        schedule = (await self._get(f"{self.cleeng}/_emulator/billing/schedule"))["items"]
        cleeng = sorted(parse_time(e["at"]) for e in schedule)
        mollie = sorted(
            parse_time(p["createdAt"]) + self.settle_delay + SETTLEMENT_SLACK
            for p in await self.mollie_payments()
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
        # A settlement due at the instant of a dunning webhook is known before it goes out.
        first = "cleeng" if not cleeng or moment < cleeng[0] else "mollie"
        return first, mine[0], moment

    async def move_to(self, first: str, start: datetime, moment: datetime) -> None:
        """Both clocks to just before `start`, then to `moment`, `first` first, the
        connector at rest after each."""
        await self._move_mollie(start - JUST_BEFORE)
        await self._move_cleeng(start - JUST_BEFORE, catch_up=False)
        await self.at_rest(f"after both clocks moved to {iso_utc(start - JUST_BEFORE)}")
        for emulator in (first, "cleeng" if first == "mollie" else "mollie"):
            if emulator == "mollie":
                await self._move_mollie(moment)
            else:
                await self._move_cleeng(moment)
            await self.at_rest(f"after {emulator}'s clock moved to {iso_utc(moment)}")
        self.steps += 1
        await self.note(moment)

    async def _move_mollie(self, moment: datetime) -> None:
        now = await self.mollie_now()
        if moment > now:
            response = await self.http.post(
                f"{self.mollie}/_emulator/clock/advance",
                json={"seconds": (moment - now).total_seconds()},
            )
            response.raise_for_status()

    async def _move_cleeng(self, moment: datetime, *, catch_up: bool = True) -> None:
        # A webhook whose time has passed (an attempt needed again after a debit was refused)
        # goes out on a move of zero seconds, unless `catch_up` is off.
        now = await self.cleeng_now()
        if moment <= now and not catch_up:
            return
        body: dict[str, Any] = {"to": iso_utc(moment)} if moment > now else {"seconds": 0}
        response = await self.http.post(f"{self.cleeng}/_emulator/clock/advance", json=body)
        response.raise_for_status()

    async def play_cycle(self) -> dict[str, datetime]:
        """Move both clocks until every watched active subscription has left its current
        cycle (renewed or terminated); returns the due date each one had."""
        before = await self.subscriptions()
        due = {
            sub_id: parse_time(before[sub_id]["dateTo"])
            for sub_id in self.subscription_ids
            if before[sub_id]["status"] == "active"
        }
        for sub_id, moment in due.items():
            self.dues[sub_id].append(moment)
            self._open_cycles.add(billing_workflow_id(sub_id, iso_utc(moment)))

        async def unfinished() -> list[str]:
            now = await self.subscriptions()
            return [
                sub_id
                for sub_id, moment in due.items()
                if now[sub_id]["status"] == "active" and parse_time(now[sub_id]["dateTo"]) <= moment
            ]

        for _ in range(MAX_STEPS_PER_CYCLE):
            if not await unfinished():
                return due
            upcoming = await self.next_moment()
            if upcoming is None:
                break
            await self.move_to(*upcoming)
        left = await unfinished()
        if left:
            pytest.fail(f"cycles due {[iso_utc(due[s]) for s in left]} of {left} never ended")
        return due

    # --------------------------------------------------------------------------- at rest

    async def at_rest(self, description: str) -> None:
        await eventually(self._at_rest, f"connector at rest {description}", REST_DEADLINE_SECONDS)

    async def _at_rest(self) -> bool:
        return (
            await self._webhooks_answered()
            and await self._cycles_waiting()
            # A workflow may have made a charge whose Mollie webhook is now on its way.
            and await self._webhooks_answered()
        )

    async def _webhooks_answered(self) -> bool:
        cleeng = await self._get(f"{self.cleeng}/_emulator/webhooks", status="pending")
        if cleeng["items"]:
            return False
        mollie = await self._get(f"{self.mollie}/_emulator/webhooks")
        for delivery in mollie["deliveries"]:
            if delivery["state"] != "scheduled":
                continue
            attempts = delivery["attempts"]
            if not attempts:
                return False
            last = attempts[-1]
            if last["statusCode"] is None and last["error"] is None and not last["dropped"]:
                return False  # an attempt in flight
        return True

    async def _cycles_waiting(self) -> bool:
        """Every cycle workflow of a watched subscription closed, not started, or waiting."""
        subscriptions = await self.subscriptions()
        for sub_id in self.subscription_ids:
            due = parse_time(subscriptions[sub_id]["dateTo"])
            self._open_cycles.add(billing_workflow_id(sub_id, iso_utc(due)))
        for workflow_id in sorted(self._open_cycles):
            handle = self.connector.client.get_workflow_handle(workflow_id)
            try:
                described = await handle.describe()
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    continue  # no webhook for that cycle yet
                raise
            if described.status != WorkflowExecutionStatus.RUNNING:
                self._open_cycles.discard(workflow_id)
                continue
            raw = described.raw_description
            if raw.HasField("pending_workflow_task") or len(raw.pending_activities) > 0:
                return False
        return True

    # ------------------------------------------------------------------------- sightings

    async def note(self, moment: datetime) -> None:
        """Record each Cleeng payment's status (and its Mollie payment's) if it changed."""
        mollie = {p["id"]: p["status"] for p in await self.mollie_payments()}
        for record in await self.cleeng_payments():
            seen = self.sightings.setdefault(record["id"], [])
            sighting = Sighting(
                at=moment,
                cleeng_status=record["status"],
                mollie_status=mollie.get(str(record["externalPaymentId"])),
            )
            if not seen or (seen[-1].cleeng_status, seen[-1].mollie_status) != (
                sighting.cleeng_status,
                sighting.mollie_status,
            ):
                seen.append(sighting)

    def path(self, cleeng_payment_id: int) -> list[tuple[str, str | None]]:
        """The (Cleeng, Mollie) statuses a payment went through, as seen between moves."""
        return [(s.cleeng_status, s.mollie_status) for s in self.sightings[cleeng_payment_id]]


async def set_dunning(
    http: httpx.AsyncClient,
    connector: Connector,
    *,
    authorized_first: bool,
    payment_attempts: list[int],
    grace_period_hours: int = 2,
) -> None:
    """Cleeng's dunning action settings for Mollie, every billing cycle."""
    response = await http.put(
        f"{connector.emulators.cleeng_url}/_emulator/dunning-settings",
        json={
            "authorizedFirst": authorized_first,
            "paymentAttempts": payment_attempts,
            "gracePeriodHours": grace_period_hours,
        },
    )
    response.raise_for_status()


async def fail_next_charges(
    http: httpx.AsyncClient,
    connector: Connector,
    mollie_customer_id: str,
    count: int,
    reason: str,
) -> None:
    """The customer's next `count` recurring charges fail; a direct debit is still `pending`
    first and fails only when it would have settled."""
    response = await http.post(
        f"{connector.emulators.mollie_url}/_emulator/customers/{mollie_customer_id}/next-outcomes",
        json={"outcomes": [{"status": "failed", "failureReason": reason}] * count},
    )
    response.raise_for_status()
