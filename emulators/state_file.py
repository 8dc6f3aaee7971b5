"""An emulator's state kept in a file, so a restarted emulator carries on where it stopped.

Used by both emulators when they run with ``--state-file PATH``. The file is a pickle the
emulator wrote itself: it is trusted local state, like a database file, and must never be
loaded from anywhere else (unpickling runs code named in the file).

Writes are atomic (a temporary file in the same directory, then a rename), so a reader or a
restart sees either the previous snapshot or the new one, never half of one. The rename makes
a snapshot survive a crash of the emulator process; it is not flushed to disk (no fsync), so a
crash of the whole machine may lose the last snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("emulators.state_file")

DEFAULT_SAVE_INTERVAL_SECONDS = 2.0
# Without requests, state changes only as the emulator's own clock work goes on (expiries,
# settlements, webhook attempts, renewals); those follow from the clock and are redone after a
# restart, so they are saved less often, sparing a large state the cost of a pickle every tick.
DEFAULT_QUIET_SAVE_INTERVAL_SECONDS = 30.0
# A save holds the event loop while it pickles, so with a large state (ten thousand
# subscribers) saving every interval took a large share of the emulator's time. After a save
# the next waits at least its duration divided by this share, so saving stays under about 5%
# of the emulator's time; the price is a longer window of changes a SIGKILL loses.
SAVE_TIME_SHARE = 0.05

# The shape of the records a snapshot holds: (class name, field names) for each class.
Schema = tuple[tuple[str, tuple[str, ...]], ...]


def schema_of(*classes: type) -> Schema:
    """The field names of the record classes a snapshot pickles.

    A snapshot is only loaded into an emulator whose records have the same fields: unpickling
    bypasses ``__init__``, so an older record would lack a field added since and fail later,
    far from the cause.
    """
    shapes: list[tuple[str, tuple[str, ...]]] = []
    for cls in classes:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__qualname__} is not a dataclass")
        names = tuple(f.name for f in dataclasses.fields(cls))
        shapes.append((f"{cls.__module__}.{cls.__qualname__}", names))
    return tuple(shapes)


@dataclass(frozen=True)
class Snapshot:
    """What the file holds: which emulator wrote it, the record shapes, and the state."""

    kind: str
    schema: Schema
    state: dict[str, Any]


class StateFile:
    """One emulator's state file."""

    def __init__(self, path: Path, *, kind: str, schema: Schema) -> None:
        self.path = path
        self.kind = kind
        self.schema = schema

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none this emulator can use.

        A file that cannot be read or was written for other records is moved aside (to
        ``<name>.unusable``) rather than overwritten, so nothing is silently lost.
        """
        try:
            payload = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            snapshot: object = pickle.loads(payload)
        except Exception as exc:  # a truncated or foreign file: start fresh, keep the file
            problem = f"cannot be read ({type(exc).__name__})"
        else:
            if not isinstance(snapshot, Snapshot) or snapshot.kind != self.kind:
                problem = f"is not a {self.kind} state file"
            elif snapshot.schema != self.schema:
                problem = "was written by an emulator with different records"
            else:
                return snapshot.state
        aside = self.path.with_name(self.path.name + ".unusable")
        os.replace(self.path, aside)
        logger.warning("state file %s %s; moved to %s, starting fresh", self.path, problem, aside)
        return None

    def encode(self, state: dict[str, Any]) -> bytes:
        return pickle.dumps(Snapshot(self.kind, self.schema, state), pickle.HIGHEST_PROTOCOL)

    def write(self, payload: bytes) -> None:
        """Replace the file with `payload` atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(payload)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


class StateKeeper:
    """Saves an emulator's state while it runs (when it changed) and when it stops.

    `capture` must return the state as plain, picklable data and must not await: it runs on
    the server's event loop between requests, so a snapshot never holds half of a change.

    Every `interval_seconds` after a request was answered (see `CountRequests`) the state is
    pickled and written if it differs from the last snapshot; without requests, every
    `quiet_interval_seconds`. A SIGKILL therefore loses at most the changes requests made in
    the last `interval_seconds`; for a state so large that one save takes longer than
    `interval_seconds * SAVE_TIME_SHARE`, in the last `1 / SAVE_TIME_SHARE` (20) times as
    long as a save takes.
    """

    def __init__(
        self,
        file: StateFile,
        capture: Callable[[], dict[str, Any]],
        interval_seconds: float = DEFAULT_SAVE_INTERVAL_SECONDS,
        quiet_interval_seconds: float = DEFAULT_QUIET_SAVE_INTERVAL_SECONDS,
    ) -> None:
        self.file = file
        self.capture = capture
        self.interval_seconds = interval_seconds
        self.quiet_interval_seconds = max(quiet_interval_seconds, interval_seconds)
        self.requests_answered = 0
        self._last_saved: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    def save_if_changed(self) -> bool:
        """Write a snapshot unless it equals the last one written; True when written."""
        payload = self.file.encode(self.capture())
        if payload == self._last_saved:
            return False
        self.file.write(payload)
        self._last_saved = payload
        return True

    def pause_after(self, save_seconds: float) -> float:
        """How long to wait before the next save, after one that took `save_seconds`."""
        return max(self.interval_seconds, save_seconds / SAVE_TIME_SHARE)

    async def _save_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        checked_after = -1  # requests answered when the state was last compared
        checked_at = loop.time()
        pause = self.interval_seconds
        while True:
            await asyncio.sleep(pause)
            quiet = self.requests_answered == checked_after
            if quiet and loop.time() - checked_at < self.quiet_interval_seconds:
                continue
            checked_after, checked_at = self.requests_answered, loop.time()
            try:
                if self.save_if_changed():
                    logger.debug("state saved to %s", self.file.path)
            except Exception:  # a full disk must not stop the emulator; try again next time
                logger.exception("saving state to %s failed", self.file.path)
            pause = self.pause_after(loop.time() - checked_at)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._save_periodically(), name=f"{self.file.kind}-state-saver"
            )

    async def stop(self) -> None:
        """Stop the periodic saves and write the final snapshot."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.save_if_changed():
            logger.info("state saved to %s", self.file.path)


def load_and_keep(
    path: Path,
    *,
    kind: str,
    schema: Schema,
    capture: Callable[[], dict[str, Any]],
    restore: Callable[[dict[str, Any]], None],
    describe: Callable[[], str],
    interval_seconds: float = DEFAULT_SAVE_INTERVAL_SECONDS,
) -> StateKeeper:
    """Load `path` through `restore` if it holds a usable snapshot, and return what keeps the
    state saved from now on. `describe` names what was restored, for the log."""
    file = StateFile(path, kind=kind, schema=schema)
    state = file.load()
    if state is not None:
        restore(state)
        logger.info("state restored from %s: %s", path, describe())
    return StateKeeper(file, capture, interval_seconds)


class CountRequests:
    """ASGI middleware that tells the keeper a request was answered (it may have changed the
    state). Counted when the answer is done, so a change made late in a request is not
    missed by a save that ran while the request was still under way."""

    def __init__(self, app: ASGIApp, keeper: StateKeeper) -> None:
        self.app = app
        self.keeper = keeper

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.keeper.requests_answered += 1
