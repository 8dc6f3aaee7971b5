"""Where the demos find the running stack: a flag given, else `<data-dir>/stack.env` (written by
`scripts/run`, `--data-dir` choosing the stack), else the launcher's default ports. A URL the
demo cannot reach ends it with one line naming the URL and how to change it.

And the steps every demo starts with: an order seeded in the Cleeng emulator, bought through
the connector's API as the publisher's backend would."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from connector_ops.stack_file import DEFAULT_DATA_DIR, Address, pick, read_stack_file
from settings import EMULATOR_FRONTEND_API_KEY

# name: (flag, key in stack.env, the launcher's default, what it is)
ADDRESSES = {
    "api": ("--api", "API_URL", "http://127.0.0.1:8000", "the connector's API"),
    "cleeng": ("--cleeng", "CLEENG_EMULATOR_URL", "http://127.0.0.1:8102", "the Cleeng emulator"),
    "mollie": ("--mollie", "MOLLIE_EMULATOR_URL", "http://127.0.0.1:8101", "the Mollie emulator"),
    "temporal_ui": (
        "--temporal-ui",
        "TEMPORAL_UI_URL",
        "http://127.0.0.1:8233",
        "the Temporal Web UI",
    ),
}


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    """--data-dir, the stack's URLs (each overriding the stack file) and the front-end key."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the scripts/run stack to drive: its stack.env says where it answers "
        "(default %(default)s)",
    )
    for flag, key, default, what in ADDRESSES.values():
        parser.add_argument(flag, help=f"{what} (default: {key} of the stack file, else {default})")
    parser.add_argument(
        "--api-key",
        default=EMULATOR_FRONTEND_API_KEY,
        help="front-end API key (default: the sandbox key scripts/run accepts)",
    )


def resolve_stack(args: argparse.Namespace) -> dict[str, Address]:
    """Replace each URL argument by the URL to use; returns where each came from."""
    stack = read_stack_file(args.data_dir)
    addresses = {
        name: pick(getattr(args, name), flag, args.data_dir, stack, key, default)
        for name, (flag, key, default, _) in ADDRESSES.items()
    }
    for name, address in addresses.items():
        setattr(args, name, address.value.rstrip("/"))
    args.addresses = addresses
    return addresses


def _whose(args: argparse.Namespace, url: str) -> tuple[str, Address] | None:
    addresses: dict[str, Address] = getattr(args, "addresses", {})
    matches = [
        (ADDRESSES[name][3], address)
        for name, address in addresses.items()
        if url.startswith(address.value.rstrip("/"))
    ]
    return max(matches, key=lambda match: len(match[1].value)) if matches else None


@contextmanager
def reporting_unreachable(args: argparse.Namespace) -> Iterator[None]:
    """An unreachable URL, or an answer that is not the stack's, ends the demo with one line."""
    try:
        yield
    except httpx.TransportError as error:
        url = str(error.request.url)
        whose = _whose(args, url)
        if whose is None:
            line = f"cannot reach {url}: {type(error).__name__}"
        else:
            what, address = whose
            line = (
                f"cannot reach {what} at {address.value} ({address.origin}): {type(error).__name__}"
            )
        print(line, file=sys.stderr)
        raise SystemExit(1) from None
    except httpx.HTTPStatusError as error:
        url = str(error.request.url)
        whose = _whose(args, url)
        where = f" (is that {whose[0]}? {whose[1].origin})" if whose else ""
        print(
            f"{error.request.method} {url} answered HTTP {error.response.status_code}{where}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


# A purchase's statuses that do not change any more.
FINAL = {"captured", "rejected", "failed", "refunded_cleeng_refused"}


def show(title: str, body: Any) -> None:
    print(f"\n== {title}\n{json.dumps(body, indent=2)}")


@dataclass(frozen=True)
class SeededOrder:
    """An order the Cleeng emulator made for a new customer, and how to act for its customer."""

    order_id: str
    customer_id: int
    order: dict[str, Any]
    # As the publisher's backend: its API key, and the customer it acts for.
    acting: dict[str, str]


def seed_order(http: httpx.Client, args: argparse.Namespace, **order: Any) -> SeededOrder:
    """A new customer's order in the Cleeng emulator (`order`: e.g. its price or the email)."""
    seeded = (
        http.post(f"{args.cleeng}/_emulator/seed/purchase", json=order).raise_for_status().json()
    )
    return SeededOrder(
        order_id=str(seeded["orderId"]),
        customer_id=int(seeded["customerId"]),
        order=seeded["order"],
        acting={
            "Authorization": f"Bearer {args.api_key}",
            "X-Cleeng-Customer-Id": str(seeded["customerId"]),
        },
    )


def start_purchase(
    http: httpx.Client, args: argparse.Namespace, seeded: SeededOrder, method: str | None = None
) -> dict[str, Any]:
    """`POST /purchases` for the order, back to the purchase's own state when paid (with
    `method`, Mollie's checkout offers only that method)."""
    purchase: dict[str, Any] = {
        "orderId": seeded.order_id,
        "redirectUrl": f"{args.api}/purchases/{seeded.order_id}",
    }
    if method is not None:
        purchase["method"] = method
    answer = http.post(f"{args.api}/purchases", json=purchase, headers=seeded.acting)
    started: dict[str, Any] = answer.raise_for_status().json()
    return started


def purchase_outcome(
    http: httpx.Client,
    args: argparse.Namespace,
    seeded: SeededOrder,
    state: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """`GET /purchases/{orderId}` until the purchase is final or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while state["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = http.get(f"{args.api}/purchases/{seeded.order_id}", headers=seeded.acting)
        state = answer.raise_for_status().json()
    return state
