"""How a renewal cycle's steps run: activity tasks, or local activities for a compact history.

RecurringBilling decides *what* to do; `Steps` decides *how* each step reaches Temporal. With
`compact_history` (setting `renewal_compact_history`, fixed for a cycle when it starts) the
reads and the writes that are safe to repeat run as local activities, and search attributes
are set in one upsert when the workflow next waits. Writes to Cleeng that money depends on are
activity tasks either way. Cycles started without `compact_history` run one activity task per
step and upsert each search attribute at once, as they always did.

Every command a step makes (which activity, local or not, with which kind from
workflows/policies.py; each upsert; the 1 ms timer) is part of the cycle's history: changing
what a step schedules changes how saved histories replay (docs/development.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, FailureError

from workflows.policies import CALL, LOCAL_CALL, LOCAL_RECORD, RECORD

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@contextmanager
def _as_activity_error(activity: Callable[..., Any]) -> Iterator[None]:
    """A failed local activity surfaces as its bare cause (an ApplicationError, a timeout);
    wrap it as the ActivityError an activity task raises, so every step fails one way and the
    transitions read it with workflows/failures like any other."""
    try:
        yield
    except ActivityError:
        raise
    except FailureError as failure:
        raise ActivityError(
            f"Local activity {activity.__name__} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=activity.__name__,
            activity_id="",
            retry_state=None,
        ) from failure


class Steps:
    """One per RecurringBilling run: runs its steps and holds its unpublished search
    attributes."""

    def __init__(self, compact_history: bool) -> None:
        self.local = compact_history
        # Search attributes set since the workflow last waited (compact history only).
        self._unpublished: dict[str, SearchAttributeUpdate[Any]] = {}
        # Local steps run in the current workflow task, not yet in the history.
        self._unkept_local_steps = False

    async def call(self, activity: Callable[[Any, _In], Awaitable[_Out]], arg: _In) -> _Out:
        """A read (or a check) of at most a few requests."""
        if self.local:
            self._unkept_local_steps = True
            with _as_activity_error(activity):
                return await workflow.execute_local_activity_method(activity, arg, **LOCAL_CALL)
        return await workflow.execute_activity_method(activity, arg, **CALL)

    async def write_safe_to_repeat(
        self, activity: Callable[[Any, _In], Awaitable[_Out]], arg: _In
    ) -> _Out:
        """A write whose repeat does no harm: keyed at Mollie by the cycle's operation (the
        charge, capture, release), or an order Cleeng lets expire unpaid."""
        if self.local:
            self._unkept_local_steps = True
            with _as_activity_error(activity):
                return await workflow.execute_local_activity_method(activity, arg, **LOCAL_RECORD)
        return await workflow.execute_activity_method(activity, arg, **RECORD)

    async def record(self, activity: Callable[[Any, _In], Awaitable[_Out]], arg: _In) -> _Out:
        """A write to Cleeng that money depends on is always an activity task: a repeat could
        record a payment twice, and while Cleeng refuses it, it waits in the open as a pending
        activity with its last failure. Its workflow task also keeps the local steps before
        it. (Search attributes wait for the end: while Cleeng's record is retried, the cycle is
        found by its subscription id, which the Mollie payment's metadata carries.)"""
        self._unkept_local_steps = False
        return await workflow.execute_activity_method(activity, arg, **RECORD)

    def set_attribute(self, update: SearchAttributeUpdate[Any]) -> None:
        """Set a search attribute: at once, or (compact history) when the workflow next waits,
        in one upsert with the others set since; a later value of an attribute replaces an
        earlier one not yet published."""
        if self.local:
            self._unpublished[update.key.name] = update
        else:
            workflow.upsert_search_attributes([update])

    def publish_attributes(self) -> None:
        """Upsert the attributes set since the workflow last waited (call before each wait)."""
        if self._unpublished:
            workflow.upsert_search_attributes(list(self._unpublished.values()))
            self._unpublished = {}

    async def keep_local_steps(self) -> None:
        """End the workflow task before the workflow does. Local steps reach the history only
        with the task that ran them, and a task that completes the workflow is refused when a
        signal arrived meanwhile (Mollie's webhook for the charge usually does): the retried
        task would run every step again (safely, as the first one finds the cycle paid, but
        ending `already_paid` with the cycle's story lost). A task that only records the steps
        and starts a 1 ms timer is never refused."""
        if self._unkept_local_steps:
            await workflow.sleep(timedelta(milliseconds=1))
            self._unkept_local_steps = False
