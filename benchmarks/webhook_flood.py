"""The webhook flood at full size: 10,000 forged Mollie webhooks at one renewal cycle.

    .venv/bin/python benchmarks/webhook_flood.py [--requests 10000]

Runs `tests/test_webhook_routing.py::test_the_flood` (which CI runs with 1,000 requests) with
`WEBHOOK_FLOOD_REQUESTS` set, against the real servers that test starts on free ports, and
prints the figures it records: requests, seconds, outcomes, Mollie look-ups, signals into the
cycle, log lines and bytes. The test's assertions hold at every size; a failed one ends this
with pytest's report and exit code 1.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/test_webhook_routing.py::test_the_flood"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=10_000,
        help="forged webhooks to send, a multiple of 10 (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.requests <= 0 or args.requests % 10:
        parser.error(
            "--requests must be a positive multiple of 10 (every tenth names the real payment)"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "flood.xml"
        finished = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST,
             f"--junitxml={report}"],
            cwd=REPO,
            env={**os.environ, "WEBHOOK_FLOOD_REQUESTS": str(args.requests)},
            check=False,
        )  # fmt: skip
        if finished.returncode != 0 or not report.exists():
            return 1
        properties = ElementTree.parse(report).getroot().iter("property")
        figures = next(p.get("value") for p in properties if p.get("name") == "flood")
    assert figures is not None
    # record_property stores the dict's repr: a Python literal, never code.
    flood = ast.literal_eval(figures)
    seconds = float(flood["flood_seconds"])
    print(f"requests              {flood['requests']}")
    print(f"flood seconds         {seconds:.2f}  ({flood['requests'] / seconds:.0f} requests/s)")
    print(f"outcomes              {flood['outcomes']}")
    print(f"forged look-ups       {flood['forged_lookups']} (100 forged ids)")
    print(f"real payment look-ups {flood['real_payment_lookups']}")
    print(f"signals into cycle    {flood['signals_into_cycle']}")
    print(f"log lines / bytes     {flood['log_lines']} / {flood['log_bytes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
