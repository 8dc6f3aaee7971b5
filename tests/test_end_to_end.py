"""The connector as a user runs it: the launcher starts Temporal, both emulators, the worker and
the API as separate processes; a purchase goes through them over real HTTP; Ctrl-C stops all."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from settings import EMULATOR_FRONTEND_API_KEY
from tests.support.servers import start_launcher, stop_if_running

ROOT = Path(__file__).resolve().parent.parent
FINAL = {"captured", "rejected", "failed", "refunded_cleeng_refused"}


@dataclass(frozen=True)
class RunningStack:
    process: subprocess.Popen[str]
    api: str
    cleeng: str
    mollie: str
    ui: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    workdir = tmp_path_factory.mktemp("run")
    process, ports = start_launcher(workdir / ".data", cwd=workdir)
    banner: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        banner.append(line)
        if "Ctrl-C stops everything" in line:
            break
    text = "".join(banner)
    assert process.poll() is None, f"launcher exited early:\n{text}"
    api = f"http://127.0.0.1:{ports['api']}"
    assert f"{api}/docs" in text
    assert f"http://127.0.0.1:{ports['temporal-ui']}" in text
    running = RunningStack(
        process=process,
        api=api,
        cleeng=f"http://127.0.0.1:{ports['cleeng']}",
        mollie=f"http://127.0.0.1:{ports['mollie']}",
        ui=f"http://127.0.0.1:{ports['temporal-ui']}",
    )
    try:
        yield running
    finally:
        stop_if_running(process)


def test_a_purchase_goes_through_the_real_processes(stack: RunningStack) -> None:
    with httpx.Client(timeout=30) as http:
        assert http.get(f"{stack.api}/health").status_code == 200
        assert http.get(f"{stack.api}/docs").status_code == 200
        assert http.get(stack.ui).status_code == 200

        seeded = http.post(f"{stack.cleeng}/_emulator/seed/purchase", json={}).json()
        order_id = str(seeded["orderId"])
        # Sandbox mode: the documented sandbox key, and shoppers sent back to the connector's
        # own origin (the default allow-list there).
        acting = {
            "Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}",
            "X-Cleeng-Customer-Id": str(seeded["customerId"]),
        }
        assert http.post(f"{stack.api}/purchases", json={}).status_code == 401
        started = http.post(
            f"{stack.api}/purchases",
            json={"orderId": order_id, "redirectUrl": f"{stack.api}/purchases/{order_id}"},
            headers=acting,
        )
        assert started.status_code == 201, started.text
        checkout_url = started.json()["checkoutUrl"]
        assert checkout_url.startswith(stack.mollie)

        page = http.get(checkout_url)
        assert 'value="paid"' in page.text
        pressed = http.post(checkout_url, data={"status": "paid"}, follow_redirects=False)
        assert pressed.status_code == 303

        # The Mollie emulator's webhook reaches the API process, which signals the workflow
        # running in the worker process; wait for the recorded outcome.
        deadline = time.monotonic() + 60
        state = started.json()
        while state["status"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            state = http.get(f"{stack.api}/purchases/{order_id}", headers=acting).json()
        assert state["status"] == "captured"
        recorded = http.get(
            f"{stack.cleeng}/_emulator/payments", params={"orderId": order_id}
        ).json()
        items = recorded["items"] if isinstance(recorded, dict) else recorded
        assert [(p["status"], p["externalPaymentId"]) for p in items] == [
            ("captured", state["molliePaymentId"])
        ]


def test_ctrl_c_stops_every_process(stack: RunningStack) -> None:
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=60) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.api}/health", timeout=2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.cleeng}/", timeout=2)
