"""McNemar p-values against enumeration and textbook values; pairing, counts, verdict, export."""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist

import pytest

from perfbench.compare.answers import AnswerRow, Counts, mcnemar, pair_answers

KEYS = [
    "prompt_id",
    "sample",
    "subset",
    "problem",
    "gold",
    "outcome",
    "pred_a",
    "pred_b",
    "correct_a",
    "correct_b",
]


def brute_two_sided(b: int, c: int) -> float:
    """P(a fair-coin split of b + c is at least as lopsided as b : c), by listing every split."""
    n = b + c
    extreme = abs(b - n / 2)
    outcomes = list(itertools.product((0, 1), repeat=n))
    return sum(abs(sum(o) - n / 2) >= extreme for o in outcomes) / len(outcomes)


def rows_with(outcomes: str, subset: str | None = None, prefix: str = "q") -> tuple[list, list]:
    """Runs A and B from a string of outcomes: R both right, A only A, B only B, W both wrong."""
    a, b = [], []
    for i, o in enumerate(outcomes):
        pid = f"{prefix}{i}"
        a.append(AnswerRow(pid, 0, f"a{i}", o in "RA", f"problem {i}", str(i), subset))
        b.append(AnswerRow(pid, 0, f"b{i}", o in "RB", f"problem {i}", str(i), subset))
    return a, b


@pytest.mark.parametrize("n", range(0, 13))
def test_exact_p_equals_enumeration(n):
    for b in range(n + 1):
        result = mcnemar(b, n - b)
        assert result.method == "exact"
        assert result.statistic == min(b, n - b)
        assert result.p_value == pytest.approx(brute_two_sided(b, n - b), abs=1e-12)


def test_textbook_values():
    exact = mcnemar(10, 2)
    assert exact.method == "exact"
    assert exact.p_value == pytest.approx(79 / 2048) == pytest.approx(0.0386, abs=5e-5)
    chi = mcnemar(25, 10)
    assert chi.method == "chi-square"
    assert chi.statistic == pytest.approx((15 - 1) ** 2 / 35) == pytest.approx(5.6)
    assert chi.p_value == pytest.approx(0.01796, abs=5e-6)
    # P[χ²₁ ≥ s] = P[|Z| ≥ √s], checked through the normal distribution instead of erfc
    assert chi.p_value == pytest.approx(2 * (1 - NormalDist().cdf(math.sqrt(5.6))), rel=1e-9)


def test_method_switches_at_25_discordant_pairs():
    assert mcnemar(20, 4).method == "exact"
    assert mcnemar(20, 5).method == "chi-square"


def test_no_discordant_pairs_and_bad_counts():
    none = mcnemar(0, 0)
    assert (none.p_value, none.statistic, none.method) == (1.0, 0.0, "exact")
    assert not none.significant()
    assert mcnemar(7, 7).p_value == 1.0
    with pytest.raises(ValueError):
        mcnemar(-1, 3)
    with pytest.raises(ValueError, match="alpha"):
        none.significant(1.5)


def test_large_counts_do_not_overflow():
    tied = mcnemar(50_000, 50_000)
    assert tied.statistic == pytest.approx(1 / 100_000)
    assert tied.p_value == pytest.approx(math.erfc(math.sqrt(0.5e-5)))
    close = mcnemar(50_400, 49_600)
    assert close.statistic == pytest.approx(799**2 / 100_000)
    assert close.p_value == pytest.approx(2 * (1 - NormalDist().cdf(math.sqrt(6.38401))), rel=1e-6)
    lopsided = mcnemar(100_000, 0)
    assert 0.0 <= lopsided.p_value < 1e-300 and lopsided.significant()


def test_symmetric_in_a_and_b():
    a, b = rows_with("RRRAAAAAAAABBWW" + "A" * 20 + "B" * 9)
    ab, ba = pair_answers(a, b), pair_answers(b, a)
    assert (ab.only_a, ab.only_b) == (ba.only_b, ba.only_a) == (28, 11)
    assert (ab.both_right, ab.both_wrong) == (ba.both_right, ba.both_wrong) == (3, 2)
    assert (ab.accuracy_a, ab.accuracy_b) == (ba.accuracy_b, ba.accuracy_a)
    assert ab.mcnemar.p_value == ba.mcnemar.p_value
    assert ab.mcnemar.statistic == ba.mcnemar.statistic
    for b_, c_ in itertools.product(range(15), repeat=2):
        assert mcnemar(b_, c_).p_value == mcnemar(c_, b_).p_value


