"""The renewals benchmark's figures: result rows, percentiles, Markdown, JSON and a PNG.

Everything here is pure (no stack, no network) except the machine description and the file
writers, so the table and the statistics can be unit-tested.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONNECTOR_MODES = ("capture", "authorise")
EMPTY = "-"


@dataclass(frozen=True)
class LatencySummary:
    """Client-side acknowledgement times of one load, in milliseconds."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class ProcessUsage:
    """One process over one load: CPU it used and its highest resident memory."""

    name: str
    pid: int
    cpu_seconds: float
    peak_rss_mb: float
    restarted: bool = False


@dataclass
class Correctness:
    """The emulators' ledgers against what the load asked for (connector loads only)."""

    subscribers: int = 0
    mollie_paid_exactly_once: int = 0
    cleeng_captured_exactly_once: int = 0
    missing: int = 0
    duplicates: int = 0
    cleeng_duplicate_records: int = 0
    ledgers_agree: bool = False
    evidence: list[str] = field(default_factory=list)

    @property
    def all_recorded(self) -> bool:
        return self.cleeng_captured_exactly_once == self.subscribers


@dataclass
class WaitingCycles:
    """Authorise mode, once all N cycles are `authorised` and waiting for their capture."""

    cycles: int
    seconds_to_authorise: float
    worker_rss_mb: dict[str, float]
    temporal_db_mb: float


@dataclass
class StageResult:
    """One row: a variant, a mode (or bare shape), a load kind and its size."""

    variant: str
    mode: str
    load: str  # "burst" (size = N) or "paced" (size = offered webhooks per second)
    size: int
    expected: int
    sent: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    ack: LatencySummary = field(default_factory=lambda: LatencySummary(0, None, None, None))
    completed: int = 0
    failed_workflows: int = 0
    drained: bool = False
    renewals_per_second: float | None = None
    drain_seconds: float | None = None
    load_seconds: float | None = None
    history_events_per_renewal: float | None = None
    workflow_tasks_per_renewal: float | None = None
    histories_sampled: int = 0
    processes: list[ProcessUsage] = field(default_factory=list)
    cpu_seconds_per_renewal: float | None = None
    """Every stack process (emulators included) over the load, per renewal."""
    connector_cpu_seconds_per_renewal: float | None = None
    """Temporal, the worker(s) and the API only (bare rows: Temporal and the bare worker)."""
    waiting: WaitingCycles | None = None
    correctness: Correctness | None = None
    ratio_to_bare: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def is_bare(self) -> bool:
        return self.mode not in CONNECTOR_MODES


@dataclass
class BenchmarkReport:
    machine: dict[str, Any]
    command: str
    settings: dict[str, Any]
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_latency(milliseconds: Sequence[float]) -> LatencySummary:
    return LatencySummary(
        count=len(milliseconds),
        p50_ms=percentile(milliseconds, 50),
        p95_ms=percentile(milliseconds, 95),
        p99_ms=percentile(milliseconds, 99),
    )


def throughput(
    renewals: int, first_sent: float, last_sent: float, last_closed: float | None
) -> tuple[float | None, float | None]:
    """Renewals per second from the first webhook sent to the last workflow closed, and the
    time to drain (last close - last webhook sent). Times in seconds on one clock."""
    if last_closed is None or renewals == 0:
        return None, None
    elapsed = last_closed - first_sent
    rate = renewals / elapsed if elapsed > 0 else None
    return rate, max(0.0, last_closed - last_sent)


def bare_ratios(stages: list[StageResult]) -> None:
    """Fill each connector row's connector/bare throughput ratio, per bare shape, against
    the bare row of the same load and size (any variant: bare runs on one stack)."""
    bare = {
        (s.mode, s.load, s.size): s.renewals_per_second
        for s in stages
        if s.is_bare and s.renewals_per_second
    }
    for stage in stages:
        if stage.is_bare or not stage.renewals_per_second:
            continue
        for (shape, load, size), rate in bare.items():
            if load == stage.load and size == stage.size and rate:
                stage.ratio_to_bare[shape] = stage.renewals_per_second / rate


# ------------------------------------------------------------------------------- rendering


