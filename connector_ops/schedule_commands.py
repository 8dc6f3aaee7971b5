"""`schedules ensure`: create the connector's Temporal Schedules, or bring them up to date."""

from __future__ import annotations

import typer

from connector_ops.common import Context, JsonFlag, emit, run
from connector_ops.schedules import RECONCILIATION_SCHEDULE_ID, ensure_schedules

app = typer.Typer(help="The connector's Temporal Schedules.", no_args_is_help=True)


@app.command("ensure")
def ensure(as_json: JsonFlag = False) -> None:
    """Create the reconciliation schedule from the settings, or update it (idempotent)."""

    async def command(context: Context) -> None:
        outcome = await ensure_schedules(context.client, context.settings)
        settings = context.settings
        minutes = settings.reconciliation_interval_minutes
        every = f"every {minutes} min" if minutes else "paused"
        emit(
            {
                "schedule": RECONCILIATION_SCHEDULE_ID,
                "outcome": outcome,
                "interval_minutes": minutes,
            },
            f"{RECONCILIATION_SCHEDULE_ID}: {outcome} ({every}, "
            f"{settings.reconciliation_window_hours} h window)",
            as_json,
        )

    run(command)