def test_pairs_by_prompt_and_sample_and_reports_unpaired():
    a = [
        AnswerRow("p1", 0, "1", True, subset="x"),
        AnswerRow("p1", 1, "2", False, subset="x"),
        AnswerRow("p1", 2, "1", True, subset="x"),  # B has only two samples of p1
        AnswerRow("p2", 0, "5", True, subset="y"),
    ]
    b = [
        AnswerRow("p2", 0, "6", False, subset="y"),
        AnswerRow("p1", 1, "1", True, subset="x"),
        AnswerRow("p1", 0, None, False, subset="x"),
        AnswerRow("p3", 0, "9", True, subset="y"),  # not in A
    ]
    cmp = pair_answers(a, b)
    assert [(p.prompt_id, p.sample) for p in cmp.pairs] == [("p1", 0), ("p1", 1), ("p2", 0)]
    assert [(p.pred_a, p.pred_b) for p in cmp.pairs] == [("1", None), ("2", "1"), ("5", "6")]
    assert (cmp.both_right, cmp.only_a, cmp.only_b, cmp.both_wrong) == (0, 2, 1, 0)
    assert (cmp.unpaired_a, cmp.unpaired_b) == (1, 1)
    assert cmp.only_in_a == (a[2],) and cmp.only_in_b == (b[3],)
    assert cmp.accuracy_a == pytest.approx(2 / 3) and cmp.accuracy_b == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="two answers for prompt 'p1' sample 0"):
        pair_answers([*a, AnswerRow("p1", 0, "1", True)], b)


def test_per_subset_counts():
    a1, b1 = rows_with("RRAABW", subset="algebra", prefix="alg")
    a2, b2 = rows_with("ABBBWW", subset="geometry", prefix="geo")
    a3, b3 = rows_with("R", subset=None, prefix="misc")
    cmp = pair_answers(a1 + a2 + a3, b3 + b2 + b1)
    assert list(cmp.by_subset) == ["algebra", "geometry", None]
    algebra, geometry, misc = cmp.by_subset.values()
    assert algebra == Counts(both_right=2, only_a=2, only_b=1, both_wrong=1)
    assert geometry == Counts(both_right=0, only_a=1, only_b=3, both_wrong=2)
    assert misc == Counts(both_right=1) and misc.n == 1
    assert algebra.mcnemar().p_value == mcnemar(2, 1).p_value
    assert cmp.counts == Counts(both_right=3, only_a=3, only_b=4, both_wrong=3)


def test_verdict_sentence():
    a, b = rows_with("R" * 30 + "A" * 12 + "B" * 4 + "W" * 5)
    cmp = pair_answers(a, b)
    assert cmp.verdict() == (
        "A is right on 12 questions B gets wrong and B on 4 the other way; "
        "McNemar p = 0.077 (exact): no significant difference at α = 0.05."
    )
    assert not cmp.significant() and cmp.significant(0.1)
    assert cmp.verdict(0.1).endswith("A is significantly more accurate at α = 0.1.")
    a, b = rows_with("A" + "B" * 40)
    assert pair_answers(a, b).verdict() == (
        "A is right on 1 question B gets wrong and B on 40 the other way; "
        "McNemar p < 0.001 (chi-square): B is significantly more accurate at α = 0.05."
    )


def test_nothing_paired():
    a, _ = rows_with("RA", prefix="a")
    _, b = rows_with("RBW", prefix="b")
    cmp = pair_answers(a, b)
    assert cmp.pairs == () and (cmp.unpaired_a, cmp.unpaired_b) == (2, 3)
    assert cmp.accuracy_a is None and cmp.accuracy_b is None and cmp.mcnemar.p_value == 1.0
    assert cmp.verdict() == (
        "No question was answered by both runs (2 only in A, 3 only in B): nothing to compare."
    )


def test_jsonl_rows_have_stable_keys_and_include_unpaired():
    a = [AnswerRow("p1", 0, "4", True, "2+2", "4", "easy"), AnswerRow("p2", 0, "7", False)]
    b = [AnswerRow("p1", 0, "5", False, "2+2", "4", "easy"), AnswerRow("p3", 0, None, False)]
    rows = pair_answers(a, b).to_jsonl_rows()
    assert all(list(row) == KEYS for row in rows)
    assert rows == [
        dict(zip(KEYS, ["p1", 0, "easy", "2+2", "4", "only_a", "4", "5", True, False])),
        dict(zip(KEYS, ["p2", 0, None, None, None, "only_in_a", "7", None, False, None])),
        dict(zip(KEYS, ["p3", 0, None, None, None, "only_in_b", None, None, None, False])),
    ]
    assert [json.loads(json.dumps(row)) for row in rows] == rows
