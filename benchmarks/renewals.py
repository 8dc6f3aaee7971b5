"""Renewals throughput and latency: the connector under Cleeng's renewal webhooks, side by side
with bare-Temporal ceilings on the same dev server.

    .venv/bin/python benchmarks/renewals.py --sizes 100,1000 --rates 10,25,50 \\
        --paced-seconds 30 --modes capture,authorise \\
        --variant baseline:RENEWAL_COMPACT_HISTORY=false,MOLLIE_THREADS=0 \\
        --variant tuned: --variant two-workers:WORKER_PROCESSES=2 \\
        --out benchmarks/results/latest

    # against a stack started with scripts/run (one variant only):
    .venv/bin/python benchmarks/renewals.py --use-running --api http://127.0.0.1:8000 \\
        --cleeng http://127.0.0.1:8102 --mollie http://127.0.0.1:8101 \\
        --temporal 127.0.0.1:7233 --data-dir .data --sizes 100 --rates 10

Each variant (`name:ENV=value,ENV=value`; default just `tuned:`) gets its own stack:
`python -m launcher` on free loopback ports with a fresh data dir and the variant's env on top
(the launcher hands its env to every child), stopped before the next variant starts. The
stack's webhook rate limit (WEBHOOK_RATE_LIMIT_PER_SECOND / _BURST) is raised so the shim's
per-source limit does not throttle the one source the benchmark is, and the Cleeng emulator's
billing engine is off (CLEENG_EMULATOR_BILLING=off): the benchmark sends the webhooks.

For every mode (`capture`: one capture webhook per subscriber; `authorise`: every
authorisation webhook, a wait until all N cycles are authorised, then every capture webhook)
and every load (burst: N webhooks with `--concurrency` in flight; paced: R webhooks/s open loop
for `--paced-seconds`), on fresh seeded subscribers, it reports webhook ack p50/p95/p99,
renewals/s from the first webhook sent to the last workflow closed (close times from Temporal
visibility), time to drain, history events and workflow tasks per renewal (from up to 200
fetched histories), CPU seconds and peak RSS per process (pids from `<data-dir>/run/*.pid`),
CPU seconds per renewal, and correctness against both emulators' ledgers. Then, on the first
variant's dev server, the same loads start bare workflows (benchmarks/bare_temporal.py, its
worker a process of its own) for the ceiling and the connector/bare ratio.

Each stack first runs `--warmup` capture renewals (and bare workflows) that are not reported:
a fresh stack's first renewals pay for imports, caches and SQLite warming up.

Writes `<out>.md` (also printed), `<out>.json` and `<out>.png`. `--deadline-minutes` bounds the
run: a load that does not drain in time is reported as not drained, later ones as skipped.
Exit code 0 when every connector load drained with 0 errors, 0 duplicates and agreeing ledgers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bare_temporal import SHAPES, BareShape, notify_payment, start_bare
from benchmarks.chaos import free_ports
from benchmarks.renewal_load import (
    TOPIC_AUTHORISATION,
    TOPIC_CAPTURE,
    Endpoints,
    SendLog,
    Subscriber,
    UsageMeter,
    authorised_count,
    burst,
    check_ledgers,
    fetch_cleeng_ledger,
    fetch_ledgers,
    paced,
    post_webhook,
    read_pid_files,
    seed_offer,
    seed_subscribers,
    status_kb,
    temporal_db_mb,
    webhook_body,
)
from benchmarks.renewal_report import (
    BenchmarkReport,
    ProcessUsage,
    StageResult,
    WaitingCycles,
    bare_ratios,
    machine_info,
    render_markdown,
    summarize_latency,
    throughput,
    write_outputs,
)
from launcher import find_temporal

REPO = Path(__file__).resolve().parent.parent
# Every listener the launcher opens, the worker's SDK metrics included: each on a free port, so
# a stack already up on the defaults (scripts/run, another benchmark) never collides with it.
LAUNCHER_PORTS = ("api", "temporal", "temporal-ui", "temporal-http", "temporal-metrics",
                  "mollie", "cleeng", "codec", "worker-metrics")  # fmt: skip
# Settings a developer's shell may hold that must not reach the benchmark's sandbox stack.
CONNECTOR_ENV_PREFIXES = ("CLEENG_", "MOLLIE_", "TEMPORAL_", "CONNECTOR_", "API_", "FRONTEND_",
                          "MAX_", "WEBHOOK_", "RENEWAL_", "WORKER_")  # fmt: skip
# One source (the benchmark) sends every webhook: lift the shim's per-source token bucket.
BENCH_ENV = {
    # The benchmark sends the renewal webhooks itself. The emulator's billing engine would
    # only re-scan every seeded subscription each second (cost growing with N) to send none.
    "CLEENG_EMULATOR_BILLING": "off",
    "WEBHOOK_RATE_LIMIT_PER_SECOND": "1000000",
    "WEBHOOK_RATE_LIMIT_BURST": "1000000",
    "MOLLIE_RECURRING_MANUAL_CAPTURE": "true",
    # A scheduled reconciliation run reads every payment and owner of its window: it would
    # land in the middle of a load whenever the hour turns.
    "RECONCILIATION_INTERVAL_MINUTES": "0",
}
HISTORY_SAMPLE = 200
SUBSCRIBERS_DUE_IN = timedelta(days=20)  # well before the emulator's first dunning attempt
CONNECTOR_PROCESSES = ("temporal", "api", "bare-worker")


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]


@dataclass(frozen=True)
class LoadPlan:
    mode: str  # capture | authorise | a bare shape's name
    load: str  # burst | paced
    size: int  # N for burst, webhooks per second for paced

    def count(self, paced_seconds: float) -> int:
        return self.size if self.load == "burst" else max(1, round(self.size * paced_seconds))


@dataclass
class Stack:
    endpoints: Endpoints
    data_dir: Path
    launcher: subprocess.Popen[bytes] | None = None


@dataclass
class Context:
    """What every load of one variant needs."""

    args: argparse.Namespace
    variant: Variant
    stack: Stack
    http: httpx.AsyncClient
    client: Client
    deadline: float
    offer_id: str = ""
    notes: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------- arguments


def parse_variant(text: str) -> Variant:
    """`name:KEY=value,KEY=value` (`name:` for none) → Variant."""
    name, _, overrides = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"variant {text!r} has no name")
    env: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in overrides.split(","))):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(f"variant {text!r}: {pair!r} is not KEY=value")
        env[key.strip()] = value.strip()
    return Variant(name, env)


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def plan_loads(modes: Sequence[str], sizes: Sequence[int], rates: Sequence[int]) -> list[LoadPlan]:
    return [
        *(LoadPlan(mode, "burst", n) for mode in modes for n in sizes),
        *(LoadPlan(mode, "paced", r) for mode in modes for r in rates),
    ]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int_list, default=[100], help="burst sizes N")
    parser.add_argument("--rates", type=int_list, default=[10], help="paced webhooks/s")
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--modes", default="capture,authorise")
    parser.add_argument("--concurrency", type=int, default=50, help="burst webhooks in flight")
    parser.add_argument("--seed-concurrency", type=int, default=32)
    parser.add_argument("--variant", type=parse_variant, action="append", dest="variants")
    parser.add_argument("--skip-bare", action="store_true", help="no bare-Temporal loads")
    parser.add_argument(
        "--warmup", type=int, default=20, help="unreported renewals first on each stack (0: none)"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the stacks' data dirs (kept on failure)"
    )
    parser.add_argument("--deadline-minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest"))
    parser.add_argument("--use-running", action="store_true")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--cleeng", default="http://127.0.0.1:8102")
    parser.add_argument("--mollie", default="http://127.0.0.1:8101")
    parser.add_argument("--temporal", default="127.0.0.1:7233")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data"),
        help="with --use-running: the stack's data dir (pid files, temporal.db)",
    )
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - {"capture", "authorise"}
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    args.variants = args.variants or [Variant("tuned", {})]
    if args.use_running and len(args.variants) > 1:
        parser.error("--use-running measures the running stack: one variant only")
    return args


# -------------------------------------------------------------------------------- stacks


def stack_env(variant: Variant) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONNECTOR_ENV_PREFIXES)}
    return {**env, **BENCH_ENV, **variant.env}


async def start_stack(variant: Variant, data_dir: Path, deadline: float) -> Stack:
    ports = dict(zip(LAUNCHER_PORTS, free_ports(len(LAUNCHER_PORTS)), strict=True))
    flags = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    console = data_dir / "launcher.log"
    with console.open("ab") as output:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "launcher", "--data-dir", str(data_dir), *flags],
            cwd=REPO, env=stack_env(variant), stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    stack = Stack(
        Endpoints(
            api=f"http://127.0.0.1:{ports['api']}",
            cleeng=f"http://127.0.0.1:{ports['cleeng']}",
            mollie=f"http://127.0.0.1:{ports['mollie']}",
            temporal=f"127.0.0.1:{ports['temporal']}",
        ),
        data_dir,
        launcher,
    )
    while "connector is running" not in console.read_text(errors="replace"):
        if launcher.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            raise RuntimeError(f"the stack did not start; see {console}")
        await asyncio.sleep(0.5)
    return stack


def stop_stack(stack: Stack) -> None:
    launcher = stack.launcher
    if launcher is None or launcher.poll() is not None:
        return
    launcher.send_signal(signal.SIGINT)
    try:
        launcher.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()


def start_bare_worker(stack: Stack, task_queue: str) -> subprocess.Popen[bytes]:
    output_path = stack.data_dir / "bare-worker.log"
    with output_path.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bare_temporal",
             "--address", stack.endpoints.temporal, "--task-queue", task_queue],
            cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def bare_worker_ready(worker: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + 120
    while "bare worker polling" not in output.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the bare worker did not start; see {output}")
        await asyncio.sleep(0.3)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------ Temporal figures


def visibility_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def wait_closed(
    ctx: Context, query: str, expected: set[str]
) -> tuple[dict[str, WorkflowExecution], bool]:
    """The load's closed workflows by id, and whether all of them closed before the deadline.
    Counts first (cheap), lists only when the count says they may all be done."""
    closed_query = f'{query} AND ExecutionStatus != "Running"'
    interval = poll_interval(len(expected))
    while True:
        count = (await ctx.client.count_workflows(closed_query)).count
        if count >= len(expected) or ctx.left() <= 0:
            closed = {
                w.id: w async for w in ctx.client.list_workflows(closed_query) if w.id in expected
            }
            if len(closed) >= len(expected) or ctx.left() <= 0:
                return closed, len(closed) >= len(expected)
        await asyncio.sleep(interval)


def poll_interval(size: int) -> float:
    """Seconds between the driver's looks at a load of `size` renewals. Each look costs the
    stack in proportion to its size, so a big load is looked at less often; the figures do
    not depend on it (renewals/s comes from the close times Temporal recorded)."""
    return max(0.5, size / 2000)


async def history_figures(
    client: Client, workflow_ids: Sequence[str]
) -> tuple[float | None, float | None, int]:
    """Events and completed workflow tasks per workflow, over up to HISTORY_SAMPLE histories."""
    chosen = list(workflow_ids)
    if len(chosen) > HISTORY_SAMPLE:
        chosen = random.sample(chosen, HISTORY_SAMPLE)
    if not chosen:
        return None, None, 0
    gate = asyncio.Semaphore(10)

    async def one(workflow_id: str) -> tuple[int, int]:
        async with gate:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        tasks = sum(
            1
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        return len(history.events), tasks

    figures = await asyncio.gather(*(one(w) for w in chosen))
    events = sum(f[0] for f in figures) / len(figures)
    tasks = sum(f[1] for f in figures) / len(figures)
    return round(events, 1), round(tasks, 1), len(figures)


def fill_timing(
    stage: StageResult, closed: dict[str, WorkflowExecution], sends: Sequence[SendLog]
) -> None:
    completed = [w for w in closed.values() if w.status == WorkflowExecutionStatus.COMPLETED]
    stage.completed = len(completed)
    stage.failed_workflows = len(closed) - len(completed)
    firsts = [s.first_sent for s in sends if s.first_sent is not None]
    lasts = [s.last_sent for s in sends if s.last_sent is not None]
    close_times = [w.close_time.timestamp() for w in closed.values() if w.close_time]
    if not firsts or not lasts:
        return
    stage.load_seconds = round(max(lasts) - min(firsts), 2)
    rate, drain = throughput(
        stage.completed, min(firsts), max(lasts), max(close_times) if close_times else None
    )
    stage.renewals_per_second = None if rate is None else round(rate, 2)
    stage.drain_seconds = None if drain is None else round(drain, 2)


def fill_errors(stage: StageResult, sends: Sequence[SendLog]) -> None:
    latencies = [ms for s in sends for ms in s.latencies_ms]
    errors = [e for s in sends for e in s.errors]
    stage.sent = sum(s.count for s in sends)
    stage.ack = summarize_latency(latencies)
    stage.errors = len(errors)
    stage.error_samples = errors[:10]


def cost_per_renewal(
    processes: Sequence[ProcessUsage], renewals: int, *, connector_only: bool
) -> float | None:
    """CPU seconds per renewal over the stack's processes (never the driver), or only over
    Temporal, the worker(s) and the API (the bare worker for bare loads)."""
    if renewals == 0:
        return None
    counted = [
        p
        for p in processes
        if p.name != "driver"
        and (not connector_only or p.name in CONNECTOR_PROCESSES or p.name.startswith("worker"))
    ]
    return round(sum(p.cpu_seconds for p in counted) / renewals, 5)


def fill_cost(stage: StageResult) -> None:
    stage.cpu_seconds_per_renewal = cost_per_renewal(
        stage.processes, stage.completed, connector_only=False
    )
    stage.connector_cpu_seconds_per_renewal = cost_per_renewal(
        stage.processes, stage.completed, connector_only=True
    )


def processes_now(ctx: Context, bare_worker: subprocess.Popen[bytes] | None) -> dict[str, int]:
    pids = read_pid_files(ctx.stack.data_dir)
    if bare_worker is not None:
        pids["bare-worker"] = bare_worker.pid
    pids["driver"] = os.getpid()
    return pids


# ----------------------------------------------------------------------- connector loads


async def send_all(ctx: Context, plan: LoadPlan, bodies: list[bytes]) -> SendLog:
    sent = SendLog()
    url = f"{ctx.stack.endpoints.api}/webhooks/cleeng"

    async def send(body: bytes, scheduled: float | None) -> None:
        await post_webhook(ctx.http, url, body, sent, scheduled)

    if plan.load == "burst":
        await burst(bodies, ctx.args.concurrency, send)
    else:
        await paced(bodies, plan.size, send)
    return sent


async def wait_authorised(ctx: Context, subscribers: Sequence[Subscriber]) -> bool:
    wanted = {s.subscription_id for s in subscribers}
    # The ledger grows with the run: poll it less often for big loads. Only Cleeng's: building
    # Mollie's whole ledger too cost its emulator more than the renewals did at 10,000.
    interval = poll_interval(len(subscribers))
    while ctx.left() > 0:
        cleeng = await fetch_cleeng_ledger(ctx.http, ctx.stack.endpoints)
        if authorised_count(cleeng, wanted) >= len(wanted):
            return True
        await asyncio.sleep(interval)
    return False


async def run_connector_load(ctx: Context, plan: LoadPlan) -> StageResult:
    stage = StageResult(
        variant=ctx.variant.name,
        mode=plan.mode,
        load=plan.load,
        size=plan.size,
        expected=plan.count(ctx.args.paced_seconds),
    )
    log(f"{ctx.variant.name} {plan.mode} {plan.load} {plan.size}: seeding {stage.expected}")
    due = datetime.now(UTC).replace(microsecond=0) + SUBSCRIBERS_DUE_IN
    seeding = time.monotonic()
    subscribers = await seed_subscribers(
        ctx.http, ctx.stack.endpoints, ctx.offer_id, stage.expected, due,
        ctx.args.seed_concurrency,
    )  # fmt: skip
    random.shuffle(subscribers)
    log(f"  seeded {len(subscribers)} subscribers in {time.monotonic() - seeding:.1f} s")
    started = datetime.now(UTC)
    meter = UsageMeter(processes_now(ctx, None))
    meter.start()
    sends: list[SendLog] = []
    if plan.mode == "authorise":
        sends.append(
            await send_all(ctx, plan, [webhook_body(s, TOPIC_AUTHORISATION) for s in subscribers])
        )
        authorising = time.time()
        if await wait_authorised(ctx, subscribers):
            stage.waiting = waiting_figures(ctx, len(subscribers), authorising, sends[0])
        else:
            stage.notes.append("not all cycles were authorised before the deadline")
    log(f"{ctx.variant.name} {plan.mode} {plan.load} {plan.size}: sending captures")
    sends.append(await send_all(ctx, plan, [webhook_body(s, TOPIC_CAPTURE) for s in subscribers]))
    query = f'WorkflowType="RecurringBilling" AND StartTime >= "{visibility_time(started)}"'
    closed, stage.drained = await wait_closed(ctx, query, {s.workflow_id for s in subscribers})
    stage.processes = await meter.stop(processes_now(ctx, None))
    if not stage.drained:
        stage.notes.append(f"did not drain before the deadline ({len(closed)} closed)")
    fill_errors(stage, sends)
    fill_timing(stage, closed, sends)
    fill_cost(stage)
    events, tasks, sampled = await history_figures(ctx.client, sorted(closed))
    stage.history_events_per_renewal, stage.workflow_tasks_per_renewal = events, tasks
    stage.histories_sampled = sampled
    mollie, cleeng = await fetch_ledgers(ctx.http, ctx.stack.endpoints)
    stage.correctness = check_ledgers(subscribers, mollie, cleeng)
    log(
        f"{ctx.variant.name} {plan.mode} {plan.load} {plan.size}: "
        f"{stage.completed}/{stage.expected} renewals, {stage.renewals_per_second} /s, "
        f"ack p99 {stage.ack.p99_ms or 0:.0f} ms, {stage.errors} errors"
    )
    return stage


def waiting_figures(
    ctx: Context, cycles: int, authorising_since: float, authorisations: SendLog
) -> WaitingCycles:
    """Worker RSS and dev-server disk with all N cycles authorised and waiting."""
    pids = read_pid_files(ctx.stack.data_dir)
    workers = {n: p for n, p in pids.items() if n == "worker" or n.startswith("worker-")}
    rss = {n: round((status_kb(p, "VmRSS") or 0) / 1024, 1) for n, p in workers.items()}
    first = authorisations.first_sent or authorising_since
    return WaitingCycles(
        cycles=cycles,
        seconds_to_authorise=round(time.time() - first, 2),
        worker_rss_mb=rss,
        temporal_db_mb=round(temporal_db_mb(ctx.stack.data_dir), 1),
    )


# ---------------------------------------------------------------------------- bare loads


async def run_bare_load(
    ctx: Context, shape: BareShape, plan: LoadPlan, worker: subprocess.Popen[bytes], queue: str
) -> StageResult:
    stage = StageResult(
        variant=ctx.variant.name,
        mode=shape.name,
        load=plan.load,
        size=plan.size,
        expected=plan.count(ctx.args.paced_seconds),
    )
    tag = f"bench-{uuid.uuid4().hex[:10]}"
    ids = [f"{tag}-{i}" for i in range(stage.expected)]
    meter = UsageMeter(processes_now(ctx, worker))
    meter.start()
    sent = SendLog()
    notices: list[asyncio.Task[bool]] = []

    async def start(workflow_id: str, scheduled: float | None) -> None:
        moment = time.time()
        sent.sent_at(moment)
        try:
            await start_bare(
                ctx.client, shape, workflow_id=workflow_id, task_queue=queue, load_tag=tag
            )
        except Exception as error:  # every refusal (RPC, timeout) is reported as an error
            sent.errors.append(f"{type(error).__name__}: {error}")
            return
        sent.latencies_ms.append((time.time() - (scheduled or moment)) * 1000)
        if shape.workflow_type == "BareRenewal":
            notices.append(asyncio.create_task(notify_payment(ctx.client, workflow_id)))

    if plan.load == "burst":
        await burst(ids, ctx.args.concurrency, start)
    else:
        await paced(ids, plan.size, start)
    closed, stage.drained = await wait_closed(ctx, f'CleengOrderId="{tag}"', set(ids))
    delivered = await asyncio.gather(*notices)
    stage.processes = await meter.stop(processes_now(ctx, worker))
    if notices:
        stage.notes.append(
            f"{sum(delivered)}/{len(notices)} payment_changed signals landed before the close"
        )
    if not stage.drained:
        stage.notes.append(f"did not drain before the deadline ({len(closed)} closed)")
    fill_errors(stage, [sent])
    fill_timing(stage, closed, [sent])
    fill_cost(stage)
    events, tasks, sampled = await history_figures(ctx.client, sorted(closed))
    stage.history_events_per_renewal, stage.workflow_tasks_per_renewal = events, tasks
    stage.histories_sampled = sampled
    log(f"{shape.name} {plan.load} {plan.size}: {stage.renewals_per_second} /s")
    return stage


async def run_bare_loads(
    ctx: Context, loads: Sequence[LoadPlan], results: list[StageResult]
) -> None:
    queue = f"bare-{uuid.uuid4().hex[:8]}"
    worker = start_bare_worker(ctx.stack, queue)
    try:
        await bare_worker_ready(worker, ctx.stack.data_dir / "bare-worker.log")
        if ctx.args.warmup:
            warmup = LoadPlan(SHAPES[0].name, "burst", ctx.args.warmup)
            await run_bare_load(ctx, SHAPES[0], warmup, worker, queue)
        for shape in SHAPES:
            for plan in loads:
                if ctx.left() <= 0:
                    ctx.notes.append(f"{shape.name} {plan.load} {plan.size} skipped: deadline")
                    continue
                results.append(await run_bare_load(ctx, shape, plan, worker, queue))
    finally:
        stop_process(worker)


# ------------------------------------------------------------------------------- variants


async def run_variant(
    args: argparse.Namespace,
    variant: Variant,
    deadline: float,
    with_bare: bool,
    temp: Path,
    report: BenchmarkReport,
) -> None:
    """Every load of one variant on its own stack; rows and notes go into `report` as they
    finish, so a failure later keeps what was measured."""
    if args.use_running:
        stack = Stack(
            Endpoints(api=args.api, cleeng=args.cleeng, mollie=args.mollie, temporal=args.temporal),
            args.data_dir.resolve(),
        )
    else:
        data_dir = temp / variant.name
        data_dir.mkdir(parents=True)
        log(f"{variant.name}: starting the stack (env {variant.env or 'unchanged'})")
        stack = await start_stack(variant, data_dir, deadline)
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends them, so a request
    # never races the server closing the connection it reuses (a spurious ReadError).
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=2.0)
    try:
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            client = await Client.connect(stack.endpoints.temporal)
            ctx = Context(args, variant, stack, http, client, deadline, notes=report.notes)
            ctx.offer_id = await seed_offer(http, stack.endpoints)
            if args.warmup:
                # A fresh stack's first renewals pay for imports, caches and SQLite warming up.
                log(f"{variant.name}: warm-up, {args.warmup} renewals not reported")
                await run_connector_load(ctx, LoadPlan("capture", "burst", args.warmup))
            for plan in plan_loads(args.modes, args.sizes, args.rates):
                if ctx.left() <= 0:
                    ctx.notes.append(
                        f"{variant.name} {plan.mode} {plan.load} {plan.size} skipped: deadline"
                    )
                    continue
                report.stages.append(await run_connector_load(ctx, plan))
            if with_bare:
                bare_plans = plan_loads(["bare"], args.sizes, args.rates)
                await run_bare_loads(ctx, bare_plans, report.stages)
    finally:
        if stack.launcher is not None:
            log(f"{variant.name}: stopping the stack")
            stop_stack(stack)


def all_correct(stages: Sequence[StageResult]) -> bool:
    for stage in stages:
        if stage.is_bare:
            continue
        check = stage.correctness
        if not stage.drained or stage.errors or stage.failed_workflows or check is None:
            return False
        if check.duplicates or check.missing or not check.ledgers_agree or not check.all_recorded:
            return False
    return True


async def run(args: argparse.Namespace, command: str) -> int:
    deadline = time.monotonic() + args.deadline_minutes * 60
    report = BenchmarkReport(
        machine=machine_info(find_temporal()),
        command=command,
        settings={
            "sizes": args.sizes,
            "rates": args.rates,
            "paced_seconds": args.paced_seconds,
            "modes": args.modes,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "variants": [{"name": v.name, "env": v.env} for v in args.variants],
            "stack_env": {} if args.use_running else BENCH_ENV,
            "use_running": args.use_running,
        },
    )
    if args.use_running:
        report.notes.append(
            "running stack: its webhook limit is what it was started with (default 100/s and "
            "a burst of 1000 per source); start it with WEBHOOK_RATE_LIMIT_PER_SECOND and "
            "WEBHOOK_RATE_LIMIT_BURST raised, or faster loads are answered 429"
        )
    else:
        report.notes.append(
            "stacks run with "
            + ", ".join(f"{k}={v}" for k, v in BENCH_ENV.items())
            + " (the shim's per-source webhook limit lifted, the benchmark being one source; "
            "the Cleeng emulator's own billing engine off, the benchmark sending the webhooks)"
        )
    temp = Path(tempfile.mkdtemp(prefix="renewals-bench-"))
    failed = False
    try:
        for index, variant in enumerate(args.variants):
            if time.monotonic() > deadline:
                report.notes.append(f"variant {variant.name} skipped: deadline")
                continue
            try:
                await run_variant(
                    args, variant, deadline, index == 0 and not args.skip_bare, temp, report
                )
            except (RuntimeError, httpx.HTTPError, RPCError) as error:
                # Keep what was measured, say what broke, and go on with the next variant.
                failed = True
                report.notes.append(f"variant {variant.name} stopped: {error!r}")
                log(f"{variant.name} stopped: {error!r}")
    finally:
        bare_ratios(report.stages)
        written = write_outputs(report, args.out)
        print(render_markdown(report), flush=True)
        log("wrote " + ", ".join(str(p) for p in written))
        if args.keep_data or failed:
            log(f"stack data dirs (logs, temporal.db) kept in {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    return 0 if report.stages and not failed and all_correct(report.stages) else 1


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    command = shlex.join([".venv/bin/python", "benchmarks/renewals.py", *raw])
    return asyncio.run(run(args, command))


if __name__ == "__main__":
    sys.exit(main())
