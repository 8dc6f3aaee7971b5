"""Every saved history replays on today's workflow code.

Running workflows live for weeks: a change that would make one of them take a different path
on replay (a new activity in an old branch, a removed timer) fails here, before it ships. Such
a change goes behind `workflow.patched(...)` (see "Changing workflow code" in
docs/development.md). The histories under tests/histories/ come from `scripts/refresh_histories`
and, for the old side of each patch, from the release that shipped (bf66b6e).

The negative control at the end proves the replay can fail: the same saved history, replayed on
a copy of its workflow with one activity call added, must fail with a non-determinism error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.worker import Replayer

from domain.operations import MolliePaymentRef
from tests.support.histories import SAVED, replay_failures, saved_history
from worker import WORKFLOWS
from workflows.policies import CALL
from workflows.refund import PaymentFollowUpWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.mollie_activities import MollieActivities

HISTORIES = SAVED


def test_histories_cover_every_workflow_type() -> None:
    saved = {path.stem.rsplit("-", 1)[0] for path in HISTORIES}
    defined = {getattr(workflow, "__temporal_workflow_definition").name for workflow in WORKFLOWS}
    assert defined <= saved, f"no saved history for {sorted(defined - saved)}"


@pytest.fixture(scope="module")
def failures_on_current_code() -> dict[str, str | None]:
    """Every saved history replayed once, in one pass of one replayer; each test below reads
    its own history's outcome."""
    return asyncio.run(replay_failures(Replayer(workflows=WORKFLOWS), HISTORIES))


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
def test_saved_history_replays_on_current_code(
    path: Path, failures_on_current_code: dict[str, str | None]
) -> None:
    assert failures_on_current_code[path.stem] is None, (
        f"{path.name}: {failures_on_current_code[path.stem]}"
    )


# The negative control: a PaymentFollowUp whose chargeback report failed, replayed on changed
# copies of the workflow registered under the same type name.
CONTROL_HISTORY = Path(__file__).parent / "histories" / "PaymentFollowUp-6fd4eeca7ac0.json"


@workflow.defn(name="PaymentFollowUp", sandboxed=False)
class FollowUpAsShipped(PaymentFollowUpWorkflow):
    """The workflow as it is, only subclassed: the control's control (subclassing alone
    changes nothing a replay sees)."""

    @workflow.run
    async def run(self, payment_id: str) -> list[str]:
        return await super().run(payment_id)


@workflow.defn(name="PaymentFollowUp", sandboxed=False)
class FollowUpWithOneMoreLook(PaymentFollowUpWorkflow):
    """The workflow with one activity call added before its first: the kind of unpatched
    change the replay test exists to catch."""

    @workflow.run
    async def run(self, payment_id: str) -> list[str]:
        await workflow.execute_activity_method(
            MollieActivities.fetch_payment, MolliePaymentRef(payment_id=payment_id), **CALL
        )
        return await super().run(payment_id)


async def _replay_as(workflow_class: type, path: Path) -> Exception | None:
    name = getattr(workflow_class, "__temporal_workflow_definition").name
    others = [
        defined
        for defined in WORKFLOWS
        if getattr(defined, "__temporal_workflow_definition").name != name
    ]
    history = saved_history(path)
    result = await Replayer(workflows=[*others, workflow_class]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    return result.replay_failure


async def test_negative_control_the_history_replays_on_an_unchanged_subclass() -> None:
    assert await _replay_as(FollowUpAsShipped, CONTROL_HISTORY) is None


async def test_negative_control_an_added_activity_call_fails_the_replay() -> None:
    failure = await _replay_as(FollowUpWithOneMoreLook, CONTROL_HISTORY)
    assert isinstance(failure, workflow.NondeterminismError), repr(failure)
    assert "nondeterminism" in str(failure).lower(), str(failure)
