"""The operator CLI run as an operator runs it: its own process, configured like the worker."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import Connector
from tests.support.servers import clean_env

CLI_TIMEOUT_SECONDS = 120
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.exit_code == 0, self.stderr
        return json.loads(self.stdout)


async def ops(connector: Connector, *args: str, cwd: Path, with_keys: bool = True) -> CliResult:
    """`python -m connector_ops ARGS` as an operator runs it, configured like the worker (with
    its PAYLOAD_ENCRYPTION_KEYS unless `with_keys` is False)."""
    settings = connector.settings
    env = clean_env()
    env.update(
        # The checkout under test, whatever the virtualenv's install last saw of it.
        PYTHONPATH=str(ROOT),
        CLEENG_BASE_URL=settings.cleeng_base_url,
        MOLLIE_BASE_URL=settings.mollie_base_url,
        CONNECTOR_PUBLIC_URL=settings.connector_public_url,
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
    )
    if with_keys and settings.payload_encryption_keys is not None:
        env["PAYLOAD_ENCRYPTION_KEYS"] = settings.payload_encryption_keys.get_secret_value()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector_ops", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_SECONDS)
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())
