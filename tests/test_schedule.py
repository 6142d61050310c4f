"""The open-loop arrival plan: its rate, its burstiness and its bounds, with fixed seeds.

Every test uses a fixed seed, so each is deterministic; the tolerances are still set at several
standard errors so that a change of seed (or of numpy's generator) would not flip them.
scipy is not installed: the Kolmogorov–Smirnov statistic is written with numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from perfbench.load.schedule import arrival_offsets

RATE = 50.0
N = 20_000


def _gaps(burstiness: float, seed: int = 0) -> np.ndarray:
    offsets = arrival_offsets(RATE, number=N, duration=None, burstiness=burstiness, seed=seed)
    assert offsets.shape == (N,)
    return np.diff(offsets)


def _ks_exponential(samples: np.ndarray, rate: float) -> float:
    """sup |F_n(x) - F(x)| against the exponential CDF F(x) = 1 - exp(-rate x)."""
    x = np.sort(samples)
    n = x.size
    cdf = 1.0 - np.exp(-rate * x)
    above = np.arange(1, n + 1) / n - cdf
    below = cdf - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def _cv(gaps: np.ndarray) -> float:
    return float(gaps.std(ddof=1) / gaps.mean())


@pytest.mark.parametrize("burstiness", [1.0, 0.25, 4.0])
def test_mean_gap_matches_the_rate(burstiness):
    gaps = _gaps(burstiness)
    assert gaps.mean() == pytest.approx(1 / RATE, rel=0.02)


def test_poisson_gaps_are_exponential():
    gaps = _gaps(1.0)
    assert _cv(gaps) == pytest.approx(1.0, abs=0.03)
    critical = 1.63 / math.sqrt(gaps.size)  # KS critical value at the 1% level
    assert _ks_exponential(gaps, RATE) < critical
    # the same statistic rejects gaps that are not exponential, with the same mean
    assert _ks_exponential(_gaps(4.0), RATE) > 5 * critical
    assert _ks_exponential(_gaps(1.0) * 1.1, RATE) > critical  # and a rate 10% off


@pytest.mark.parametrize(("burstiness", "cv"), [(0.25, 2.0), (4.0, 0.5)])
def test_gamma_shape_sets_the_coefficient_of_variation(burstiness, cv):
    assert _cv(_gaps(burstiness)) == pytest.approx(cv, rel=0.06)


@pytest.mark.parametrize("burstiness", [1.0, 0.25, 4.0])
def test_first_offset_is_zero_and_offsets_ascend(burstiness):
    offsets = arrival_offsets(RATE, number=N, duration=None, burstiness=burstiness, seed=3)
    assert offsets[0] == 0.0
    assert np.all(np.diff(offsets) >= 0)
    assert np.all(np.isfinite(offsets))
    # not degenerate (a bursty shape draws a few gaps too small to move a float offset of ~400 s)
    assert np.count_nonzero(np.diff(offsets)) > 0.99 * (N - 1)


@pytest.mark.parametrize("burstiness", [1.0, 0.25, 4.0])
def test_duration_truncates_the_plan(burstiness):
    rate, duration = 100.0, 30.0
    offsets = arrival_offsets(rate, number=None, duration=duration, burstiness=burstiness, seed=1)
    expected = rate * duration
    # count of a renewal process: variance ≈ expected · CV², CV² = 1/burstiness
    assert abs(offsets.size - expected) < 4 * math.sqrt(expected / burstiness)
    assert offsets[0] == 0.0
    assert offsets.max() < duration
    assert offsets[-1] > duration - 1.0  # the plan reaches the end of the window
    # the plan is the prefix of the unbounded plan with the same seed that falls in the window
    longer = arrival_offsets(
        rate, number=10 * int(expected), duration=None, burstiness=burstiness, seed=1
    )
    assert np.array_equal(offsets, longer[longer < duration])


def test_number_and_duration_whichever_is_fewer():
    few = arrival_offsets(RATE, number=10, duration=1000.0, seed=0)
    assert few.size == 10
    many = arrival_offsets(RATE, number=1_000_000, duration=2.0, seed=0)
    assert 60 < many.size < 140 and many.max() < 2.0
    # the number-bounded plan is the start of the same seeded plan
    assert np.array_equal(few, many[:10])


def test_infinite_rate_starts_everything_at_once():
    offsets = arrival_offsets(math.inf, number=37, duration=None, seed=0)
    assert offsets.shape == (37,)
    assert np.all(offsets == 0.0)
    assert np.all(arrival_offsets(math.inf, number=5, duration=10.0, burstiness=0.5, seed=9) == 0.0)


def test_same_seed_same_plan_other_seed_other_plan():
    a = arrival_offsets(RATE, number=1000, duration=None, burstiness=0.5, seed=42)
    b = arrival_offsets(RATE, number=1000, duration=None, burstiness=0.5, seed=42)
    c = arrival_offsets(RATE, number=1000, duration=None, burstiness=0.5, seed=43)
    assert np.array_equal(a, b)
    assert not np.allclose(a[1:], c[1:])
    assert np.count_nonzero(a[1:] == c[1:]) == 0


def test_needs_a_number_or_a_duration():
    with pytest.raises(ValueError, match="number or a duration"):
        arrival_offsets(RATE, number=None, duration=None)


def test_duration_only_plan_is_not_cut_short_by_a_very_bursty_shape():
    rate, duration, burstiness = 100.0, 10.0, 0.01
    for seed in range(20):
        plan = arrival_offsets(
            rate, number=None, duration=duration, burstiness=burstiness, seed=seed
        )
        full = arrival_offsets(
            rate, number=10**6, duration=duration, burstiness=burstiness, seed=seed
        )
        assert plan.size == full.size, (
            f"seed {seed}: {plan.size} planned, {full.size} fall in the window"
        )


def test_ramp_rate_grows_linearly():
    from perfbench.load import ramp_offsets

    r0, r1, duration = 20.0, 180.0, 50.0  # 5,000 arrivals expected
    offsets = ramp_offsets(r0, r1, duration=duration, seed=11)
    assert np.all(np.diff(offsets) >= 0) and offsets[-1] < duration
    counts, edges = np.histogram(offsets, bins=10, range=(0, duration))
    mids = (edges[:-1] + edges[1:]) / 2
    expected = (r0 + (r1 - r0) * mids / duration) * (duration / 10)
    # each bin within 4 Poisson standard deviations of the linear rate's expectation
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected)), (counts, expected)
    assert abs(len(offsets) - 5000) < 4 * np.sqrt(5000)


def test_ramp_down_and_constant_spacing():
    from perfbench.load import constant_offsets, ramp_offsets

    down = ramp_offsets(100.0, 0.0, duration=20.0, seed=2)
    first, second = np.sum(down < 10), np.sum(down >= 10)
    assert first > 2.5 * second  # expected 750 vs 250
    even = constant_offsets(8.0, number=None, duration=2.0)
    assert even.tolist() == [k / 8 for k in range(16)]
