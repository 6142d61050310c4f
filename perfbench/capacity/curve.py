"""The throughput/latency curve of a sweep: where throughput stops growing (the knee) and where
the straight line of its unsaturated levels meets the plateau (the roofline). The sweep's module
docstring (:mod:`perfbench.capacity.sweep`) gives the definitions."""

from __future__ import annotations

import math
from collections.abc import Sequence


def find_knee(
    points: Sequence[tuple[float, float, float]], gain: float = 0.10, latency: float = 0.25
) -> int | None:
    """Index of the knee in ``(level, throughput, latency)`` points sorted by level (module doc)."""
    finite = [t for _, t, _ in points if math.isfinite(t)]
    if not finite:
        return None
    t_max = max(finite)
    for i, (x, t, d) in enumerate(points):
        if math.isfinite(t) and t >= (1 - gain) * t_max:
            climbs = any(xj > x and dj > (1 + latency) * d for xj, _, dj in points[i + 1 :])
            return i if climbs else None
    return None  # pragma: no cover - t_max itself qualifies


def roofline(points: Sequence[tuple[float, float]], knee: float) -> float | None:
    """Where the line T = a·x fitted to the levels below ``knee`` meets the plateau max(T)."""
    below = [(x, t) for x, t in points if x < knee and math.isfinite(t)]
    finite = [t for _, t in points if math.isfinite(t)]
    if not below or not finite:
        return None
    a = sum(x * t for x, t in below) / sum(x * x for x, _ in below)
    return max(finite) / a if a > 0 else None
