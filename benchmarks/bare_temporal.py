"""Bare-Temporal workflows: the ceiling the connector's renewals are compared with.

    .venv/bin/python -m benchmarks.bare_temporal --address 127.0.0.1:7233 --task-queue bare

runs their worker (the renewals benchmark starts it as its own process, so its CPU is
measured apart from the connector's). The workflows do what a renewal does to Temporal and
nothing else:

- `BareRenewal` has the renewal's shape: started by signal-with-start with one `event`
  signal, then the steps of a capture-only renewal with no-op bodies, a `payment_changed`
  signal like the Mollie webhook (sent by the driver; received, never awaited), and the
  search-attribute upserts. `compact` picks which renewal: as cycles ran before compact
  histories (cycle check, renewal order, charge, record as four activities, 2 upserts), or
  as the connector runs them now (check-and-order and charge as local activities, the record
  an activity, 1 upsert at the end).
- `BareOneActivity`: signal-with-start, one no-op activity, done.

They reuse the connector's search attributes (registered on the dev server), plus
`CleengOrderId` set to the load's tag at start so the driver can count a load's workflows.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, TypeVar

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.worker import Worker

from domain import search_attributes

BARE_RENEWAL: Final = "BareRenewal"
BARE_ONE_ACTIVITY: Final = "BareOneActivity"
STEP_TIMEOUT = timedelta(seconds=30)
StepResult = TypeVar("StepResult")


@dataclass(frozen=True)
class BareShape:
    """What the driver starts: the workflow type and, for BareRenewal, the step kind."""

    name: str
    workflow_type: str
    compact: bool = False


SHAPES: Final = (
    BareShape("bare-activities", BARE_RENEWAL, compact=False),
    BareShape("bare-compact", BARE_RENEWAL, compact=True),
    BareShape("bare-one-activity", BARE_ONE_ACTIVITY),
)


@dataclass(frozen=True)
class BareCycle:
    subscription_id: str
    compact: bool = False


# No-op steps, named like the connector's so a history reads the same.


@activity.defn
async def cycle_already_paid(subscription_id: str) -> bool:
    return False


@activity.defn
async def create_renewal_order(subscription_id: str) -> str:
    return f"order-{subscription_id}"


@activity.defn
async def prepare_renewal(subscription_id: str) -> str:
    return f"order-{subscription_id}"


@activity.defn
async def create_recurring_payment(order_id: str) -> str:
    return f"tr_{order_id}"


@activity.defn
async def record_payment(payment_id: str) -> str:
    return f"cleeng-{payment_id}"


@activity.defn
async def no_op(subscription_id: str) -> str:
    return subscription_id


ACTIVITIES: Final = (
    cycle_already_paid,
    create_renewal_order,
    prepare_renewal,
    create_recurring_payment,
    record_payment,
    no_op,
)


@workflow.defn(name=BARE_RENEWAL)
class BareRenewalWorkflow:
    def __init__(self) -> None:
        self._events: list[str] = []
        self._payment_notices = 0

    @workflow.run
    async def run(self, cycle: BareCycle) -> str:
        await workflow.wait_condition(lambda: bool(self._events))
        if cycle.compact:
            order_id = await self._step(prepare_renewal, cycle.subscription_id, local=True)
            payment_id = await self._step(create_recurring_payment, order_id, local=True)
            cleeng_id = await self._step(record_payment, payment_id, local=False)
            # The compact shape sets both attributes in one upsert, at the end.
            workflow.upsert_search_attributes(
                [
                    search_attributes.MOLLIE_PAYMENT_ID.value_set(payment_id),
                    search_attributes.CLEENG_PAYMENT_ID.value_set(cleeng_id),
                ]
            )
            return "captured"
        await self._step(cycle_already_paid, cycle.subscription_id, local=False)
        order_id = await self._step(create_renewal_order, cycle.subscription_id, local=False)
        payment_id = await self._step(create_recurring_payment, order_id, local=False)
        workflow.upsert_search_attributes(
            [search_attributes.MOLLIE_PAYMENT_ID.value_set(payment_id)]
        )
        cleeng_id = await self._step(record_payment, payment_id, local=False)
        workflow.upsert_search_attributes(
            [search_attributes.CLEENG_PAYMENT_ID.value_set(cleeng_id)]
        )
        return "captured"

    @staticmethod
    async def _step(
        step: Callable[[str], Awaitable[StepResult]], argument: str, *, local: bool
    ) -> StepResult:
        if local:
            return await workflow.execute_local_activity(
                step, argument, start_to_close_timeout=STEP_TIMEOUT
            )
        return await workflow.execute_activity(step, argument, start_to_close_timeout=STEP_TIMEOUT)

    @workflow.signal
    def event(self, kind: str) -> None:
        self._events.append(kind)

    @workflow.signal
    def payment_changed(self, payment_id: str) -> None:
        self._payment_notices += 1


@workflow.defn(name=BARE_ONE_ACTIVITY)
class BareOneActivityWorkflow:
    def __init__(self) -> None:
        self._events: list[str] = []

    @workflow.run
    async def run(self, cycle: BareCycle) -> str:
        await workflow.wait_condition(lambda: bool(self._events))
        return await workflow.execute_activity(
            no_op, cycle.subscription_id, start_to_close_timeout=STEP_TIMEOUT
        )

    @workflow.signal
    def event(self, kind: str) -> None:
        self._events.append(kind)


# ------------------------------------------------------------------------------ the driver


async def start_bare(
    client: Client,
    shape: BareShape,
    *,
    workflow_id: str,
    task_queue: str,
    load_tag: str,
) -> None:
    """Signal-with-start one bare workflow, as the shim starts a renewal."""
    cycle = BareCycle(subscription_id=workflow_id, compact=shape.compact)
    await client.start_workflow(
        shape.workflow_type,
        cycle,
        id=workflow_id,
        task_queue=task_queue,
        start_signal="event",
        start_signal_args=["capture"],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search_attributes.CLEENG_SUBSCRIPTION_ID, workflow_id),
                SearchAttributePair(search_attributes.CLEENG_ORDER_ID, load_tag),
            ]
        ),
    )


async def notify_payment(client: Client, workflow_id: str) -> bool:
    """The Mollie-webhook-like signal; False when the workflow had already finished."""
    try:
        await client.get_workflow_handle(workflow_id).signal("payment_changed", "tr_bare")
    except RPCError:  # a closed workflow refuses signals: nothing to do
        return False
    return True


# ------------------------------------------------------------------------------ the worker


async def run_worker(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareRenewalWorkflow, BareOneActivityWorkflow],
        activities=list(ACTIVITIES),
    ):
        print(f"bare worker polling {task_queue} on {address}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True, help="Temporal frontend, host:port")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(run_worker(args.address, args.task_queue))


if __name__ == "__main__":
    # Workflows must be registered from their importable module, not from `__main__`, or the
    # sandbox cannot re-import them.
    from benchmarks.bare_temporal import main as module_main

    module_main()
