"""The launcher's supervision: a child that dies is restarted with a back-off while the others
keep running, pid files follow the children, and stop() ends them in reverse order.

The supervisor is driven with ordinary short Python processes; the last test runs the real
launcher (Temporal, emulators, worker, API) and SIGKILLs the worker and the Mollie emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from codec.keys import DEV_KEY_FILE
from connector_ops.schedules import RECONCILIATION_SCHEDULE_ID
from connector_ops.stack_file import STACK_FILE, follow_stack, read_stack_file, write_stack_file
from launcher import Backoff, StartupFailed, Supervisor, dev_server_cache_flags, worker_names
from tests.support.servers import clean_env, refused_start, start_launcher, stop_if_running

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# Records its name in a file when asked to stop, so the order of stops can be checked. It
# announces itself only once its handler is installed: a SIGTERM before that would be lost.
POLITE = """
import pathlib, signal, sys
name, stops, ready = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
def stop(signum, frame):
    with stops.open("a") as out:
        out.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
ready.touch()
while True:
    signal.pause()
"""
# Fast steps so a test sees several restarts quickly; the shape is the launcher's.
QUICK = Backoff(initial_seconds=0.05, cap_seconds=0.2, stable_after_seconds=60.0)


def await_condition(
    condition: Callable[[], bool], what: str, *, poll: Callable[[], None] = lambda: None
) -> None:
    """Drive `poll` (the launcher's main loop does the same) until `condition` holds."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within 30 s"
        poll()
        time.sleep(0.01)


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def supervisor(tmp_path: Path, said: list[str]) -> Iterator[Supervisor]:
    running = Supervisor(tmp_path / "data", backoff=QUICK, say=said.append)
    try:
        yield running
    finally:
        running.stop()


def pid_in_file(supervisor: Supervisor, name: str) -> int | None:
    path = supervisor.pid_file(name)
    return int(path.read_text()) if path.exists() else None


def kill_and_reap(supervisor: Supervisor, name: str) -> int:
    """SIGKILL the child and wait until it is gone; its pid."""
    process = supervisor.child(name).process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return process.pid


def test_workers_are_named_so_the_first_keeps_the_single_workers_name() -> None:
    assert worker_names(1) == ["worker"]
    assert worker_names(3) == ["worker", "worker-2", "worker-3"]


def test_the_dev_server_caches_as_many_workflows_as_set_or_keeps_its_defaults() -> None:
    flags = dev_server_cache_flags(10_000)
    values = dict(flags[i + 1].split("=") for i in range(0, len(flags), 2))
    assert set(flags[::2]) == {"--dynamic-config-value"}
    assert values == {
        "history.cacheMaxSize": "10000",
        "history.eventsCacheMaxSizeBytes": str(10_000 * 4096),
    }
    assert dev_server_cache_flags(0) == []


def test_a_stack_file_setting_applies_only_where_the_environment_sets_none(
    tmp_path: Path,
) -> None:
    write_stack_file(
        tmp_path,
        {"TEMPORAL_ADDRESS": "127.0.0.1:17233", "MOLLIE_BASE_URL": "http://127.0.0.1:18101"},
        pid=4242,
    )
    environ = {"MOLLIE_BASE_URL": "http://mollie.example"}
    followed = follow_stack(tmp_path, environ)
    assert environ == {
        "MOLLIE_BASE_URL": "http://mollie.example",
        "TEMPORAL_ADDRESS": "127.0.0.1:17233",
    }
    assert "stack.env" in followed.origin("TEMPORAL_ADDRESS")
    assert followed.origin("MOLLIE_BASE_URL") == "MOLLIE_BASE_URL, set in the environment"
    with pytest.raises(ValueError, match="looks like a secret"):
        write_stack_file(tmp_path, {"PAYLOAD_ENCRYPTION_KEYS": "k:abc"}, pid=4242)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [Backoff().delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_killed_child_is_restarted_with_backoff_while_the_others_keep_running(
    supervisor: Supervisor, said: list[str]
) -> None:
    env = dict(os.environ)
    for name in ("temporal", "worker", "api"):
        supervisor.start(name, SLEEPER, env)
    supervisor.begin_supervising()
    others = {name: supervisor.child(name).pid for name in ("temporal", "api")}

    pids = [supervisor.child("worker").pid]
    for restart, delay in enumerate(["0.05", "0.1", "0.2", "0.2"], start=1):
        killed = kill_and_reap(supervisor, "worker")
        await_condition(
            lambda: supervisor.child("worker").running(), "worker restart", poll=supervisor.poll
        )
        new_pid = supervisor.child("worker").pid
        pids.append(new_pid)
        assert said[-2:] == [
            f"worker exited with code -9 (SIGKILL); restarting in {delay} s "
            f"(restart {restart}); log: {supervisor.log_shown(supervisor.child('worker'))}",
            f"worker is back (pid {new_pid})",
        ]
        assert new_pid != killed
        assert pid_in_file(supervisor, "worker") == new_pid

    assert len(set(pids)) == len(pids)
    assert said[0].endswith("log: " + str(supervisor.child("worker").log_path))
    assert {name: supervisor.child(name).pid for name in others} == others
    assert all(supervisor.child(name).running() for name in others)
    assert {name: pid_in_file(supervisor, name) for name in others} == others


def test_the_backoff_starts_over_once_a_child_stayed_up(tmp_path: Path, said: list[str]) -> None:
    skipped = [0.0]  # seconds the supervisor's clock is ahead of real time
    supervisor = Supervisor(
        tmp_path / "data", backoff=QUICK, say=said.append, now=lambda: time.monotonic() + skipped[0]
    )
    try:
        supervisor.start("worker", SLEEPER, dict(os.environ))
        supervisor.begin_supervising()
        for _ in range(2):
            kill_and_reap(supervisor, "worker")
            await_condition(
                lambda: supervisor.child("worker").running(), "restart", poll=supervisor.poll
            )
        assert "restarting in 0.1 s (restart 2)" in said[-2]
        skipped[0] += QUICK.stable_after_seconds  # the worker has now been up for a minute
        kill_and_reap(supervisor, "worker")
        await_condition(
            lambda: supervisor.child("worker").running(), "restart", poll=supervisor.poll
        )
        assert "restarting in 0.05 s (restart 3)" in said[-2]
    finally:
        supervisor.stop()


def test_the_pid_file_is_gone_while_a_child_waits_for_its_restart(
    tmp_path: Path, said: list[str]
) -> None:
    supervisor = Supervisor(
        tmp_path / "data",
        backoff=Backoff(initial_seconds=3600, cap_seconds=3600),  # restart pending throughout
        say=said.append,
    )
    try:
        supervisor.start("temporal", SLEEPER, dict(os.environ))
        supervisor.begin_supervising()
        pid = supervisor.child("temporal").pid
        assert pid_in_file(supervisor, "temporal") == pid
        kill_and_reap(supervisor, "temporal")
        supervisor.poll()
        assert said == [
            "temporal exited with code -9 (SIGKILL); restarting in 3600 s (restart 1); "
            f"log: {supervisor.log_shown(supervisor.child('temporal'))}"
        ]
        assert pid_in_file(supervisor, "temporal") is None
    finally:
        supervisor.stop()


def test_stop_ends_children_in_reverse_order_and_removes_pid_files(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    stops = tmp_path / "stops.txt"
    names = ["temporal", "mollie-emulator", "cleeng-emulator", "worker", "api"]
    for name in names:
        ready = tmp_path / f"{name}.ready"
        command = [sys.executable, "-c", POLITE, name, str(stops), str(ready)]
        supervisor.start(name, command, dict(os.environ))
        await_condition(ready.exists, f"{name} ready")
    supervisor.begin_supervising()
    processes = [supervisor.child(name).process for name in names]
    assert sorted(p.name for p in supervisor.pid_dir.glob("*.pid")) == sorted(
        f"{name}.pid" for name in names
    )

    supervisor.stop()

    assert stops.read_text().split() == list(reversed(names))
    assert all(p is not None and p.returncode == 0 for p in processes)
    assert list(supervisor.pid_dir.glob("*.pid")) == []


def test_no_restart_once_stopping(supervisor: Supervisor, said: list[str]) -> None:
    supervisor.start("worker", SLEEPER, dict(os.environ))
    supervisor.begin_supervising()
    supervisor.request_stop()
    kill_and_reap(supervisor, "worker")
    supervisor.poll()
    assert said == []
    assert not supervisor.child("worker").running()


def test_a_child_that_exits_during_start_up_fails_the_start_with_its_log(
    supervisor: Supervisor,
) -> None:
    child = supervisor.start("api", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    assert child.process is not None
    child.process.wait(timeout=30)
    with pytest.raises(
        StartupFailed, match=r"api exited with code 3 during start-up; see .*api\.log"
    ):
        supervisor.check_alive()


# ------------------------------------------------------------------------- the real stack


class Console:
    """The launcher's output, line by line, read in the background."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                self.lines.put(line)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line with {text!r} in:\n{''.join(self.seen)}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line


@pytest.mark.long_running(seconds=15)
def test_the_launcher_survives_a_sigkill_of_the_worker_and_of_an_emulator(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / ".data"
    launcher, ports = start_launcher(data_dir, cwd=tmp_path)
    console = Console(launcher)
    run = data_dir / "run"
    try:
        console.wait_for("Ctrl-C stops everything")
        pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert set(pids) == {
            "temporal",
            "codec-server",
            "mollie-emulator",
            "cleeng-emulator",
            "worker",
            "api",
        }
        # The Web UI decrypts through the codec server, with the data dir's private key ring.
        ui = f"http://127.0.0.1:{ports['temporal-ui']}"
        codec_url = f"http://127.0.0.1:{ports['codec']}"
        assert httpx.get(f"{ui}/api/v1/settings").json()["Codec"]["Endpoint"] == codec_url
        assert httpx.get(f"{codec_url}/health").status_code == 200
        assert stat.S_IMODE((data_dir / DEV_KEY_FILE).stat().st_mode) == 0o600

        mollie = f"http://127.0.0.1:{ports['mollie']}"
        key = {"Authorization": "Bearer test_emulator0000000000000000000000"}
        customer = httpx.post(f"{mollie}/v2/customers", json={"name": "Ada"}, headers=key).json()
        state_file = data_dir / "emulators" / "mollie-emulator.state"
        await_condition(
            lambda: state_file.exists() and customer["id"].encode() in state_file.read_bytes(),
            "the Mollie emulator's periodic save",
        )

        os.kill(pids["worker"], signal.SIGKILL)
        exited = console.wait_for("worker exited")
        assert exited.startswith("worker exited with code -9 (SIGKILL); restarting in 1 s")
        back = console.wait_for("worker is back")
        new_worker = int(back.split("pid ")[1].rstrip(")\n"))
        assert new_worker != pids["worker"]
        assert int((run / "worker.pid").read_text()) == new_worker

        os.kill(pids["mollie-emulator"], signal.SIGKILL)
        console.wait_for("mollie-emulator is back")

        def customer_served() -> bool:
            try:
                got = httpx.get(f"{mollie}/v2/customers/{customer['id']}", headers=key)
            except httpx.HTTPError:
                return False
            return got.status_code == 200

        await_condition(customer_served, "the restarted Mollie emulator serving the customer")
        for name in ("temporal", "cleeng-emulator", "api"):
            assert int((run / f"{name}.pid").read_text()) == pids[name]
            os.kill(pids[name], 0)  # still running
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/health").status_code == 200

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=60) == 0
        assert list(run.glob("*.pid")) == []
    finally:
        stop_if_running(launcher)


async def poller_pids(temporal_address: str, task_queue: str, expected: set[int]) -> set[int]:
    """The pids (from each poller's `pid@host` identity) polling both the workflow and the
    activity task queue, once they are the `expected` ones (or after 60 s: what they are)."""
    client = await Client.connect(temporal_address)
    deadline = time.monotonic() + 60
    while True:
        pids_by_type = []
        for queue_type in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            described = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=queue_type,
                )
            )
            pids_by_type.append({int(p.identity.split("@")[0]) for p in described.pollers})
        if all(pids == expected for pids in pids_by_type) or time.monotonic() > deadline:
            return pids_by_type[0] & pids_by_type[1]
        await asyncio.sleep(0.2)


async def schedule_interval(temporal_address: str) -> timedelta | None:
    client = await Client.connect(temporal_address)
    described = await client.get_schedule_handle(RECONCILIATION_SCHEDULE_ID).describe()
    if described.schedule.state.paused:
        return None
    [interval] = described.schedule.spec.intervals
    return interval.every


@pytest.mark.long_running(seconds=35)
def test_the_launcher_runs_as_many_workers_as_asked_on_one_task_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_PROCESSES", "2")
    data_dir = tmp_path / ".data"
    launcher, ports = start_launcher(data_dir, cwd=tmp_path)
    console = Console(launcher)
    run = data_dir / "run"
    try:
        console.wait_for("Ctrl-C stops everything")
        assert any("Workers             2 processes" in line for line in console.seen)
        pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert {"worker", "worker-2"} <= set(pids)
        assert "worker-3" not in pids
        workers = {pids["worker"], pids["worker-2"]}
        assert len(workers) == 2

        # Both poll the connector's task queue, for workflow and for activity tasks.
        temporal = f"127.0.0.1:{ports['temporal']}"
        assert asyncio.run(poller_pids(temporal, "cleeng-mollie", workers)) == workers
        # The reconciliation schedule was created at start, from the settings.
        assert asyncio.run(schedule_interval(temporal)) == timedelta(minutes=60)

        # And the connector still works: a purchase is paid and captured.
        demo = subprocess.run(
            [
                sys.executable, "scripts/demo_purchase.py",
                "--api", f"http://127.0.0.1:{ports['api']}",
                "--cleeng", f"http://127.0.0.1:{ports['cleeng']}",
            ],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert '"status": "captured"' in demo.stdout

        # The operator CLI run beside the stack reads its encrypted histories with the
        # stack's own key (nothing configured), and reconciliation finds nothing to repair.
        reconciled = subprocess.run(
            [sys.executable, "-m", "connector_ops", "reconcile", "now", "--json"],
            cwd=tmp_path, env={**clean_env(), "TEMPORAL_ADDRESS": temporal},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
        report = json.loads(reconciled.stdout)
        assert report["payments_checked"] >= 1
        assert report["findings"] == []

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=60) == 0
        assert list(run.glob("*.pid")) == []
    finally:
        stop_if_running(launcher)


def test_a_start_on_a_busy_port_says_which_port_before_starting_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / ".data"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        console = refused_start(data_dir, cwd=tmp_path, ports_given={"temporal": port})
    assert f"port {port} is in use (--temporal-port)" in console
    assert "Traceback" not in console
    # Nothing was started: no child's log, no pid file, no stack file.
    assert not (data_dir / "logs").exists()
    assert list((data_dir / "run").glob("*.pid")) == []
    assert not (data_dir / STACK_FILE).exists()


ROOT = Path(__file__).resolve().parent.parent


def demo_purchase(data_dir: Path) -> subprocess.Popen[str]:
    """`scripts/demo_purchase.py --data-dir DIR`, run from the checkout as the README says."""
    return subprocess.Popen(
        [sys.executable, "scripts/demo_purchase.py", "--data-dir", str(data_dir)],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.long_running(seconds=15)
def test_two_stacks_on_their_own_data_dirs_each_driven_through_its_stack_file(
    tmp_path: Path,
) -> None:
    """Two `scripts/run` stacks side by side, each on its own data dir and ports: the demo and
    the operator CLI find each through `<data-dir>/stack.env` alone (no URL, no address, no
    key given), and a second start on a data dir in use is refused, naming its holder."""
    dirs = [tmp_path / "a" / ".data", tmp_path / "b" / ".data"]
    stacks = [start_launcher(data_dir, cwd=tmp_path) for data_dir in dirs]
    try:
        consoles = [Console(launcher) for launcher, _ in stacks]
        for console in consoles:
            console.wait_for("Ctrl-C stops everything")
        for data_dir, (_, ports) in zip(dirs, stacks, strict=True):
            stack = read_stack_file(data_dir)
            assert stack is not None
            assert stack.values["TEMPORAL_ADDRESS"] == f"127.0.0.1:{ports['temporal']}"
            assert stack.values["API_URL"] == f"http://127.0.0.1:{ports['api']}"
            assert stack.values["TEMPORAL_UI_URL"] == f"http://127.0.0.1:{ports['temporal-ui']}"
            assert stack.values["TEMPORAL_CODEC_ENDPOINT"] == f"http://127.0.0.1:{ports['codec']}"
            # No secret in it: the key ring stays in its own file.
            key_ring = (data_dir / DEV_KEY_FILE).read_text().strip()
            assert key_ring.split(":", 1)[1] not in stack.path.read_text()

        # The demo, run from the checkout, told only which data dir.
        demos = [demo_purchase(data_dir) for data_dir in dirs]
        outputs = [demo.communicate(timeout=120)[0] for demo in demos]
        for demo, output, (_, ports), data_dir in zip(demos, outputs, stacks, dirs, strict=True):
            assert demo.returncode == 0, output
            assert '"status": "captured"' in output
            ui = f"http://127.0.0.1:{ports['temporal-ui']}"
            assert f"Trace it in the Temporal Web UI: {ui} (workflow id purchase:" in output
            order_id = output.split("(workflow id purchase:")[1].split(")")[0]
            payment_id = output.split('"molliePaymentId": "')[1].split('"')[0]

            # The operator CLI, run elsewhere, with nothing configured but --data-dir: the
            # stack's address and its key ring (the stack encrypts its histories).
            shown = subprocess.run(
                [sys.executable, "-m", "connector_ops", "--data-dir", str(data_dir),
                 "purchase", order_id],
                cwd=tmp_path, env={**clean_env(), "PYTHONPATH": str(ROOT)},
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            assert "workflow COMPLETED" in shown.stdout
            assert f"Mollie    {payment_id} paid 9.99 EUR" in shown.stdout

        # A second launcher on stack a's data dir (its own free ports) is refused, and leaves
        # stack a as it was.
        first, _ = stacks[0]
        pids = {p.stem: p.read_text() for p in (dirs[0] / "run").glob("*.pid")}
        refused = refused_start(dirs[0], cwd=tmp_path)
        assert f"is in use by another launcher (pid {first.pid})" in refused
        assert {p.stem: p.read_text() for p in (dirs[0] / "run").glob("*.pid")} == pids
        assert read_stack_file(dirs[0]) is not None
        api = f"http://127.0.0.1:{stacks[0][1]['api']}"
        assert httpx.get(f"{api}/health").status_code == 200

        for launcher, _ in stacks:
            launcher.send_signal(signal.SIGINT)
        for launcher, _ in stacks:
            assert launcher.wait(timeout=60) == 0
        # Stopped: the stack file goes with the stack.
        assert [read_stack_file(data_dir) for data_dir in dirs] == [None, None]
    finally:
        for launcher, _ in stacks:
            stop_if_running(launcher)
