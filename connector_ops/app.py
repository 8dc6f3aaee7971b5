"""The root command. Each command group lives in its own module and is added here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connector_ops import holds, lookups, reconcile, schedule_commands, webhook, workflow
from connector_ops.common import choose_data_dir
from connector_ops.stack_file import DEFAULT_DATA_DIR

app = typer.Typer(
    rich_markup_mode=None,
    name="connector_ops",
    help="Operator CLI of the Cleeng ⇄ Mollie connector. Every command takes --json.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def choose_stack(
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            help="The scripts/run stack to talk to: its stack.env says where it answers and "
            "its payload-encryption.keys decrypts its histories (a setting in the environment "
            "wins). Before the command: connector_ops --data-dir DIR purchase 123.",
            show_default=True,
        ),
    ] = DEFAULT_DATA_DIR,
) -> None:
    choose_data_dir(data_dir)


app.add_typer(lookups.app)
app.add_typer(workflow.app, name="workflow")
app.add_typer(webhook.app, name="webhook")
app.add_typer(holds.app, name="holds")
app.add_typer(reconcile.app, name="reconcile")
app.add_typer(schedule_commands.app, name="schedules")
