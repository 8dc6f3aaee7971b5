"""The long tests start first, one share each, when xdist splits the suite among processes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.scheduling import LONG_RUNNING, long_tests_first_in_each_share, share_sizes


@dataclass(frozen=True)
class FakeItem:
    name: str
    seconds: float | None = None

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        if name != LONG_RUNNING or self.seconds is None:
            return None
        return pytest.mark.long_running(seconds=self.seconds).mark


def test_shares_are_sized_as_worksteal_first_hands_them_out() -> None:
    assert share_sizes(10, 3) == [3, 3, 4]
    assert share_sizes(1095, 3) == [365, 365, 365]
    assert sum(share_sizes(7, 4)) == 7


def test_each_long_test_heads_a_share_and_the_longest_runs_beside_the_others() -> None:
    short = [FakeItem(f"short-{n}") for n in range(30)]
    long = [FakeItem("chaos", 130), FakeItem("restart", 50), FakeItem("bench", 40)]
    long += [FakeItem("driver", 35), FakeItem("year", 15)]
    # Long tests deep in the collection, as they are in the real one.
    items = [*short[:10], long[4], long[0], *short[10:20], *long[1:4], *short[20:]]

    ordered = long_tests_first_in_each_share(items, 3)

    assert sorted(item.name for item in ordered) == sorted(item.name for item in items)
    first, second, third = ordered[0:11], ordered[11:23], ordered[23:]
    assert [item.name for item in first[:1]] == ["chaos"]
    assert all(item.seconds is None for item in first[1:])
    assert [item.name for item in second[:2]] == ["restart", "year"]
    assert [item.name for item in third[:2]] == ["bench", "driver"]
    assert [item.name for item in ordered if item.seconds is None] == [s.name for s in short]


def test_one_process_keeps_the_collection_order() -> None:
    items = [FakeItem("a"), FakeItem("b", 99), FakeItem("c")]
    assert long_tests_first_in_each_share(items, 1) == items
