"""The worker registers every activity the activity classes define."""

from __future__ import annotations

import inspect

from activities.cleeng_activities import CleengActivities
from activities.directory import WorkflowDirectory
from activities.mollie_activities import MollieActivities
from worker import activity_list


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
