"""The worker registers every activity the activity classes define."""

from __future__ import annotations

import inspect
from datetime import timedelta

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import _Definition as WorkflowDefinition

from activities.cleeng_activities import CleengActivities
from activities.directory import WorkflowDirectory
from activities.mollie_activities import MollieActivities
from settings import Settings
from worker import PURE_MODULES, WORKFLOWS, activity_list, compile_workflow_sources
from workflows.policies import HEARTBEAT_TIMEOUT, HTTP_REQUEST_LIMIT


def public_coroutines(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def test_every_public_activity_method_is_registered() -> None:
    cleeng = object.__new__(CleengActivities)
    mollie = object.__new__(MollieActivities)
    directory = object.__new__(WorkflowDirectory)
    registered = {method.__name__ for method in activity_list(cleeng, mollie, directory)}
    defined = (
        public_coroutines(CleengActivities)
        | public_coroutines(MollieActivities)
        | public_coroutines(WorkflowDirectory)
    )
    assert defined == registered, f"not registered: {sorted(defined - registered)}"


def test_one_request_of_either_client_fits_the_activity_kinds() -> None:
    # HTTP_REQUEST_LIMIT assumes the clients' default 10 s per phase (Cleeng: connect, write
    # and read; Mollie: a 3 s connect and the read): a longer client timeout needs it raised.
    defaults = Settings.model_fields
    cleeng_worst = 3 * float(defaults["cleeng_timeout_seconds"].default)
    mollie_worst = 3 + float(defaults["mollie_timeout_seconds"].default)
    assert timedelta(seconds=max(cleeng_worst, mollie_worst)) <= HTTP_REQUEST_LIMIT
    assert HTTP_REQUEST_LIMIT < HEARTBEAT_TIMEOUT


async def test_every_workflow_loads_in_the_sandbox_with_its_pure_modules_checked_too() -> None:
    """The worker passes its pure modules through the sandbox for speed; loading every
    workflow with none passed through keeps the sandbox's checks (no I/O, no clock, no
    randomness at import) on their code as well."""
    strict = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default)
    for workflow_class in WORKFLOWS:
        strict.prepare_workflow(WorkflowDefinition.must_from_class(workflow_class))
    assert not SandboxRestrictions.default.passthrough_modules.intersection(PURE_MODULES)


def test_the_workflows_bytecode_is_written_for_the_sandbox_to_reuse() -> None:
    assert compile_workflow_sources()
