"""Every saved history replays on today's workflow code.

Running workflows live for weeks: a change that would make one of them take a different path
on replay (a new activity in an old branch, a removed timer) fails here, before it ships. Such
a change goes behind `workflow.patched(...)` (see "Changing workflow code" in the README).
The histories under tests/histories/ come from `scripts/refresh_histories`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_cover_every_workflow_type() -> None:
    saved = {path.stem.rsplit("-", 1)[0] for path in HISTORIES}
    defined = {getattr(workflow, "__temporal_workflow_definition").name for workflow in WORKFLOWS}
    assert defined <= saved, f"no saved history for {sorted(defined - saved)}"


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_saved_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay:{path.stem}", path.read_text())
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
