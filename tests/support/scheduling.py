"""Where the long tests go when pytest-xdist runs the suite in several processes.

`--dist worksteal` hands each process one contiguous share of the collected tests, in process
order, and an idle process later steals from the *end* of the busiest one's queue. A test of a
minute or more that sits deep in a share therefore starts late and ends the run alone. So each
long test (marked `long_running(seconds=…)`, a rough figure from `pytest --durations`) goes to
the head of a share, longest first onto the share with the least long-test time so far, and
the short tests fill the shares around them; the stealing then evens out the short ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import pytest

LONG_RUNNING = "long_running"


class _Marked(Protocol):
    def get_closest_marker(self, name: str) -> pytest.Mark | None: ...


Item = TypeVar("Item", bound=_Marked)


def long_running_seconds(item: _Marked) -> float | None:
    marker = item.get_closest_marker(LONG_RUNNING)
    if marker is None:
        return None
    seconds: float = marker.kwargs["seconds"]
    return seconds


def share_sizes(total: int, processes: int) -> list[int]:
    """The sizes worksteal's first distribution gives each process: what is left, divided by
    the processes still to serve, rounded down."""
    sizes = []
    for served in range(processes):
        size = total // (processes - served)
        sizes.append(size)
        total -= size
    return sizes


def long_tests_first_in_each_share(items: Sequence[Item], processes: int) -> list[Item]:
    if processes < 2:
        return list(items)
    long = sorted(
        (item for item in items if long_running_seconds(item) is not None),
        key=lambda item: -(long_running_seconds(item) or 0.0),
    )
    short = [item for item in items if long_running_seconds(item) is None]
    heads: list[list[Item]] = [[] for _ in range(processes)]
    load = [0.0] * processes
    for item in long:
        lightest = load.index(min(load))
        heads[lightest].append(item)
        load[lightest] += long_running_seconds(item) or 0.0
    ordered: list[Item] = []
    taken = 0
    for head, size in zip(heads, share_sizes(len(items), processes), strict=True):
        fill = max(0, size - len(head))
        ordered += head + short[taken : taken + fill]
        taken += fill
    return ordered + short[taken:]
