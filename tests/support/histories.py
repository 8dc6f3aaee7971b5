"""Saved workflow histories: what the replay tests hold every change of workflow code to.

`scripts/refresh_histories` runs the suite with `SAVE_HISTORIES_TO=<dir>`; each connector the
tests start then saves, before it stops, one history per distinct path of each workflow type
(the same sequence of events is one path), so the set covers the main paths without hundreds of
near-copies.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

# At most this many paths per workflow type: enough to cover success, decline, refusal and
# compensation, few enough to read.
PATHS_PER_TYPE = 8


async def save_histories(client: Client, task_queue: str) -> None:
    target = os.environ.get("SAVE_HISTORIES_TO")
    if not target:
        return
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    query = f'TaskQueue="{task_queue}" AND ExecutionStatus!="Running"'
    async for execution in client.list_workflows(query):
        history = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).fetch_history()
        shape = [str(event.event_type) for event in history.events]
        digest = hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:12]
        kind = execution.workflow_type
        path = folder / f"{kind}-{digest}.json"
        if path.exists() or len(list(folder.glob(f"{kind}-*.json"))) >= PATHS_PER_TYPE:
            continue
        path.write_text(history.to_json())


async def keep_history(handle: WorkflowHandle[Any, Any], label: str) -> None:
    """Save one finished workflow's history as `<label>-<shape digest>.json`, when the run
    saves histories: for paths no connector fixture sees (the time-skipping tests)."""
    target = os.environ.get("SAVE_HISTORIES_TO")
    if not target:
        return
    history = await handle.fetch_history()
    shape = [str(event.event_type) for event in history.events]
    digest = hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:12]
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{label}-{digest}.json").write_text(history.to_json())


SAVED = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*.json"))


def saved_history(path: Path) -> WorkflowHistory:
    """A saved history under the workflow id it ran with, which its start event names: a
    workflow may derive a child's id from its own (a refused refund's follow-up), and a replay
    under another id would differ there. Histories of servers that did not write the id
    replay as `replay:{file stem}`."""
    text = path.read_text()
    started = json.loads(text)["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or f"replay:{path.stem}", text)


async def replay_failures(replayer: Replayer, paths: Sequence[Path]) -> dict[str, str | None]:
    """Replay every history at `paths` through one replayer, in one pass: each file's replay
    failure (None when it replays), keyed by file stem. One pass starts one replay worker for
    all of them, where a replayer per history starts one each (about a second apiece)."""
    histories = [saved_history(path) for path in paths]
    stem_of_run = {
        history.run_id: path.stem for history, path in zip(histories, paths, strict=True)
    }
    assert len(stem_of_run) == len(paths), "two saved histories share a run id"

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures: dict[str, str | None] = dict.fromkeys(stem_of_run.values())
    for run_id, failure in results.replay_failures.items():
        failures[stem_of_run[run_id]] = str(failure)
    return failures
