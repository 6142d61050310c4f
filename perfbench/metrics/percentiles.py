"""Percentiles, exact where memory allows and error-bounded beyond.

Exact figures use numpy's default (linear interpolation between closest ranks, type 7 of
Hyndman & Fan 1996), the same definition ``vllm bench serve`` and ``evalscope perf`` use, on
values kept at full precision. When a run has more values than ``EXACT_LIMIT`` (inter-token
gaps: a million 256-token requests give 255M), they are counted into log-spaced bins of relative
width ``1/RESOLUTION`` read back in batches, so memory stays flat; a percentile from the bins is
within 0.1% of the exact one (the bin's geometric midpoint).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

PERCENTILES = (10, 25, 50, 66, 75, 80, 90, 95, 98, 99, 99.9)
EXACT_LIMIT = 20_000_000
RESOLUTION = 1000  # successive bin edges differ by a factor of 1 + 1/RESOLUTION
_LO, _HI = 1e3, 1e13  # 1 µs .. 10,000 s, in ns


def min_samples(p: float) -> int:
    """Fewest samples for which percentile ``p`` is not simply the maximum (pyperf's rule of thumb)."""
    return math.ceil(100 / (100 - p) - 1e-9) if p < 100 else 1


def exact(values: np.ndarray, pcts: Iterable[float] = PERCENTILES) -> list[float]:
    if values.size == 0:
        return [math.nan for _ in pcts]
    return [float(x) for x in np.percentile(values, list(pcts))]


class LogHistogram:
    """Counts of positive values in bins of relative width 0.1%, plus an exact count of zeros."""

    def __init__(self) -> None:
        self.edges = np.geomspace(_LO, _HI, int(math.log(_HI / _LO) / math.log1p(1 / RESOLUTION)) + 1)
        self.counts = np.zeros(self.edges.size + 1, dtype=np.int64)  # [0] holds values < _LO
        self.low: list[np.ndarray] = []  # values below 1 µs kept exactly (mostly zeros)
        self.n = 0
        self.total = 0.0

    def add(self, values: np.ndarray) -> None:
        small = values[values < _LO]
        if small.size:
            self.low.append(np.sort(small))
        idx = np.searchsorted(self.edges, values[values >= _LO], side="right")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        self.n += values.size
        self.total += float(values.sum())

    def percentiles(self, pcts: Iterable[float] = PERCENTILES) -> list[float]:
        if self.n == 0:
            return [math.nan for _ in pcts]
        low = np.sort(np.concatenate(self.low)) if self.low else np.empty(0)
        cum = np.cumsum(self.counts[1:])
        out = []
        for p in pcts:
            rank = p / 100 * (self.n - 1)
            if rank < low.size:
                out.append(float(low[int(rank)]))
                continue
            # counts[1 + b] holds edges[b] <= v < edges[b + 1]: answer that bin's geometric middle
            b = int(np.searchsorted(cum, rank - low.size, side="right"))
            b = min(b, self.edges.size - 2)
            out.append(float(math.sqrt(self.edges[b] * self.edges[b + 1])))
        return out


def streamed(batches: Iterable[np.ndarray], count: int, pcts: Iterable[float] = PERCENTILES) -> tuple[list[float], float, bool]:
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
