"""Where a running stack answers: `<data-dir>/stack.env`, written by the launcher.

`scripts/run` (launcher.py) writes it once every listener is up, and removes it when it stops:
one `KEY=value` line per address (Temporal's gRPC address, the API, the emulators, the Web UI,
the codec server). The demos and `python -m connector_ops` read it, `--data-dir` choosing the
stack (default `.data`, the launcher's own default), so they follow the ports the stack was
started on. It holds no secret: the payload key ring stays in `payload-encryption.keys`.

A connector setting in the file (`TEMPORAL_ADDRESS`, `CONNECTOR_PUBLIC_URL`, `MOLLIE_BASE_URL`,
`CLEENG_BASE_URL`) is used only where the environment does not set it: an explicit variable
(or a tool's flag) wins. `TEMPORAL_ADDRESS` and `TEMPORAL_CODEC_ENDPOINT` are also the names
the `temporal` CLI reads, so `set -a; . .data/stack.env; set +a` points it at the stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_DATA_DIR = Path(".data")
STACK_FILE = "stack.env"

# Connector settings (see settings.py) the file may carry; a tool takes them from the file
# only when its environment leaves them unset.
SETTINGS_KEYS = ("TEMPORAL_ADDRESS", "CONNECTOR_PUBLIC_URL", "MOLLIE_BASE_URL", "CLEENG_BASE_URL")
# Names a secret would carry: refused, so the file can never hold one by mistake.
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def stack_file_path(data_dir: Path) -> Path:
    return data_dir / STACK_FILE


def shown(path: Path) -> str:
    """A path as the person at the console typed it: relative when below the cwd."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class StackFile:
    path: Path
    values: dict[str, str]

    def get(self, key: str) -> str | None:
        return self.values.get(key) or None


def write_stack_file(data_dir: Path, values: Mapping[str, str], *, pid: int) -> Path:
    """Write the file whole, then rename it into place: a reader never sees half of it."""
    for key, value in values.items():
        if any(marker in key for marker in _SECRET_MARKERS):
            raise ValueError(f"{key} looks like a secret: not written to {STACK_FILE}")
        if not key.replace("_", "").isalnum() or any(c.isspace() for c in value):
            raise ValueError(f"{key}={value!r} cannot be written as a KEY=value line")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        f"# Where the stack of {shown(data_dir)} answers: written by scripts/run (launcher pid "
        f"{pid}) at {stamp}, removed when it stops.",
        "# Read by the demos and `python -m connector_ops` (--data-dir picks the stack); a "
        "variable set in the environment wins. No secrets: the key ring is in "
        "payload-encryption.keys.",
        *(f"{key}={value}" for key, value in values.items()),
    ]
    final = stack_file_path(data_dir)
    partial = final.with_name(f".{final.name}.tmp")
    partial.write_text("\n".join(lines) + "\n")
    os.replace(partial, final)
    return final


def read_stack_file(data_dir: Path) -> StackFile | None:
    """The stack file of `data_dir`, or None when there is none (no stack runs there)."""
    path = stack_file_path(data_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return StackFile(path=path, values=values)


@dataclass(frozen=True)
class StackSource:
    """Which stack a tool follows, and where each of its connector settings came from."""

    data_dir: Path
    file: StackFile | None
    from_file: frozenset[str]
    from_environment: frozenset[str]

    def origin(self, key: str) -> str:
        """How to change `key`, for an error message: where its value came from."""
        if key in self.from_environment:
            return f"{key}, set in the environment"
        if self.file is not None and key in self.from_file:
            return (
                f"{key} from {shown(self.file.path)}: is that stack running? "
                "--data-dir picks another"
            )
        if self.file is None:
            where = shown(stack_file_path(self.data_dir))
            return (
                f"{key}, from .env or its default; no stack file {where}: is scripts/run "
                "running? --data-dir picks its data dir"
            )
        return f"{key}, from .env or its default"


def follow_stack(data_dir: Path, environ: MutableMapping[str, str] | None = None) -> StackSource:
    """Put the stack file's connector settings into `environ` (the process environment by
    default) where it leaves them unset, so the settings read next follow the stack."""
    environment = os.environ if environ is None else environ
    stack = read_stack_file(data_dir)
    explicit = frozenset(key for key in SETTINGS_KEYS if environment.get(key))
    applied: set[str] = set()
    if stack is not None:
        for key in SETTINGS_KEYS:
            value = stack.get(key)
            if value is not None and key not in explicit:
                environment[key] = value
                applied.add(key)
    return StackSource(
        data_dir=data_dir, file=stack, from_file=frozenset(applied), from_environment=explicit
    )


@dataclass(frozen=True)
class Address:
    """A URL a demo uses, and how to change it."""

    value: str
    origin: str


def pick(
    flag_value: str | None,
    flag: str,
    data_dir: Path,
    stack: StackFile | None,
    key: str,
    default: str,
) -> Address:
    """A flag given wins; else the stack file's `key`; else the launcher's default."""
    if flag_value:
        return Address(flag_value, flag)
    if stack is not None and (value := stack.get(key)):
        return Address(
            value, f"{key} from {shown(stack.path)}: is that stack running? {flag} sets it"
        )
    where = shown(stack_file_path(data_dir))
    return Address(
        default, f"the default, no stack file {where}: is scripts/run running? {flag} sets it"
    )
