"""One run's plan, partitioned over workers: each planned request belongs to exactly one.

The coordinator plans once (the closed loop's slots and request order, or the open loop's
arrival times) and hands each worker a :class:`Share`. Closed loop: the run's ``parallel``
slots are split as evenly as possible, and request ``k`` belongs to the worker that owns slot
``k mod parallel``, so that the same requests are sent whatever the number of workers. Open
loop: arrival ``k`` goes to worker ``k mod n`` (every worker sees the whole time span at
1/n of the rate), and a ``max_concurrency`` cap is split like slots.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


def split(total: int, n: int) -> list[int]:
    """``total`` split into ``n`` parts as evenly as possible, larger parts first.

    >>> split(10, 4)
    [3, 3, 2, 2]
    """
    base, extra = divmod(total, n)
    return [base + (i < extra) for i in range(n)]


@dataclass(frozen=True)
class Share:
    """What one worker sends in one phase.

    Closed loop (``planned_s`` None): ``slots`` loops over the indices ``start + k`` for every
    ``k`` with ``k mod period`` in ``owned``, in order, stopping before ``end`` (None: until the
    deadline); or over ``indices`` when given (a resumed run's unfinished requests). Open loop: ``indices[j]`` at ``planned_s[j]`` seconds after the common start,
    with ``prompt_slots[j]`` as its prompt for a trace, and at most ``slots`` in flight (0: no
    cap).
    """

    worker: int
    slots: int
    start: int = 0
    end: int | None = None
    period: int = 1
    owned: tuple[int, ...] = (0,)
    indices: np.ndarray | None = None
    planned_s: np.ndarray | None = None
    prompt_slots: np.ndarray | None = None

    @property
    def open_loop(self) -> bool:
        return self.planned_s is not None

    def closed_indices(self) -> Iterator[int]:
        """The closed loop's indices, in the order they are sent."""
        if self.indices is not None:
            return iter(self.indices.tolist())
        steps = (base + r for base in itertools.count(0, self.period) for r in self.owned)
        indices = (self.start + k for k in steps)
        if self.end is None:
            return indices
        return itertools.takewhile(lambda i: i < self.end, indices)  # type: ignore[operator]

    @property
    def planned(self) -> int | None:
        """How many requests the share holds (None: a closed loop bounded by time only)."""
        if self.indices is not None:
            return len(self.indices)
        if self.end is None:
            return None
        total = self.end - self.start
        full, rest = divmod(total, self.period)
        return full * len(self.owned) + sum(1 for r in self.owned if r < rest)


def closed_shares(
    parallel: int, start: int, end: int | None, workers: int, only: np.ndarray | None = None
) -> list[Share]:
    """The closed loop's slots over ``min(workers, parallel)`` workers; with ``only``, just
    those indices, each to the owner of its slot."""
    counts = split(parallel, min(workers, parallel))
    shares, first = [], 0
    for w, count in enumerate(counts):
        owned = tuple(range(first, first + count))
        mine = None
        if only is not None:
            mine = only[np.isin((only - start) % parallel, owned)]
        shares.append(Share(w, count, start, end, parallel, owned, indices=mine))
        first += count
    return shares


def open_shares(
    planned_s: np.ndarray,
    start: int,
    cap: int | None,
    workers: int,
    prompt_slots: np.ndarray | None = None,
    indices: np.ndarray | None = None,
) -> list[Share]:
    """The open loop's arrivals, round-robin over ``workers`` (at most ``cap`` of them); arrival
    ``k`` is request ``start + k``, or ``indices[k]`` when given."""
    n = max(1, min(workers, cap or workers, len(planned_s) or 1))
    caps = split(cap, n) if cap else [0] * n
    if indices is None:
        indices = start + np.arange(len(planned_s), dtype=np.int64)
    return [
        Share(
            w,
            caps[w],
            indices=indices[w::n],
            planned_s=planned_s[w::n],
            prompt_slots=None if prompt_slots is None else prompt_slots[w::n],
        )
        for w in range(n)
    ]
