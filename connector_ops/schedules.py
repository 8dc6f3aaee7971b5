"""The connector's Temporal Schedules, and reconciliation started by hand.

`ensure_schedules` is idempotent: the launcher runs it at every start and an operator runs it
once per cluster (`python -m connector_ops schedules ensure`), again after changing a setting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from domain.reconciliation import ReconciliationInput, ReconciliationReport
from settings import Settings
from workflows.reconciliation import ReconciliationWorkflow

RECONCILIATION_SCHEDULE_ID = "connector-reconciliation"
# Each scheduled run's id is this plus the time it was due (Temporal appends it).
RECONCILIATION_WORKFLOW_ID = "reconciliation"
# The interval a paused schedule keeps, so unpausing it by hand does something sensible.
_PAUSED_INTERVAL = timedelta(hours=1)


def reconciliation_schedule(settings: Settings) -> Schedule:
    minutes = settings.reconciliation_interval_minutes
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(window_hours=settings.reconciliation_window_hours),
            id=RECONCILIATION_WORKFLOW_ID,
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(
                    every=timedelta(minutes=minutes) if minutes else _PAUSED_INTERVAL
                )
            ]
        ),
        # A run that outlasts the interval is not joined by a second one reading the same
        # payments; the next one starts at the next interval.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            paused=minutes == 0,
            note=(
                "paused: RECONCILIATION_INTERVAL_MINUTES=0"
                if minutes == 0
                else f"every {minutes} min, {settings.reconciliation_window_hours} h window"
            ),
        ),
    )


async def ensure_schedules(client: Client, settings: Settings) -> str:
    """Create the reconciliation schedule, or bring an existing one up to the settings.
    Returns "created" or "updated"."""
    schedule = reconciliation_schedule(settings)
    try:
        await client.create_schedule(RECONCILIATION_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(RECONCILIATION_SCHEDULE_ID).update(replace)
        return "updated"
    return "created"


async def reconcile_now(
    client: Client, settings: Settings, *, window_hours: int, repair: bool
) -> ReconciliationReport:
    """One reconciliation run, outside the schedule, waited for."""
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return await client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(window_hours=window_hours, repair=repair),
        id=f"{RECONCILIATION_WORKFLOW_ID}-now-{started}",
        task_queue=settings.temporal_task_queue,
    )
