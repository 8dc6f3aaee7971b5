"""The root command. Each command group lives in its own module and is added here."""

from __future__ import annotations

import typer

from connector_ops import holds, lookups, reconcile, schedule_commands, webhook, workflow

app = typer.Typer(
    rich_markup_mode=None,
    name="connector_ops",
    help="Operator CLI of the Cleeng ⇄ Mollie connector. Every command takes --json.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(lookups.app)
app.add_typer(workflow.app, name="workflow")
app.add_typer(webhook.app, name="webhook")
app.add_typer(holds.app, name="holds")
app.add_typer(reconcile.app, name="reconcile")
app.add_typer(schedule_commands.app, name="schedules")
