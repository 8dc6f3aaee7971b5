"""Every activity takes one dataclass, and the activities that took a bare id before still read
the bare id that an activity task scheduled by the release before carries: a task retrying
across a deploy is picked up by the new worker ("Compatibility shims" in docs/development.md)."""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from activities.cleeng_activities import CleengActivities
from activities.directory import WorkflowDirectory
from activities.mollie_activities import MollieActivities
from domain.operations import GatewayPaymentView, MolliePaymentRef, WorkflowIds
from domain.reconciliation import NOT_FOUND, WorkflowState
from settings import EMULATOR_MOLLIE_API_KEY
from tests.conftest import Connector
from worker import activity_list

# The shape each of these activities was scheduled with before it took a dataclass. Only these
# may accept a second shape, and only until 2027-03-17.
BARE_SHAPES_BEFORE: dict[str, Any] = {
    "fetch_payment": str,
    "refund_context": str,
    "list_chargebacks": str,
    "payment_metadata": str,
    "refunds_seen": str,
    "connector_payments": list[str],
    "load_order": str,
    "cancel_payment": str,
    "authorised_payments": str,
    "delete_payment_details": str,
    "terminate_subscription": str,
    "cleeng_payment_recorded_by": str,
    "workflow_states": list[str],
}


def registered_inputs() -> dict[str, Any]:
    """Each registered activity's name and the one parameter type Temporal decodes into."""
    cleeng = object.__new__(CleengActivities)
    mollie = object.__new__(MollieActivities)
    directory = object.__new__(WorkflowDirectory)
    inputs: dict[str, Any] = {}
    for method in activity_list(cleeng, mollie, directory):
        definition = activity._Definition.must_from_callable(method)
        assert definition.arg_types is not None, definition.name
        assert len(definition.arg_types) == 1, f"{definition.name} takes {definition.arg_types}"
        inputs[str(definition.name)] = definition.arg_types[0]
    return inputs


def shapes(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def test_every_activity_takes_one_dataclass_and_only_the_listed_ones_a_bare_id_too() -> None:
    inputs = registered_inputs()
    for name, hint in inputs.items():
        dataclass_shapes = [s for s in shapes(hint) if dataclasses.is_dataclass(s)]
        others = [s for s in shapes(hint) if not dataclasses.is_dataclass(s)]
        assert len(dataclass_shapes) == 1, f"{name} takes {hint}, not one dataclass"
        assert others == ([BARE_SHAPES_BEFORE[name]] if name in BARE_SHAPES_BEFORE else []), (
            f"{name} takes {hint}"
        )
    assert set(BARE_SHAPES_BEFORE) <= set(inputs)


def test_a_bare_id_payload_decodes_for_each_activity_that_took_one() -> None:
    """What the worker does with an activity task's input: the payload of a bare id, as the
    release before wrote it, decodes into the parameter's type, and so does the dataclass."""
    converter = DataConverter.default.payload_converter
    inputs = registered_inputs()
    for name, before in BARE_SHAPES_BEFORE.items():
        old_value: Any = ["id-1", "id-2"] if before == list[str] else "id-1"
        [decoded] = converter.from_payloads(converter.to_payloads([old_value]), [inputs[name]])
        assert decoded == old_value, name
        ref_type: Any = next(s for s in shapes(inputs[name]) if dataclasses.is_dataclass(s))
        [field] = dataclasses.fields(ref_type)
        ref = ref_type(**{field.name: old_value})
        [decoded] = converter.from_payloads(converter.to_payloads([ref]), [inputs[name]])
        assert decoded == ref, name


@dataclasses.dataclass(frozen=True)
class BothShapes:
    payment_id: str
    activity_queue: str


@dataclasses.dataclass(frozen=True)
class ReadBothWays:
    view_from_bare_id: GatewayPaymentView
    view_from_ref: GatewayPaymentView
    states_from_bare_ids: list[WorkflowState]
    states_from_ref: list[WorkflowState]


@workflow.defn(name="ActivityInputShapes", sandboxed=False)
class ActivityInputShapes:
    """Schedules the same activities by name as the release before did (a bare id) and as
    this one does (a dataclass), on the connector's own task queue."""

    @workflow.run
    async def run(self, request: BothShapes) -> ReadBothWays:
        def by_name(name: str, arg: Any, result: Any) -> Any:
            return workflow.execute_activity(
                name,
                arg,
                result_type=result,
                task_queue=request.activity_queue,
                start_to_close_timeout=timedelta(seconds=30),
                # An input the worker cannot decode fails here at once instead of retrying.
                retry_policy=RetryPolicy(maximum_attempts=1),
            )

        unknown = f"never-started-{request.payment_id}"
        ref = MolliePaymentRef(payment_id=request.payment_id)
        return ReadBothWays(
            view_from_bare_id=await by_name(
                "fetch_payment", request.payment_id, GatewayPaymentView
            ),
            view_from_ref=await by_name("fetch_payment", ref, GatewayPaymentView),
            states_from_bare_ids=await by_name("workflow_states", [unknown], list[WorkflowState]),
            states_from_ref=await by_name(
                "workflow_states", WorkflowIds(workflow_ids=[unknown]), list[WorkflowState]
            ),
        )


async def test_the_worker_runs_an_activity_task_scheduled_with_a_bare_id(
    connector: Connector,
) -> None:
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{connector.emulators.mollie_url}/v2/payments",
            headers={"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"},
            json={
                "amount": {"currency": "EUR", "value": "4.99"},
                "description": "a payment to read back",
                "redirectUrl": "https://shop.example/return",
            },
        )
        created.raise_for_status()
    payment_id = created.json()["id"]
    queue = f"input-shapes-{uuid.uuid4().hex[:8]}"
    async with Worker(connector.client, task_queue=queue, workflows=[ActivityInputShapes]):
        read = await connector.client.execute_workflow(
            ActivityInputShapes.run,
            BothShapes(
                payment_id=payment_id, activity_queue=connector.settings.temporal_task_queue
            ),
            id=f"input-shapes-{payment_id}",
            task_queue=queue,
        )
    assert read.view_from_bare_id == read.view_from_ref
    assert (read.view_from_ref.payment_id, read.view_from_ref.status) == (payment_id, "open")
    assert read.states_from_bare_ids == read.states_from_ref
    assert [state.status for state in read.states_from_ref] == [NOT_FOUND]
