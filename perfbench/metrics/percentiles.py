"""Percentiles, exact where memory allows and error-bounded beyond.

Exact figures use numpy's default (linear interpolation between closest ranks, type 7 of
Hyndman & Fan 1996), as ``vllm bench serve`` does, on values kept at full precision (integer
nanoseconds for inter-token gaps). When a run has more values than ``EXACT_LIMIT`` (inter-token
gaps: a million 256-token requests give 255M), they are counted into log-spaced bins of relative
width ``1/RESOLUTION``, read back in batches, so memory stays bounded; a percentile from the bins
is the bin's geometric midpoint, within 0.05% of the exact one (tests/test_percentiles.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

PERCENTILES = (10, 25, 50, 66, 75, 80, 90, 95, 98, 99, 99.9)
EXACT_LIMIT = 4_000_000  # 32 MB of int64 gaps; beyond, the histogram
RESOLUTION = 1000  # successive bin edges differ by a factor of 1 + 1/RESOLUTION
_LO, _HI = 1e3, 1e13  # 1 µs .. 10,000 s, in ns


def min_samples(p: float) -> int:
    """Fewest samples for which percentile ``p`` rests on more than the top two samples.

    With fewer than 100/(100 − p), the interpolation for p runs between the two largest values,
    and the figure says little more than "about the maximum".
    """
    return math.ceil(100 / (100 - p) - 1e-9) if p < 100 else 1


def exact(values: np.ndarray, pcts: Iterable[float] = PERCENTILES) -> list[float]:
    if values.size == 0:
        return [math.nan for _ in pcts]
    return [float(x) for x in np.percentile(values, list(pcts))]


class LogHistogram:
    """Counts of values in bins of relative width 0.1% from 1 µs up; below 1 µs, exact counts.

    Gaps are integer nanoseconds, so below 1 µs there are at most 1,000 distinct values, each
    counted exactly (zeros are common: events that arrive in one read share a stamp). Memory is
    fixed (about 200 KB) however many values are added.
    """

    def __init__(self) -> None:
        self.edges = np.geomspace(
            _LO, _HI, int(math.log(_HI / _LO) / math.log1p(1 / RESOLUTION)) + 1
        )
        self.counts = np.zeros(self.edges.size + 1, dtype=np.int64)  # [0]: below _LO (see low)
        self.low = np.zeros(int(_LO), dtype=np.int64)  # low[v] = how many values v ns (v < 1000)
        self.n = 0
        self.total = 0.0

    def add(self, values: np.ndarray) -> None:
        below = values < _LO
        small = values[below]
        if small.size:
            self.low += np.bincount(np.rint(small).astype(np.int64), minlength=self.low.size)
        idx = np.searchsorted(self.edges, values[~below], side="right")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        self.n += values.size
        self.total += float(values.sum())

    def percentiles(self, pcts: Iterable[float] = PERCENTILES) -> list[float]:
        if self.n == 0:
            return [math.nan for _ in pcts]
        low_cum = np.cumsum(self.low)
        n_low = int(low_cum[-1])
        cum = np.cumsum(self.counts[1:])
        out = []
        for p in pcts:
            rank = p / 100 * (self.n - 1)
            if rank < n_low:
                out.append(float(np.searchsorted(low_cum, rank, side="right")))
                continue
            # counts[1 + b] holds edges[b] <= v < edges[b + 1]: answer that bin's geometric middle
            b = int(np.searchsorted(cum, rank - n_low, side="right"))
            b = min(b, self.edges.size - 2)
            out.append(float(math.sqrt(self.edges[b] * self.edges[b + 1])))
        return out


def streamed(
    batches: Iterable[np.ndarray], count: int, pcts: Iterable[float] = PERCENTILES
) -> tuple[list[float], float, bool]:
    """Percentiles and mean over batches of values; exact when ``count`` fits in memory.

    Returns (percentiles, mean, exact?).
    """
    pcts = list(pcts)
    if count <= EXACT_LIMIT:
        parts = list(batches)
        values = np.concatenate(parts) if parts else np.empty(0)
        mean = float(values.mean()) if values.size else math.nan
        return exact(values, pcts), mean, True
    hist = LogHistogram()
    for batch in batches:
        hist.add(batch)
    return hist.percentiles(pcts), (hist.total / hist.n if hist.n else math.nan), False
