"""The plan's partition over workers: every planned request belongs to exactly one worker, and
the requests (indices, prompts, planned times) are the same whatever the number of workers."""

from __future__ import annotations

import numpy as np
import pytest

from perfbench.load import arrival_offsets
from perfbench.load.partition import closed_shares, open_shares, split


@pytest.mark.parametrize(("total", "n"), [(10, 4), (7, 7), (3, 1), (256, 20), (5, 2)])
def test_split_is_even_and_complete(total, n):
    parts = split(total, n)
    assert sum(parts) == total and len(parts) == n
    assert max(parts) - min(parts) <= 1


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7, 9])
@pytest.mark.parametrize(("parallel", "start", "number"), [(8, 0, 100), (7, 4, 61), (3, 2, 3)])
def test_closed_shares_cover_each_index_once(workers, parallel, start, number):
    shares = closed_shares(parallel, start, start + number, workers)
    assert len(shares) == min(workers, parallel)
    assert sum(s.slots for s in shares) == parallel
    sent = [i for s in shares for i in s.closed_indices()]
    assert sorted(sent) == list(range(start, start + number))
    assert sum(s.planned for s in shares) == number  # type: ignore[misc]
    for s in shares:  # each worker sends its indices in order
        mine = list(s.closed_indices())
        assert mine == sorted(mine) and len(mine) == s.planned


def test_closed_share_bounded_by_time_only_is_endless_and_disjoint():
    shares = closed_shares(5, 2, None, 2)
    firsts = [list(zip(range(40), s.closed_indices())) for s in shares]
    taken = [i for part in firsts for _, i in part]
    assert len(set(taken)) == len(taken) == 80
    assert shares[0].planned is None
    # slot k mod 5 decides the owner: worker 0 owns slots 0-2, worker 1 slots 3-4
    assert {(i - 2) % 5 for _, i in firsts[0]} == {0, 1, 2}
    assert {(i - 2) % 5 for _, i in firsts[1]} == {3, 4}


@pytest.mark.parametrize("workers", [1, 2, 4, 5])
@pytest.mark.parametrize("cap", [None, 3, 16])
def test_open_shares_partition_the_arrivals(workers, cap):
    offsets = arrival_offsets(50.0, number=101, duration=None, seed=3)
    slots = np.arange(101)
    shares = open_shares(offsets, 10, cap, workers, slots)
    assert len(shares) == min(workers, cap or workers)
    if cap:
        assert sum(s.slots for s in shares) == cap
    got = sorted(
        (int(i), float(t), int(k))
        for s in shares
        for i, t, k in zip(s.indices, s.planned_s, s.prompt_slots)  # type: ignore[arg-type]
    )
    assert got == [(10 + k, float(offsets[k]), k) for k in range(101)]
    for s in shares:  # each share keeps its arrivals in time order
        assert np.all(np.diff(s.planned_s) >= 0)
