"""`reconcile now`: one reconciliation run outside the schedule, waited for and printed."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from connector_ops.common import Context, JsonFlag, OpsError, emit, run
from connector_ops.schedules import reconcile_now
from domain.reconciliation import ReconciliationReport

app = typer.Typer(
    help="Check Mollie against Cleeng now: orphan holds, unrecorded payments, refunds and "
    "chargebacks.",
    no_args_is_help=True,
)


def report_text(report: ReconciliationReport) -> str:
    lines = [report.summary()]
    lines += [
        f"  {finding.kind:24} {finding.action:18} {finding.mollie_payment_id or '-':14} "
        f"{finding.detail}"
        for finding in report.findings
    ]
    return "\n".join(lines)


@app.command("now")
def now(
    as_json: JsonFlag = False,
    window_hours: Annotated[
        int | None,
        typer.Option(min=1, help="Hours of Mollie payments to read (default: the setting)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be repaired; change nothing.")
    ] = False,
    fail_on_drift: Annotated[
        bool,
        typer.Option(help="Exit 1 when anything is left for a person (for monitoring)."),
    ] = False,
) -> None:
    """Run reconciliation once and print its report (what was checked, found, repaired)."""

    async def command(context: Context) -> None:
        report = await reconcile_now(
            context.client,
            context.settings,
            window_hours=window_hours or context.settings.reconciliation_window_hours,
            repair=not dry_run,
        )
        payload = {
            **dataclasses.asdict(report),
            "repaired": report.repaired,
            "left_for_a_person": report.left_for_a_person,
        }
        emit(payload, report_text(report), as_json)
        if fail_on_drift and report.left_for_a_person:
            raise OpsError(f"{report.left_for_a_person} finding(s) left for a person")

    run(command)
