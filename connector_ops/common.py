"""What every command shares: settings, the Temporal connection, output and exit codes.

Exit codes: 0 done, 1 not found or refused (the message says which and why), 2 a usage
error (typer's own, or a malformed id). An expected failure is one line on stderr naming the
problem, never a traceback and never a secret.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError

from codec.keys import with_sandbox_keys
from connector_ops.stack_file import DEFAULT_DATA_DIR, StackSource, follow_stack
from settings import Settings
from temporal_connection import connect_temporal, load_settings

EXIT_REFUSED = 1
EXIT_USAGE = 2

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")]

# Cleeng ids are positive int32s (api/cleeng_payloads.py); anything else cannot name a
# subscription or an order, and would end up inside a visibility query.
_CLEENG_ID = re.compile(r"^[1-9][0-9]{0,9}$")
_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


class OpsError(Exception):
    """An expected failure: printed as one line, ending the command with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Context:
    settings: Settings
    client: Client
    stack: StackSource


def cleeng_id(value: str, what: str) -> str:
    if not _CLEENG_ID.fullmatch(value.strip()):
        raise typer.BadParameter(f"{what} must be a positive Cleeng id (digits), got {value!r}")
    return value.strip()


def workflow_id_argument(value: str) -> str:
    if not _WORKFLOW_ID.fullmatch(value):
        raise typer.BadParameter(
            f"not a connector workflow id (e.g. billing:123:2027-01-01T00:00:00Z): {value!r}"
        )
    return value


async def connect(settings: Settings, stack: StackSource) -> Client:
    try:
        # A few quick retries: an operator wants an answer, not a minute of silence.
        return await connect_temporal(settings, retry_config=RetryConfig(max_retries=2))
    except Exception as error:  # the SDK raises plain RuntimeErrors for connect failures
        raise OpsError(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace}; "
            f"{stack.origin('TEMPORAL_ADDRESS')}): {_first_line(error)}"
        ) from error


def _first_line(error: BaseException) -> str:
    """The gist of a connect failure: the OS's reason when the SDK's text quotes one."""
    text = str(error).strip()
    reason = re.search(r'message: "([^"]+)"', text)
    if reason:
        return reason.group(1)
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:199] + "…"


_chosen = {"data_dir": DEFAULT_DATA_DIR}


def choose_data_dir(data_dir: Path) -> None:
    """Called by the root command with its --data-dir, before any command runs."""
    _chosen["data_dir"] = data_dir


def chosen_data_dir() -> Path:
    return _chosen["data_dir"]


def run(command: Callable[[Context], Awaitable[None]]) -> None:
    """Follow the chosen stack, load the settings, connect to Temporal and run `command`,
    turning expected failures into one line and an exit code."""
    data_dir = chosen_data_dir()
    stack = follow_stack(data_dir)
    settings = with_sandbox_keys(load_settings(), data_dir)

    async def main() -> tuple[str, int] | None:
        # Failures become plain values before leaving the event loop: an exception carried out
        # of it keeps the Temporal client alive (through its traceback's frames) until the
        # interpreter shuts down, and the client's native runtime must not be torn down then.
        try:
            client = await connect(settings, stack)
            await command(Context(settings=settings, client=client, stack=stack))
        except OpsError as error:
            return str(error), error.exit_code
        except RPCError as error:
            return f"Temporal answered {error.status.name}: {error.message}", EXIT_REFUSED
        return None

    failed = asyncio.run(main())
    if failed is not None:
        message, exit_code = failed
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(exit_code)


def emit(payload: Any, text: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(text)
