"""Arrival plans for the open loop: when each request is meant to start.

The plan is computed up front from a seeded generator, so it does not depend on how the server
responds: a slow server makes requests late (schedule lag, recorded), it never makes the plan
thinner. Latency measured from the planned start is free of coordinated omission (wrk2).
"""

from __future__ import annotations

import math

import numpy as np


def arrival_offsets(
    rate: float,
    *,
    number: int | None,
    duration: float | None,
    burstiness: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Planned start offsets in seconds from the run's start, ascending, first at 0.

    Gaps are gamma-distributed with shape ``burstiness`` and mean ``1/rate``: shape 1 is a
    Poisson process (exponential gaps, coefficient of variation 1); a smaller shape is burstier
    (CV = 1/sqrt(shape)); a larger one more regular. ``rate=inf`` starts everything at once.
    The plan holds ``number`` arrivals, or those before ``duration`` seconds, whichever is fewer.
    """
    if number is None and duration is None:
        raise ValueError("an arrival plan needs a number or a duration")
    if math.isinf(rate):
        n = number if number is not None else 1
        return np.zeros(n)
    rng = np.random.default_rng(seed)
    scale = 1.0 / (rate * burstiness)
    if number is not None:
        gaps = rng.gamma(shape=burstiness, scale=scale, size=number)
        gaps[0] = 0.0
        offsets = np.cumsum(gaps)
    else:
        # draw in blocks until the plan passes the duration (bursty shapes can need many more)
        assert duration is not None
        block = int(rate * duration * 1.1) + 16
        parts: list[np.ndarray] = []
        last = 0.0
        while last < duration:
            gaps = rng.gamma(shape=burstiness, scale=scale, size=block)
            if not parts:
                gaps[0] = 0.0
            part = last + np.cumsum(gaps)
            parts.append(part)
            last = float(part[-1])
        offsets = np.concatenate(parts)
    if duration is not None:
        offsets = offsets[offsets < duration]
    return offsets


def constant_offsets(rate: float, *, number: int | None, duration: float | None) -> np.ndarray:
    """Evenly spaced arrivals, ``1/rate`` apart: a constant rate with no randomness at all."""
    if number is None and duration is None:
        raise ValueError("an arrival plan needs a number or a duration")
    n = number if number is not None else math.ceil(rate * duration)  # type: ignore[operator]
    offsets = np.arange(n, dtype=np.float64) / rate
    if duration is not None:
        offsets = offsets[offsets < duration]
    return offsets


def ramp_offsets(
    rate_from: float,
    rate_to: float,
    *,
    duration: float,
    number: int | None = None,
    burstiness: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Arrivals whose rate grows (or falls) linearly from ``rate_from`` to ``rate_to`` over ``duration``.

    Made by time rescaling: a unit-rate gamma process (shape ``burstiness``; 1 is Poisson) is
    drawn in "expected arrivals so far" space, Λ(t) = r0·t + (r1 − r0)·t²/(2D), and each point is
    mapped back through the inverse of Λ. The instantaneous rate at t is then r0 + (r1 − r0)·t/D.
    """
    if rate_from < 0 or rate_to < 0 or rate_from == rate_to == 0:
        raise ValueError("a ramp needs non-negative rates, not both zero")
    total = (rate_from + rate_to) / 2 * duration  # Λ(D)
    unit = arrival_offsets(1.0, number=None, duration=total, burstiness=burstiness, seed=seed)
    slope = (rate_to - rate_from) / duration
    if abs(slope) < 1e-12:
        times = unit / rate_from
    else:
        # solve slope/2 · t² + r0 · t − Λ = 0 for t ≥ 0
        times = (-rate_from + np.sqrt(rate_from**2 + 2 * slope * unit)) / slope
    times = times[times < duration]
    return times[:number] if number is not None else times
