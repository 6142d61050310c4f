"""Percentiles (DESIGN.md, "Metric definitions": numpy's linear interpolation, full precision),
the bounded-memory histogram used beyond ``EXACT_LIMIT``, and the stored form of the
inter-token gaps that feed it (``encode_gaps``/``decode_gaps``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from perfbench.metrics import percentiles
from perfbench.metrics.percentiles import (
    PERCENTILES,
    LogHistogram,
    exact,
    min_samples,
    streamed,
)
from perfbench.store.writer import decode_gaps, encode_gaps

MORE_PCTS = tuple(sorted((0.5, 1, 2, 3, 4, *PERCENTILES, 99.5, 99.99)))


@pytest.fixture(scope="module")
def latencies_ns() -> np.ndarray:
    """1M lognormal latencies around 10 ms (in ns), 5% of them exactly 0, in random order."""
    rng = np.random.default_rng(2024)
    values = rng.lognormal(mean=math.log(1e7), sigma=1.0, size=1_000_000)
    values[rng.permutation(values.size)[:50_000]] = 0.0
    return values


def _assert_close(approx: list[float], truth: list[float], pcts, rel: float) -> None:
    for p, a, t in zip(pcts, approx, truth, strict=True):
        if t == 0:
            assert a == 0, f"p{p}: {a} for an exact 0"
        else:
            assert abs(a - t) <= rel * t, f"p{p}: {a} vs exact {t} ({(a - t) / t:+.4%})"


# exact ------------------------------------------------------------------------------------


def test_exact_is_numpys_linear_interpolation():
    rng = np.random.default_rng(0)
    values = rng.exponential(scale=25.0, size=997)
    pcts = (0, *MORE_PCTS, 100)
    assert exact(values, pcts) == np.percentile(values, pcts, method="linear").tolist()
    assert exact(values) == np.percentile(values, PERCENTILES).tolist()


def test_exact_by_hand():
    values = np.array([4.0, 1.0, 3.0, 2.0])
    # rank p/100 * (n - 1) between the closest ranks of the sorted values
    assert exact(values, (0, 50, 99, 100)) == pytest.approx([1.0, 2.5, 3.97, 4.0], abs=1e-12)
    assert exact(np.array([7.5]), (10, 99.9)) == [7.5, 7.5]


def test_exact_of_nothing_is_nan_for_each_percentile():
    out = exact(np.empty(0))
    assert len(out) == len(PERCENTILES) and all(math.isnan(x) for x in out)


@pytest.mark.parametrize(
    ("p", "n"), [(50, 2), (90, 10), (95, 20), (99, 100), (99.9, 1000), (99.99, 10_000), (100, 1)]
)
def test_min_samples(p, n):
    assert min_samples(p) == n


# LogHistogram ---------------------------------------------------------------------------


def test_histogram_within_a_tenth_of_a_percent_of_exact(latencies_ns):
    hist = LogHistogram()
    hist.add(latencies_ns)
    _assert_close(hist.percentiles(MORE_PCTS), exact(latencies_ns, MORE_PCTS), MORE_PCTS, 1e-3)


def test_histogram_of_a_constant_is_that_constant_within_a_tenth_of_a_percent():
    hist = LogHistogram()
    hist.add(np.full(1000, 1e7))
    _assert_close(hist.percentiles(), [1e7] * len(PERCENTILES), PERCENTILES, 1e-3)


def test_histogram_zeros_count_and_mean(latencies_ns):
    hist = LogHistogram()
    for batch in np.array_split(latencies_ns, 7):
        hist.add(batch)
    assert hist.n == latencies_ns.size
    assert hist.total / hist.n == pytest.approx(latencies_ns.mean(), rel=1e-12)
    out = hist.percentiles(MORE_PCTS)
    truth = exact(latencies_ns, MORE_PCTS)
    # below 5% the exact percentile is 0 and so is the histogram's (zeros are kept exactly)
    for p, a, t in zip(MORE_PCTS, out, truth, strict=True):
        assert (a == 0) == (t == 0), (p, a, t)
    assert sum(t == 0 for t in truth) == 5  # p0.5 .. p4
    assert out == sorted(out)
    # adding in batches or at once gives the same counts
    whole = LogHistogram()
    whole.add(latencies_ns)
    assert np.array_equal(whole.counts, hist.counts)
    assert whole.percentiles(MORE_PCTS) == out


def test_histogram_keeps_sub_microsecond_values_exactly():
    hist = LogHistogram()
    hist.add(np.array([0.0, 0.0, 250.0, 999.0] + [5e6] * 6))
    # ranks 0, 2.07 and 3.06 of ten values: the values below 1 µs are returned as they are
    assert hist.percentiles((0, 23, 34)) == [0.0, 250.0, 999.0]


def test_empty_histogram_is_nan():
    out = LogHistogram().percentiles((50, 99))
    assert len(out) == 2 and all(math.isnan(x) for x in out)


# streamed -------------------------------------------------------------------------------


def test_streamed_is_exact_under_the_limit():
    rng = np.random.default_rng(1)
    batches = [rng.lognormal(2.0, 0.5, size=n) for n in (1000, 1, 0, 333)]
    values = np.concatenate(batches)
    pcts, mean, is_exact = streamed(iter(batches), values.size)
    assert is_exact is True
    assert pcts == exact(values)
    assert mean == pytest.approx(values.mean(), rel=1e-12)


def test_streamed_of_nothing():
    pcts, mean, is_exact = streamed(iter([]), 0)
    assert is_exact and math.isnan(mean) and all(math.isnan(x) for x in pcts)


def test_streamed_uses_the_histogram_over_the_limit(monkeypatch, latencies_ns):
    monkeypatch.setattr(percentiles, "EXACT_LIMIT", 1000)
    batches = np.array_split(latencies_ns, 10)
    pcts, mean, is_exact = streamed((b for b in batches), latencies_ns.size, MORE_PCTS)
    assert is_exact is False
    assert mean == pytest.approx(latencies_ns.mean(), rel=1e-12)
    hist = LogHistogram()
    hist.add(latencies_ns)
    assert pcts == hist.percentiles(MORE_PCTS)
    assert pcts != exact(latencies_ns, MORE_PCTS)  # it really took the histogram path


def test_streamed_over_the_limit_within_a_tenth_of_a_percent(monkeypatch, latencies_ns):
    monkeypatch.setattr(percentiles, "EXACT_LIMIT", 1000)
    pcts, _, _ = streamed(np.array_split(latencies_ns, 10), latencies_ns.size, MORE_PCTS)
    _assert_close(pcts, exact(latencies_ns, MORE_PCTS), MORE_PCTS, 1e-3)


# stored inter-token gaps ----------------------------------------------------------------


def test_gaps_round_trip_as_uint32():
    rng = np.random.default_rng(5)
    stamps = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 50_000_000, size=256))
    stamps[10] = stamps[9]  # two chunks from one read share a stamp: a gap of 0
    width, blob = encode_gaps(int(s) for s in stamps)
    assert width == 4 and len(blob) == 4 * 255
    gaps = decode_gaps(width, blob)
    assert gaps.dtype == np.int64
    assert np.array_equal(gaps, np.diff(stamps))


@pytest.mark.parametrize(("gap", "width"), [(2**32 - 1, 4), (2**32, 8), (3 * 10**12, 8)])
def test_gaps_width_switches_at_2_to_the_32_ns(gap, width):
    stamps = [10**15, 10**15 + 7, 10**15 + 7 + gap, 10**15 + 9 + gap]
    encoded = encode_gaps(stamps)
    assert encoded is not None and encoded[0] == width
    assert len(encoded[1]) == 3 * width
    assert decode_gaps(*encoded).tolist() == [7, gap, 2]


@pytest.mark.parametrize("stamps", [[], [123]])
def test_no_gaps_for_fewer_than_two_stamps(stamps):
    assert encode_gaps(stamps) is None
