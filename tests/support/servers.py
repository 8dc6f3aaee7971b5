"""Run ASGI apps as real HTTP servers on loopback for tests.

Each server runs uvicorn in its own thread with its own event loop, so synchronous clients
(mollie-api-python) and async clients alike talk to it over real sockets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from emulators import KEEP_ALIVE_SECONDS


def free_port() -> int:
    """Ask the kernel for a port that is free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """`count` different ports, all free right now on 127.0.0.1. Each is held while the next is
    asked for: two `free_port()` calls in a row can be handed the same port."""
    with ExitStack() as held:
        sockets = [
            held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port_run(length: int, avoid: Collection[int] = ()) -> int:
    """The first of `length` consecutive ports that are all free right now on 127.0.0.1 and
    not in `avoid`: the launcher gives worker N the metrics port + N - 1."""
    while True:
        first = free_port()
        run = range(first, first + length)
        if run.stop - 1 > 65535 or any(port in avoid for port in run):
            continue
        with ExitStack() as held:
            try:
                for port in run:
                    held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)).bind(
                        ("127.0.0.1", port)
                    )
            except OSError:
                continue
            return first


@contextmanager
def serve_in_thread(
    app: Any, port: int | None = None, *, date_header: bool = True
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL; stop it on exit. `date_header=False`
    for an app that stamps its own `Date` (the Cleeng emulator's clock)."""
    chosen_port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=chosen_port,
        log_level="warning",
        date_header=date_header,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{chosen_port}", daemon=True)
    thread.start()
    started = threading.Event()

    def wait_started() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.01)

    wait_started()
    if not server.started:
        raise RuntimeError(f"server on port {chosen_port} did not start")
    try:
        yield f"http://127.0.0.1:{chosen_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# The launcher's port flags (`--<name>-port`), each given a free port by `start_launcher`.
LAUNCHER_PORTS = (
    "api",
    "temporal",
    "temporal-ui",
    "temporal-http",
    "temporal-metrics",
    "mollie",
    "cleeng",
    "codec",
    "worker-metrics",
)

# Settings a developer's shell may hold that must not reach a sandbox stack under test.
_CONNECTOR_ENV_PREFIXES = (
    "CLEENG_",
    "MOLLIE_",
    "TEMPORAL_",
    "CONNECTOR_",
    "API_",
    "FRONTEND_",
    "MAX_",
    "PAYLOAD_",
    "CODEC_",
    "ALLOW_",
    "WEBHOOK_",
)


def clean_env() -> dict[str, str]:
    """This process's environment without any connector setting a developer's shell holds."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_CONNECTOR_ENV_PREFIXES)
    }


def start_launcher(
    data_dir: Path,
    cwd: Path,
    extra_env: Mapping[str, str] | None = None,
    ports_given: Mapping[str, int] | None = None,
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """`python -m launcher` exactly as `scripts/run` runs it, on free ports (but those in
    `ports_given`), in sandbox mode (with `extra_env` set, e.g. LOG_FORMAT); its console
    (stdout and stderr) is readable line by line. Returns it and its ports."""
    single = [name for name in LAUNCHER_PORTS if name != "worker-metrics"]
    ports = dict(zip(single, free_ports(len(single)), strict=True))
    # Room for a second worker's metrics (WORKER_PROCESSES=2 in a test) on the next port.
    ports["worker-metrics"] = free_port_run(2, avoid=ports.values())
    ports.update(ports_given or {})
    args = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    env = {**clean_env(), **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher", "--data-dir", str(data_dir), *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, ports


def refused_start(data_dir: Path, cwd: Path, ports_given: Mapping[str, int] | None = None) -> str:
    """Start a launcher that must refuse to start: its console, once it exited with 1."""
    launcher, _ = start_launcher(data_dir, cwd=cwd, ports_given=ports_given)
    try:
        console, _ = launcher.communicate(timeout=60)
    finally:
        stop_if_running(launcher)
    assert launcher.returncode == 1, console
    return console


def stop_if_running(launcher: subprocess.Popen[str]) -> None:
    """Stop a launcher that a test started (or a failing test left running), so no stack
    outlives its test."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