def _number(value: float | None, digits: int = 1) -> str:
    return EMPTY if value is None else f"{value:.{digits}f}"


def _correct(stage: StageResult) -> str:
    check = stage.correctness
    if check is None:
        return "n/a"
    ok = (
        check.ledgers_agree
        and check.all_recorded
        and check.duplicates == 0
        and check.missing == 0
        and stage.errors == 0
    )
    return "yes" if ok else f"NO ({check.missing} missing, {check.duplicates} dup)"


def _size(stage: StageResult) -> str:
    return f"N={stage.size}" if stage.load == "burst" else f"{stage.size}/s"


def _ratios(stage: StageResult) -> str:
    if not stage.ratio_to_bare:
        return EMPTY
    return " ".join(
        f"{shape.removeprefix('bare-')}:{r:.2f}" for shape, r in stage.ratio_to_bare.items()
    )


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_results_table(stages: Sequence[StageResult]) -> str:
    header = (
        "variant",
        "mode",
        "load",
        "size",
        "sent",
        "errors",
        "ack p50 ms",
        "ack p95 ms",
        "ack p99 ms",
        "renewals/s",
        "drain s",
        "events/renewal",
        "WFT/renewal",
        "CPU s/renewal (stack / connector)",
        "÷ bare",
        "correct",
    )
    lines = [_row(header), _row(["---"] * len(header))]
    for s in stages:
        rate = _number(s.renewals_per_second)
        if not s.drained:
            rate = f"{rate} (not drained: {s.completed}/{s.expected})"
        lines.append(
            _row(
                (
                    s.variant,
                    s.mode,
                    s.load,
                    _size(s),
                    str(s.sent),
                    str(s.errors + s.failed_workflows),
                    _number(s.ack.p50_ms),
                    _number(s.ack.p95_ms),
                    _number(s.ack.p99_ms),
                    rate,
                    _number(s.drain_seconds),
                    _number(s.history_events_per_renewal),
                    _number(s.workflow_tasks_per_renewal),
                    f"{_number(s.cpu_seconds_per_renewal, 3)} / "
                    f"{_number(s.connector_cpu_seconds_per_renewal, 3)}",
                    _ratios(s),
                    _correct(s),
                )
            )
        )
    return "\n".join(lines)


def render_process_table(stages: Sequence[StageResult]) -> str:
    """CPU seconds and peak RSS (MB) of each process, per row."""
    names: list[str] = []
    for stage in stages:
        for usage in stage.processes:
            if usage.name not in names:
                names.append(usage.name)
    header = ("variant", "mode", "load", "size", *(f"{n} CPU s / MB" for n in names))
    lines = [_row(header), _row(["---"] * len(header))]
    for s in stages:
        by_name = {u.name: u for u in s.processes}
        cells = [
            f"{by_name[n].cpu_seconds:.1f} / {by_name[n].peak_rss_mb:.0f}"
            + (" (restarted)" if by_name[n].restarted else "")
            if n in by_name
            else EMPTY
            for n in names
        ]
        lines.append(_row((s.variant, s.mode, s.load, _size(s), *cells)))
    return "\n".join(lines)


def render_waiting_table(stages: Sequence[StageResult]) -> str:
    waiting = [s for s in stages if s.waiting is not None]
    if not waiting:
        return ""
    header = ("variant", "load", "size", "cycles waiting", "to authorise s", "worker RSS MB",
              "temporal.db* MB")  # fmt: skip
    lines = [_row(header), _row(["---"] * len(header))]
    for s in waiting:
        assert s.waiting is not None
        rss = ", ".join(f"{n} {mb:.0f}" for n, mb in s.waiting.worker_rss_mb.items())
        lines.append(
            _row(
                (
                    s.variant,
                    s.load,
                    _size(s),
                    str(s.waiting.cycles),
                    f"{s.waiting.seconds_to_authorise:.1f}",
                    rss or EMPTY,
                    f"{s.waiting.temporal_db_mb:.1f}",
                )
            )
        )
    return "\n".join(lines)


