"""Chaos run: the whole connector under load while everything around it fails.

.venv/bin/python benchmarks/chaos.py [--subscribers 1000] [--seed N] [--deadline-minutes M]
    [--json out.json] [--no-kills]

Starts its own stack (`python -m launcher` on free loopback ports and a fresh data dir, so it
never collides with `scripts/run`), buys N subscriptions through the API (30% with iDEAL, which
leaves a SEPA Direct Debit mandate, 10% with PayPal, the rest by card; some paid, some
declined, cancelled or expired on Mollie's checkout), plays renewal rounds by moving the Cleeng
emulator's clock and the Mollie emulator's with it (authorise-then-capture, then capture-only;
each round ends past every SEPA debit's settlement and reversal), changes cards, refunds, lets
some renewals fail into termination, makes some SEPA debits fail at settlement and others fail
after they were paid (a chargeback), all with Mollie and Cleeng faults on (5xx/429, lost
replies after the write, dropped, duplicated and reordered webhooks). It SIGKILLs the worker
three times and the Temporal dev server once (the launcher restarts them; pids from
`<data-dir>/run/<name>.pid`). Then faults go off, everything settles, and the invariant
checker (benchmarks/chaos_invariants.py) compares Mollie, Cleeng and Temporal. Exit 0 only
when every must-be-zero invariant holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import DataConverter
from temporalio.service import RPCError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.chaos_invariants import (
    InvariantReport,
    check_invariants,
    collect_ledgers,
    collect_workflows,
)
from codec.keys import DEV_KEY_FILE, parse_key_ring
from domain.refunds import RESOLVE_RECORD_SIGNAL
from settings import EMULATOR_FRONTEND_API_KEY
from temporal_connection import data_converter_for

REPO = Path(__file__).resolve().parent.parent
PURCHASE_FINAL = {"captured", "rejected", "failed", "refunded_cleeng_refused"}
# Hours before the due date at which the emulator's default dunning tries; -3 is past the
# 2-hour grace period, where a cycle with nothing captured is terminated.
DUNNING_STEPS_HOURS = (72, 48, 24, 0, -3)
CHECKOUT_OUTCOMES = (("paid", 0.8), ("failed", 0.08), ("canceled", 0.06), ("expired", 0.06))
# How purchases pay: iDEAL leaves a SEPA Direct Debit mandate, PayPal a PayPal one, cards a
# card one (exact shares of the subscribers, in a shuffled order).
METHOD_SHARES = (("ideal", 0.3), ("paypal", 0.1))
CARD = "creditcard"
SEPA_FIRST = "ideal"
# The Mollie emulator's defaults: a SEPA debit settles this long after it was made, and the
# run reverses the debits it picks this long after they were paid.
SEPA_SETTLE = timedelta(days=3)
REVERSAL_AFTER = timedelta(days=2)
REVERSAL = {"status": "paid", "reversal": {"reason": "AM04", "afterDays": 2}}
SETTLEMENT_FAILURE = {"status": "failed"}
PIDS = ("worker", "temporal")


@dataclass
class Rates:
    """Fault rates, set on both emulators."""

    error: float
    rate_limit: float
    timeout_after_commit: float
    duplicate_webhook: float
    reorder_webhook: float
    drop_webhook: float

    def mollie(self, seed: int) -> dict[str, Any]:
        return {
            "errorRate": self.error,
            "rateLimitRate": self.rate_limit,
            "timeoutAfterCommitRate": self.timeout_after_commit,
            "duplicateWebhookRate": self.duplicate_webhook,
            "reorderWebhookRate": self.reorder_webhook,
            "dropWebhookRate": self.drop_webhook,
            "seed": seed,
        }

    def cleeng(self, seed: int) -> dict[str, Any]:
        return self.mollie(seed)  # same field names on both operator APIs


@dataclass(frozen=True)
class Ports:
    api: int
    temporal: int
    temporal_ui: int
    temporal_http: int
    temporal_metrics: int
    mollie: int
    cleeng: int
    codec: int
    # The worker's Temporal SDK metrics: a free port too, or a stack already up on the
    # launcher's default (scripts/run, another benchmark) stops this one's worker starting.
    worker_metrics: int


@dataclass
class Subscriber:
    index: int
    customer_id: int
    order_id: int
    outcome: str
    method: str = CARD
    purchase_status: str = ""
    subscription_id: int | None = None


@dataclass
class Run:
    """Everything the run learnt on the way, for the report."""

    ports: Ports
    data_dir: Path
    kills: bool
    kill_plan: dict[str, str]  # kill point ("purchases", "round1-step1", ...) -> child name
    rng: random.Random
    deadline: float
    http: httpx.AsyncClient
    temporal: Client | None = None
    subscribers: list[Subscriber] = field(default_factory=list)
    kills_done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    paid_purchases: int = 0
    renewals_seen: int = 0
    # Cleeng payments a refund was already asked for: a second request could exceed what is
    # left to refund, which Mollie rightly refuses (and the checker would count as a failure).
    refund_requested: set[str] = field(default_factory=set)
    # The method of each customer's current payment details (a card change makes it a card).
    method_of: dict[int, str] = field(default_factory=dict)
    sepa_failures_set: int = 0
    reversals_set: int = 0
    # Refund records the connector held for a person, answered by the driver as one would.
    held_records_answered: dict[str, int] = field(default_factory=lambda: {"true": 0, "false": 0})

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def mollie(self) -> str:
        return f"http://127.0.0.1:{self.ports.mollie}"

    @property
    def cleeng(self) -> str:
        return f"http://127.0.0.1:{self.ports.cleeng}"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {message}", flush=True)


# ------------------------------------------------------------------------------- the stack


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_launcher(ports: Ports, data_dir: Path) -> subprocess.Popen[bytes]:
    flags = [
        f"--{name.replace('_', '-')}-port={getattr(ports, name)}"
        for name in Ports.__dataclass_fields__
    ]
    log = (data_dir / "launcher.log").open("ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEENG_", "MOLLIE_"))}
    # Sandbox mode on loopback: no real credentials may leak in from the environment. No
    # scheduled reconciliation: the invariants judge what the flows alone did under faults.
    env["RECONCILIATION_INTERVAL_MINUTES"] = "0"
    # A lost Mollie webhook is made up for by the workflow's own look at the payment: seconds
    # here instead of the production minute, so the run does not sit out a minute per loss.
    env["PAYMENT_POLL_SCHEDULE_SECONDS"] = "5,15,60"
    return subprocess.Popen(
        [sys.executable, "-m", "launcher", "--data-dir", str(data_dir), *flags],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def wait_for(
    what: str, check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.5
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return True
        except (httpx.HTTPError, RPCError):
            pass  # a child restarting: not ready yet
        await asyncio.sleep(interval)
    print(f"  gave up waiting for {what} after {timeout:.0f} s", flush=True)
    return False


async def stack_ready(run: Run, launcher: subprocess.Popen[bytes]) -> None:
    async def ready() -> bool:
        if launcher.poll() is not None:
            raise RuntimeError(f"launcher exited; see {run.data_dir / 'launcher.log'}")
        banner = (run.data_dir / "launcher.log").read_text(errors="replace")
        return "connector is running" in banner

    if not await wait_for("the stack", ready, timeout=180):
        raise RuntimeError(f"stack did not start; see {run.data_dir / 'launcher.log'}")


def stop_launcher(launcher: subprocess.Popen[bytes]) -> None:
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def pid_file(run: Run, name: str) -> Path:
    return run.data_dir / "run" / f"{name}.pid"


async def kill(run: Run, name: str) -> None:
    """SIGKILL a child by its pid file and wait until the supervisor wrote a new pid."""
    if not run.kills:
        return
    path = pid_file(run, name)
    if not path.exists():
        run.notes.append(f"kill of {name} skipped: {path} missing (launcher writes no pid files)")
        return
    pid = int(path.read_text().strip())
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        run.notes.append(f"kill of {name}: pid {pid} already gone")
        return
    run.log(f"SIGKILL {name} (pid {pid})")
    run.kills_done.append(name)

    async def restarted() -> bool:
        return path.exists() and path.read_text().strip() not in ("", str(pid))

    if not await wait_for(f"{name} restarted", restarted, timeout=120):
        run.notes.append(f"{name} was not restarted within 120 s of its kill")


def kill_plan(rounds: int, worker_kills: int, restart_temporal: bool) -> dict[str, str]:
    """Where the kills fall: spread over the purchases and the renewal rounds."""
    worker_points = ["purchases", "round1-step3"]
    worker_points.append("round2-step2" if rounds >= 2 else "round1-step4")
    plan = {point: "worker" for point in worker_points[:worker_kills]}
    if restart_temporal:
        plan["round1-step1"] = "temporal"
    return plan


async def kill_if_planned(run: Run, point: str) -> None:
    name = run.kill_plan.get(point)
    if name is not None:
        await kill(run, name)


# ------------------------------------------------------------------------------- HTTP


async def call(
    run: Run, method: str, url: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any
) -> httpx.Response:
    """An API call as a patient front end makes it: 5xx, 429 and transport errors retried."""
    delay = 0.5
    while True:
        try:
            response = await run.http.request(method, url, **kwargs)
            if response.status_code in ok:
                return response
            if response.status_code < 500 and response.status_code != 429:
                raise RuntimeError(f"{method} {url} -> {response.status_code} {response.text}")
        except httpx.TransportError:
            pass
        if run.left() <= 0:
            raise TimeoutError(f"{method} {url}: deadline passed")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5)


def acting(customer_id: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}",
        "X-Cleeng-Customer-Id": str(customer_id),
    }


async def gather_limited(limit: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


# ------------------------------------------------------------------------------- purchases


def pick_outcome(rng: random.Random) -> str:
    roll = rng.random()
    for outcome, share in CHECKOUT_OUTCOMES:
        if roll < share:
            return outcome
        roll -= share
    return "paid"


async def checkout_url_of(
    run: Run, post_path: str, get_path: str, customer_id: int, body: dict[str, Any]
) -> str | None:
    """POST the front-end call (200, 201 or 202); poll its GET until a checkout URL appears."""
    headers = acting(customer_id)
    state: dict[str, Any] = (
        await call(run, "POST", f"{run.api}{post_path}", json=body, headers=headers)
    ).json()
    while not state.get("checkoutUrl"):
        if state.get("status") in PURCHASE_FINAL | {"failed"} or run.left() <= 0:
            return None  # finished without a checkout (e.g. refused), nothing to pay
        await asyncio.sleep(0.5)
        state = (await call(run, "GET", f"{run.api}{get_path}", headers=headers)).json()
    return str(state["checkoutUrl"])


def assign_methods(rng: random.Random, count: int) -> list[str]:
    """Exact shares of `count` purchases per method, shuffled."""
    methods: list[str] = []
    for method, share in METHOD_SHARES:
        methods += [method] * round(count * share)
    methods += [CARD] * (count - len(methods))
    rng.shuffle(methods)
    return methods[:count]


async def buy(run: Run, subscriber: Subscriber) -> None:
    url = await checkout_url_of(
        run,
        "/purchases",
        f"/purchases/{subscriber.order_id}",
        subscriber.customer_id,
        {
            "orderId": str(subscriber.order_id),
            "redirectUrl": f"{run.api}/docs",
            "method": subscriber.method,
        },
    )
    if url is not None:
        # The hosted page is not under /v2: faults never touch it, as with a real shopper.
        answer = await run.http.post(
            url, data={"status": subscriber.outcome}, follow_redirects=False
        )
        if answer.status_code == 400 and subscriber.outcome == "paid":
            # A card first payment held for capture is authorised, not paid, at checkout.
            await run.http.post(url, data={"status": "authorized"}, follow_redirects=False)


async def purchases(run: Run, count: int, seed: int) -> None:
    run.log(f"seeding and buying {count} subscriptions")
    methods = assign_methods(run.rng, count)
    for index in range(count):
        seeded = (
            await call(
                run,
                "POST",
                f"{run.cleeng}/_emulator/seed/purchase",
                json={"email": f"chaos-{seed}-{index}@example.com"},
            )
        ).json()
        subscriber = Subscriber(
            index, seeded["customerId"], seeded["orderId"], pick_outcome(run.rng), methods[index]
        )
        run.subscribers.append(subscriber)
        run.method_of[subscriber.customer_id] = subscriber.method
    half = len(run.subscribers) // 2
    await gather_limited(16, [partial(buy, run, s) for s in run.subscribers[:half]])
    await kill_if_planned(run, "purchases")
    await gather_limited(16, [partial(buy, run, s) for s in run.subscribers[half:]])

    async def all_final() -> bool:
        for subscriber in run.subscribers:
            if subscriber.purchase_status in PURCHASE_FINAL:
                continue
            answer = await run.http.get(
                f"{run.api}/purchases/{subscriber.order_id}",
                headers=acting(subscriber.customer_id),
            )
            if answer.status_code == 200:
                subscriber.purchase_status = answer.json()["status"]
            if subscriber.purchase_status not in PURCHASE_FINAL:
                return False
        return True

    # A purchase whose webhook was dropped is found by the workflow's polling (>= 1 min).
    await wait_for("every purchase final", all_final, timeout=min(600, run.left()), interval=2)
    statuses: dict[str, int] = {}
    for subscriber in run.subscribers:
        statuses[subscriber.purchase_status or "unknown"] = (
            statuses.get(subscriber.purchase_status or "unknown", 0) + 1
        )
    run.paid_purchases = statuses.get("captured", 0)
    by_method: dict[str, str] = {}
    for method in sorted({s.method for s in run.subscribers}):
        mine = [s for s in run.subscribers if s.method == method]
        paid = sum(1 for s in mine if s.purchase_status == "captured")
        by_method[method] = f"{paid}/{len(mine)} captured"
    run.log(f"purchases: {statuses}; by method {by_method}")


# ------------------------------------------------------------------------------- renewals


async def cleeng_subscriptions(run: Run) -> list[dict[str, Any]]:
    answer = await run.http.get(f"{run.cleeng}/_emulator/subscriptions")
    items: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
    return items


# A running workflow with a timer due within this long will act by itself soon: a local
# activity backing off (the SDK turns a back-off longer than a minute into a timer), a payment
# watch polling, the moment a cycle ends its task. A cycle idling towards its next renewal
# waits days, far longer.
SOON = timedelta(minutes=15)


async def work_in_flight(
    run: Run, *, look_at_timers: bool, waiting_on_bank: frozenset[str] = frozenset()
) -> bool:
    """Whether any running workflow has work under way: an activity scheduled, running or in
    retry back-off, a workflow task pending (local activities run inside one), or, with
    `look_at_timers`, a billing cycle with a timer due within SOON, unless its charge is a
    SEPA debit still `pending` at Mollie (`waiting_on_bank`): its polls find nothing new until
    the driver moves Mollie's clock past the settlement.

    Local activities (a billing cycle's steps) never appear among a workflow's pending
    activities; while one backs off between attempts only its timer in the history shows it,
    so the history is read for those (the expensive part, hence only on request). Other
    workflows' timers are left out: a refund polls until the driver moves Mollie's clock.
    """
    if run.temporal is None:
        return False
    running = [
        (e.id, e.workflow_type)
        async for e in run.temporal.list_workflows('ExecutionStatus="Running"')
    ]
    gate = asyncio.Semaphore(16)

    async def busy(workflow_id: str, workflow_type: str) -> bool:
        assert run.temporal is not None
        handle = run.temporal.get_workflow_handle(workflow_id)
        async with gate:
            description = (await handle.describe()).raw_description
            if description.pending_activities or description.HasField("pending_workflow_task"):
                return True
            if (
                not look_at_timers
                or workflow_type != "RecurringBilling"
                or workflow_id in waiting_on_bank
            ):
                return False
            return await timer_due_soon(handle)

    return any(await asyncio.gather(*(busy(i, t) for i, t in running)))


async def timer_due_soon(handle: WorkflowHandle[Any, Any]) -> bool:
    open_timers: dict[str, timedelta] = {}
    async for event in handle.fetch_history_events():
        if event.HasField("timer_started_event_attributes"):
            started = event.timer_started_event_attributes
            open_timers[started.timer_id] = started.start_to_fire_timeout.ToTimedelta()
        elif event.HasField("timer_fired_event_attributes"):
            open_timers.pop(event.timer_fired_event_attributes.timer_id, None)
        elif event.HasField("timer_canceled_event_attributes"):
            open_timers.pop(event.timer_canceled_event_attributes.timer_id, None)
    return any(duration <= SOON for duration in open_timers.values())


async def quiet(run: Run, seconds: float, bound: float) -> None:
    """Wait (at most `bound`) until no workflow has work in flight and neither ledger nor any
    webhook log changed for `seconds`: the connector has done what this step asked of it.

    A Temporal restart makes the checks fail for a while; that counts as not quiet yet.
    """

    async def fingerprint() -> tuple[str, frozenset[str]]:
        mollie_ledger = await run.http.get(f"{run.mollie}/_emulator/ledger")
        parts = [
            (await run.http.get(f"{run.cleeng}/_emulator/ledger")).text,
            mollie_ledger.text,
            (await run.http.get(f"{run.cleeng}/_emulator/webhooks")).text,
            (await run.http.get(f"{run.mollie}/_emulator/webhooks")).text,
            (await run.http.get(f"{run.cleeng}/_emulator/subscriptions")).text,
        ]
        pending = frozenset(
            str((p.get("metadata") or {}).get("workflowId", ""))
            for p in mollie_ledger.json()["payments"]
            if p["status"] == "pending"
        )
        return str(hash(tuple(parts))), pending

    last = ""
    stable_since = time.monotonic()
    end = time.monotonic() + min(bound, max(run.left(), 0))
    while time.monotonic() < end:
        try:
            now, pending = await fingerprint()
            settled = time.monotonic() - stable_since >= seconds
            busy = await work_in_flight(
                run, look_at_timers=settled and now == last, waiting_on_bank=pending
            )
        except (httpx.HTTPError, RPCError):
            now, busy = "", True
        if now != last or busy:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= seconds:
            return
        await asyncio.sleep(1)
    run.notes.append(f"a step did not settle within {bound:.0f} s")


async def mollie_customer_of(run: Run, customer_id: int) -> str | None:
    details = (
        await run.http.get(
            f"{run.cleeng}/_emulator/payment-details", params={"customerId": customer_id}
        )
    ).json()["items"]
    active = [d for d in details if d.get("active", True)] or details
    if not active:
        return None
    parts = str(active[-1]["token"]).split(":")
    return next((p for p in parts if p.startswith("cst_")), None)


async def set_outcomes(run: Run, customer_id: int, outcomes: list[dict[str, Any]]) -> bool:
    mollie_customer = await mollie_customer_of(run, customer_id)
    if mollie_customer is None:
        return False
    await run.http.post(
        f"{run.mollie}/_emulator/customers/{mollie_customer}/next-outcomes",
        json={"outcomes": outcomes},
    )
    return True


async def set_declines(run: Run, customer_ids: list[int], count: int) -> None:
    """Card and PayPal charges declined `count` times; a SEPA debit, whose one charge a
    cycle sees settles days later, fails once at settlement instead."""
    outcome = {"status": "failed", "failureReason": "insufficient_funds"}
    for customer_id in customer_ids:
        if run.method_of.get(customer_id) == SEPA_FIRST:
            run.sepa_failures_set += await set_outcomes(run, customer_id, [SETTLEMENT_FAILURE])
        else:
            await set_outcomes(run, customer_id, [outcome] * count)


async def set_sepa_faults(run: Run, customer_ids: list[int], reversal_share: float) -> None:
    """Of the SEPA customers given (none declining, none changing details), a share has its
    next debit paid and reversed two days later, and about as many again fail at settlement."""
    sepa = [c for c in customer_ids if run.method_of.get(c) == SEPA_FIRST]
    if not sepa or reversal_share <= 0:
        return
    reversing = max(1, round(len(sepa) * reversal_share))
    for customer_id in sepa[:reversing]:
        run.reversals_set += await set_outcomes(run, customer_id, [REVERSAL])
    for customer_id in sepa[reversing : 2 * reversing]:
        run.sepa_failures_set += await set_outcomes(run, customer_id, [SETTLEMENT_FAILURE])


async def change_card(run: Run, customer_id: int) -> None:
    run.method_of[customer_id] = CARD
    url = await checkout_url_of(
        run,
        "/payment-details",
        f"/payment-details/{customer_id}",
        customer_id,
        {"customerId": str(customer_id), "redirectUrl": f"{run.api}/docs"},
    )
    if url is not None:
        await run.http.post(url, data={"status": "paid"}, follow_redirects=False)


async def refund_some(run: Run, share: float) -> int:
    ledger = (await run.http.get(f"{run.cleeng}/_emulator/ledger")).json()["items"]
    captured = [
        p
        for p in ledger
        if p["status"] == "captured"
        and p["duplicateOf"] is None
        and str(p["paymentId"]) not in run.refund_requested
    ]
    chosen = [p for p in captured if run.rng.random() < share]
    for payment in chosen:
        run.refund_requested.add(str(payment["paymentId"]))
        # Half give back part of the money, half all of it.
        body: dict[str, Any] = {"reason": "chaos"}
        if run.rng.random() < 0.5:
            body["amount"] = round(payment["amountMinor"] / 200, 2)
        await run.http.post(f"{run.cleeng}/_emulator/payments/{payment['paymentId']}/refund",
                            json=body)  # fmt: skip
    return len(chosen)


async def clock_now(run: Run, base: str) -> datetime:
    answer = await call(run, "GET", f"{base}/_emulator/clock")
    return datetime.fromisoformat(str(answer.json()["now"]).replace("Z", "+00:00"))


async def advance_mollie_to(run: Run, target: datetime) -> int:
    """Move the Mollie emulator's clock to `target` (never back); the webhooks it sent."""
    seconds = (target - await clock_now(run, run.mollie)).total_seconds()
    if seconds <= 0:
        return 0
    before = (await call(run, "GET", f"{run.mollie}/_emulator/webhooks")).json()["count"]
    await call(run, "POST", f"{run.mollie}/_emulator/clock/advance", json={"seconds": seconds},
               timeout=None)  # fmt: skip
    after = (await call(run, "GET", f"{run.mollie}/_emulator/webhooks")).json()["count"]
    return int(after) - int(before)


async def advance_cleeng_to(run: Run, target: datetime) -> None:
    await call(
        run,
        "POST",
        f"{run.cleeng}/_emulator/clock/advance",
        json={"to": target.strftime("%Y-%m-%dT%H:%M:%SZ")},
        timeout=None,
    )


async def advance_clocks(run: Run, target: datetime, *, mollie_first: bool) -> None:
    """Both emulators' clocks to `target`. Mollie first during the dunning steps: a debit
    that settled before this moment is known (and recorded) before Cleeng's webhooks of the
    step, as in real time; the connector is given a quiet moment in between when Mollie sent
    webhooks. Cleeng first past the due date: its orders age before the debits settle."""
    if mollie_first:
        if await advance_mollie_to(run, target):
            await quiet(run, 3, 120)
        await advance_cleeng_to(run, target)
    else:
        await advance_cleeng_to(run, target)
        await advance_mollie_to(run, target)


async def renewal_round(
    run: Run, number: int, authorise_first: bool, reversal_share: float
) -> None:
    mode = "authorise-then-capture" if authorise_first else "capture-only"
    await run.http.put(
        f"{run.cleeng}/_emulator/dunning-settings",
        json={"authorizedFirst": authorise_first, "paymentAttempts": [72, 48, 24, 0],
              "gracePeriodHours": 2},
    )  # fmt: skip
    active = [s for s in await cleeng_subscriptions(run) if s["status"] == "active"]
    if not active:
        run.notes.append(f"round {number}: no active subscription left")
        return
    customers = [s["customerId"] for s in active]
    run.rng.shuffle(customers)
    tenth = max(1, len(customers) // 10)
    await set_declines(run, customers[:tenth], 6)  # every attempt fails: termination
    await set_declines(run, customers[tenth : 2 * tenth], 2)  # recovers in dunning
    await set_sepa_faults(run, customers[2 * tenth : -tenth], reversal_share)
    await gather_limited(8, [partial(change_card, run, c) for c in customers[-tenth:]])
    await quiet(run, 3, 120)
    due = max(datetime.fromtimestamp(s["dateTo"], UTC) for s in active)
    before = {s["subscriptionId"]: s["dateTo"] for s in active}
    run.log(f"round {number} ({mode}): {len(active)} active, due {due.isoformat()}")
    for step, hours in enumerate(DUNNING_STEPS_HOURS):
        target = due - timedelta(hours=hours) + timedelta(minutes=1)
        await advance_clocks(run, target, mollie_first=True)
        await kill_if_planned(run, f"round{number}-step{step}")
        await quiet(run, 4, 300)
    # Past every debit of the round (the last attempt's settles SEPA_SETTLE after the due
    # date) and past its reversal, well before the next cycle's first attempt.
    await advance_clocks(run, due + SEPA_SETTLE + REVERSAL_AFTER + timedelta(hours=1),
                         mollie_first=False)  # fmt: skip
    await quiet(run, 4, 300)
    after = {s["subscriptionId"]: s for s in await cleeng_subscriptions(run)}
    renewed = sum(1 for sid, date in before.items() if after[sid]["dateTo"] > date)
    terminated = sum(1 for sid in before if after[sid]["status"] != "active")
    run.renewals_seen += renewed
    run.log(f"round {number}: {renewed} renewed, {terminated} ended")


# ------------------------------------------------------------------------------- faults


async def set_faults(run: Run, rates: Rates | None, seed: int) -> None:
    if rates is None:
        await run.http.delete(f"{run.mollie}/_emulator/faults")
        await run.http.delete(f"{run.cleeng}/_emulator/faults")
        return
    await run.http.post(f"{run.mollie}/_emulator/faults", json=rates.mollie(seed))
    await run.http.post(f"{run.cleeng}/_emulator/faults", json=rates.cleeng(seed + 1))


async def faults_injected(run: Run) -> dict[str, int]:
    counts: dict[str, int] = {}

    def add(name: str, amount: int) -> None:
        counts[name] = counts.get(name, 0) + amount

    requests = (await run.http.get(f"{run.mollie}/_emulator/requests")).json()["requests"]
    for entry in requests:
        if entry["status"] in (429, 503, 504):
            add(f"mollie_http_{entry['status']}", 1)
    for delivery in (await run.http.get(f"{run.mollie}/_emulator/webhooks")).json()["deliveries"]:
        for attempt in delivery["attempts"]:
            add("mollie_webhook_dropped", int(attempt["dropped"]))
            add("mollie_webhook_duplicated", int(attempt["duplicated"]))
            add("mollie_webhook_reordered", int(attempt.get("heldBack", False)))
    for delivery in (await run.http.get(f"{run.cleeng}/_emulator/webhooks")).json()["items"]:
        add("cleeng_webhook_dropped", int(delivery["status"] == "dropped"))
        add("cleeng_webhook_duplicated", int(delivery["duplicate"]))
        add("cleeng_webhook_reordered", int(delivery.get("heldBack", False)))
    log = run.data_dir / "logs" / "cleeng-emulator.log"
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if "injecting " in line:
                kind = line.split("injecting ", 1)[1].split(" ", 1)[0]
                add(f"cleeng_http_{kind}", 1)
    return {name: count for name, count in counts.items() if count}


# ------------------------------------------------------------------------------- settle


async def long_lived_ids(run: Run) -> frozenset[str]:
    """Billing workflows of cycles that legitimately wait (active, next cycle already open)."""
    ids: set[str] = set()
    for s in await cleeng_subscriptions(run):
        if s["status"] == "active":
            due = datetime.fromtimestamp(s["dateTo"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            ids.add(f"billing:{s['subscriptionId']}:{due}")
    return frozenset(ids)


async def settle_refunds_at_mollie(run: Run) -> None:
    """Move Mollie's clock past the settle time of any open refund (2 h after creation), and
    past any SEPA debit still pending or reversal still due (made while settling)."""
    ledger = (await run.http.get(f"{run.mollie}/_emulator/ledger")).json()["payments"]
    open_refunds = [
        r
        for p in ledger
        for r in p["refunds"]
        if r["status"] in ("queued", "pending", "processing")
    ]
    if any(p["status"] == "pending" or p.get("reversalDueAt") for p in ledger):
        seconds = (SEPA_SETTLE + REVERSAL_AFTER).total_seconds() + 60
    elif open_refunds:
        seconds = 2 * 3600 + 60
    else:
        return
    await call(run, "POST", f"{run.mollie}/_emulator/clock/advance", json={"seconds": seconds},
               timeout=None)  # fmt: skip


async def unannounced_payments(run: Run) -> frozenset[str]:
    """Mollie payments whose last webhook was lost (dropped): the connector never heard of
    their latest change (a chargeback, say) from Mollie."""
    log = (await run.http.get(f"{run.mollie}/_emulator/webhooks")).json()["deliveries"]
    last: dict[str, str] = {}
    for delivery in log:  # oldest first
        last[str(delivery["paymentId"])] = str(delivery["state"])
    return frozenset(payment for payment, state in last.items() if state == "dropped")


# The question a held record asks (workflows/refund.py CleengRecordHold): which Cleeng payment,
# and the refund or chargeback of what amount to look for on it.
HELD_RECORD = re.compile(
    r"Check Cleeng payment (?P<payment>\S+), then signal .* if it shows this "
    r"(?P<kind>refund|chargeback) of (?P<amount>\d+(?:\.\d+)?) [A-Z]{3}"
)


async def answer_held_records(run: Run, temporal: Client, *, among: str = "") -> None:
    """Act as the operator for refund and chargeback records the connector put to a person
    (a lost reply to the refund PATCH, `record_unknown`): look at the Cleeng payment in the
    emulator's ledger and answer `resolve_record` with whether it shows a refund of that
    amount and type. Each answer is counted in the report. `among` narrows the workflows
    looked at (a visibility query), for a namespace the run shares."""
    ledger = (await run.http.get(f"{run.cleeng}/_emulator/ledger")).json()
    refunds = {
        str(p["paymentId"]): [(r["amountMinor"], r["refundType"]) for r in p.get("refunds", [])]
        for p in ledger["items"]
    }
    query = 'ExecutionStatus="Running" AND (WorkflowType="Refund" OR WorkflowType="Chargeback")'
    if among:
        query += f" AND ({among})"
    async for execution in temporal.list_workflows(query):
        handle = temporal.get_workflow_handle(execution.id)
        try:
            if execution.workflow_type == "Chargeback":
                question = await handle.query("record_in_doubt")
            else:
                view = await handle.query("view")
                held_now = isinstance(view, dict) and view.get("status") == "record_unknown"
                question = view.get("error") if held_now else None
        except RPCError:
            continue  # no worker to answer right now: look again later
        held = HELD_RECORD.search(question or "")
        if held is None:
            continue
        payment_id, kind, amount = held["payment"], held["kind"], Decimal(held["amount"])
        recorded = (int(amount * 100), kind) in refunds.get(payment_id, [])  # EUR: 2 decimals
        await handle.signal(RESOLVE_RECORD_SIGNAL, {"recorded": recorded})
        run.held_records_answered[str(recorded).lower()] += 1
        run.log(f"answered held record of {execution.id}: recorded={recorded}")


def stack_data_converter(data_dir: Path) -> DataConverter:
    """The launcher encrypts the histories with its data dir's key ring: the driver reads
    them (queries) and writes to them (signals) with the same keys, as the operator CLI does."""
    return data_converter_for(parse_key_ring((data_dir / DEV_KEY_FILE).read_text().strip()))


async def settle(run: Run, temporal: Client) -> None:
    run.log("faults off; settling")
    await quiet(run, 4, 120)

    async def nothing_running() -> bool:
        # A refund requested a moment ago reaches Mollie only now: settle it when it does.
        await settle_refunds_at_mollie(run)
        await answer_held_records(run, temporal)
        keep = await long_lived_ids(run)
        async for execution in temporal.list_workflows('ExecutionStatus="Running"'):
            if execution.id not in keep:
                return False
        return True

    await wait_for("no workflow running", nothing_running, timeout=max(run.left(), 10), interval=3)
    await quiet(run, 4, 60)


# ------------------------------------------------------------------------------- main


async def chaos(args: argparse.Namespace) -> InvariantReport:
    started = time.monotonic()
    port_list = free_ports(len(Ports.__dataclass_fields__))
    ports = Ports(*port_list)
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-"))
    rates = Rates(
        error=args.error_rate,
        rate_limit=args.rate_limit_rate,
        timeout_after_commit=args.timeout_after_commit_rate,
        duplicate_webhook=args.duplicate_webhook_rate,
        reorder_webhook=args.reorder_webhook_rate,
        drop_webhook=args.drop_webhook_rate,
    )
    print(f"data dir {data_dir}; ports {ports}", flush=True)
    launcher = start_launcher(ports, data_dir)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            run = Run(
                ports=ports,
                data_dir=data_dir,
                kills=not args.no_kills,
                kill_plan=kill_plan(args.rounds, args.worker_kills, not args.no_temporal_restart),
                rng=random.Random(args.seed),
                deadline=started + args.deadline_minutes * 60,
                http=http,
            )
            await stack_ready(run, launcher)
            if run.kills and not any(pid_file(run, name).exists() for name in PIDS):
                run.notes.append("kills skipped: the launcher writes no run/<name>.pid files")
                run.kills = False
            temporal = await Client.connect(
                f"127.0.0.1:{ports.temporal}", data_converter=stack_data_converter(data_dir)
            )
            run.temporal = temporal
            await set_faults(run, rates, args.seed)
            await purchases(run, args.subscribers, args.seed)
            for number in range(1, args.rounds + 1):
                if run.left() <= 0:
                    run.notes.append(f"deadline reached before round {number}")
                    break
                await renewal_round(
                    run, number, authorise_first=number % 2 == 1,
                    reversal_share=args.sepa_reversal_share,
                )  # fmt: skip
                refunded = await refund_some(run, args.refund_share)
                run.log(f"round {number}: {refunded} refunds requested")
            injected = await faults_injected(run)
            await set_faults(run, None, args.seed)
            await settle(run, temporal)
            ledgers = await collect_ledgers(http, run.mollie, run.cleeng)
            workflows = await collect_workflows(temporal)
            report = check_invariants(
                ledgers,
                workflows,
                long_lived_ids=await long_lived_ids(run),
                charges_expected=run.paid_purchases + run.renewals_seen,
                unannounced=await unannounced_payments(run),
            )
            report.faults_injected = injected
            report.notes = [
                f"subscribers {args.subscribers}, seed {args.seed}, kills {run.kills_done}",
                f"SEPA debits set to fail at settlement {run.sepa_failures_set}, to be "
                f"reversed after paid {run.reversals_set}",
                "refund records the connector held for a person (a lost reply to the refund "
                f"PATCH), answered from Cleeng's ledger: {run.held_records_answered['true']} "
                f"found recorded, {run.held_records_answered['false']} written again",
                *run.notes,
            ]
    finally:
        stop_launcher(launcher)
    report.wall_seconds = time.monotonic() - started
    return report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline-minutes", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=2, help="renewal rounds (odd: authorise "
                        "then capture, even: capture only)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the invariant table as JSON")
    parser.add_argument("--no-kills", action="store_true", help="kill no process")
    parser.add_argument("--worker-kills", type=int, default=3, choices=range(4))
    parser.add_argument(
        "--no-temporal-restart", action="store_true", help="do not kill the dev server"
    )
    parser.add_argument("--error-rate", type=float, default=0.10, help="5xx share")
    parser.add_argument("--rate-limit-rate", type=float, default=0.10, help="429 share")
    parser.add_argument("--timeout-after-commit-rate", type=float, default=0.05)
    parser.add_argument("--duplicate-webhook-rate", type=float, default=0.10)
    parser.add_argument("--reorder-webhook-rate", type=float, default=0.05)
    parser.add_argument("--drop-webhook-rate", type=float, default=0.05)
    parser.add_argument("--refund-share", type=float, default=0.08)
    parser.add_argument("--sepa-reversal-share", type=float, default=0.1, help="share of SEPA "
                        "renewals reversed after paid each round (as many again fail at "
                        "settlement, besides the SEPA customers among the declines)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report = asyncio.run(chaos(args))
    print(report.table(), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True))
    return 0 if report.holds else 1


if __name__ == "__main__":
    sys.exit(main())
