"""pass@k against brute-force enumeration of every k-subset; maj@k on crafted samples."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from perfbench.grade import maj_at_k, majority, mean_pass_at_k, pass_at_k


def brute_pass_at_k(correct: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration(n):
    for c in range(n + 1):
        correct = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(correct, k), abs=1e-12)


def test_pass_at_k_closed_form_and_edges():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the share of correct samples
    assert pass_at_k(5, 0, 5) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(100, 10, 20) == pytest.approx(1 - math.comb(90, 20) / math.comb(100, 20))
    # large n, where the binomials alone overflow a float
    assert 0.0 < pass_at_k(5000, 1, 10) == pytest.approx(10 / 5000, rel=1e-9)
    for bad in ((3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)):
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_mean_pass_at_k_over_questions():
    rng = random.Random(4)
    results = [[rng.random() < 0.4 for _ in range(6)] for _ in range(50)]
    for k in (1, 3, 6):
        expected = sum(brute_pass_at_k(r, k) for r in results) / len(results)
        assert mean_pass_at_k(results, k) == pytest.approx(expected)
    avg_pass1 = sum(sum(r) / len(r) for r in results) / len(results)
    assert mean_pass_at_k(results, 1) == pytest.approx(avg_pass1)


def test_majority_vote_and_ties():
    assert majority(["4", "5", "4"]) == "4"
    assert majority(["5", "4", "4", "5"]) == "5"  # a tie goes to the answer seen first
    assert majority(["7", "8", "8", "8"], k=2) == "7"  # only the first k count
    with pytest.raises(ValueError):
        majority([])


def test_maj_at_k_on_crafted_samples():
    samples = [
        [("12", True), ("12", True), ("13", False), ("12", True)],  # right by majority
        [("x", False), ("y", True), ("x", False), ("y", True)],  # tie at k=4: first seen, wrong
        [("a", False), ("b", True), ("b", True), ("b", True)],  # k=1 wrong, k=3 right
    ]
    assert maj_at_k(samples, 1) == pytest.approx(1 / 3)
    assert maj_at_k(samples, 3) == pytest.approx(2 / 3)
    assert maj_at_k(samples, 4) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="maj@5"):
        maj_at_k(samples, 5)