def render_markdown(report: BenchmarkReport) -> str:
    machine = report.machine
    parts = [
        "# Renewals benchmark",
        "",
        f"Machine: {machine.get('cpu_model')}, {machine.get('cores')} cores, "
        f"{machine.get('ram_gb')} GB RAM, Python {machine.get('python')}, "
        f"{machine.get('temporal_cli')}",
        "",
        f"Command: `{report.command}`",
        "",
        "## Throughput and latency",
        "",
        render_results_table(report.stages),
        "",
        "`errors` = non-200 webhook answers + workflows that closed other than completed. "
        "`÷ bare` = connector renewals/s divided by the bare workflow's at the same load. "
        "Authorise rows send N authorisations then N captures (`sent` and the ack "
        "percentiles cover both) and count renewals/s from the first authorisation webhook "
        "to the last close, the wait for all cycles to be authorised included. "
        "CPU s/renewal: all stack processes (emulators included) / Temporal, worker(s) and "
        "API only (bare rows: Temporal and the bare worker).",
        "",
        "## Cost per process (CPU seconds over the load / peak RSS MB during it)",
        "",
        render_process_table(report.stages),
    ]
    waiting = render_waiting_table(report.stages)
    if waiting:
        parts += ["", "## Authorise mode: N cycles waiting for their capture", "", waiting]
    notes = list(report.notes) + [
        f"{s.variant} {s.mode} {s.load} {_size(s)}: {note}"
        for s in report.stages
        for note in s.notes
    ]
    if notes:
        parts += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(parts) + "\n"


def report_json(report: BenchmarkReport) -> dict[str, Any]:
    raw = asdict(report)
    for stage, raw_stage in zip(report.stages, raw["stages"], strict=True):
        if stage.correctness is not None:
            raw_stage["correctness"]["all_recorded"] = stage.correctness.all_recorded
    return raw


def write_outputs(report: BenchmarkReport, out: Path) -> list[Path]:
    """`<out>.md`, `<out>.json` and `<out>.png`; returns the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    markdown = out.with_name(out.name + ".md")
    raw = out.with_name(out.name + ".json")
    chart = out.with_name(out.name + ".png")
    markdown.write_text(render_markdown(report))
    raw.write_text(json.dumps(report_json(report), indent=2) + "\n")
    plot(report.stages, chart)
    return [markdown, raw, chart]


def _series(stages: Sequence[StageResult], load: str) -> dict[str, list[StageResult]]:
    lines: dict[str, list[StageResult]] = {}
    for s in stages:
        if s.load == load:
            label = s.mode if s.is_bare else f"{s.variant} {s.mode}"
            lines.setdefault(label, []).append(s)
    return {label: sorted(rows, key=lambda r: r.size) for label, rows in lines.items()}


def plot(stages: Sequence[StageResult], path: Path) -> None:
    """Renewals/s and ack p99 against N (burst) and against the offered rate (paced)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    panels = (
        ("burst", "renewals_per_second", "N (burst)", "renewals/s"),
        ("burst", "ack_p99", "N (burst)", "webhook ack p99 (ms)"),
        ("paced", "renewals_per_second", "offered webhooks/s (paced)", "renewals/s"),
        ("paced", "ack_p99", "offered webhooks/s (paced)", "webhook ack p99 (ms)"),
    )
    for axis, (load, metric, xlabel, ylabel) in zip(axes.flat, panels, strict=True):
        for label, rows in _series(stages, load).items():
            xs = [r.size for r in rows]
            ys = [
                (r.renewals_per_second if metric == "renewals_per_second" else r.ack.p99_ms)
                for r in rows
            ]
            points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if not points:
                continue
            style = "--" if label.startswith("bare") else "-"
            axis.plot(*zip(*points, strict=True), style, marker="o", label=label)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        if load == "paced" and metric == "renewals_per_second":
            xs_all = sorted({s.size for s in stages if s.load == "paced"})
            if xs_all:
                axis.plot(xs_all, xs_all, ":", color="grey", label="offered")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.suptitle("Renewals: connector variants and bare-Temporal ceilings")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --------------------------------------------------------------------------------- machine


def machine_info(temporal_cli: str) -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        version = subprocess.run(
            [temporal_cli, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except OSError:
        version = "temporal CLI not found"
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "temporal_cli": version,
    }
