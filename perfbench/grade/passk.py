"""Sampling metrics over several answers per question: AveragePass@1, unbiased pass@k, maj@k.

pass@k is the probability that at least one of k answers drawn without replacement from the n
sampled for a question is correct. With c correct among n, the unbiased estimator (Chen et al.
2021, "Evaluating Large Language Models Trained on Code", eq. 1) is

    pass@k = 1 − C(n − c, k) / C(n, k)

computed as a running product, 1 − Π_{i=n−c+1}^{n} (1 − k/i), which stays exact in floating
point where the binomials would overflow. It is averaged over questions. AveragePass@1 is its
k = 1 case, the mean share of correct samples. maj@k takes the first k samples of a question,
keeps the most common extracted answer (ties: the one seen first) and scores that one answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one question with ``c`` correct of ``n`` samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(results: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over questions; ``results[q]`` holds the correctness of q's samples."""
    if not results:
        raise ValueError("pass@k over no questions")
    return sum(pass_at_k(len(r), sum(r), k) for r in results) / len(results)


def majority(answers: Sequence[Hashable], k: int | None = None) -> Hashable:
    """The most common of the first ``k`` answers (all when None); ties go to the earliest."""
    pool = list(answers[: k if k is not None else len(answers)])
    if not pool:
        raise ValueError("a majority vote needs at least one answer")
    counts = Counter(pool)
    best = max(counts.values())
    return next(a for a in pool if counts[a] == best)


def maj_at_k(samples: Sequence[Sequence[tuple[Hashable, bool]]], k: int) -> float:
    """Share of questions whose majority answer among the first k samples is correct.

    ``samples[q]`` is a list of (normalised answer, correct?) pairs; answers that are equal
    must compare equal (normalise them first, e.g. with the grader's canonical form).
    """
    if not samples:
        raise ValueError("maj@k over no questions")
    score = 0
    for pairs in samples:
        if len(pairs) < k:
            raise ValueError(f"maj@{k} needs {k} samples per question, one has {len(pairs)}")
        winner = majority([a for a, _ in pairs], k)
        score += next(ok for a, ok in pairs[:k] if a == winner)
    return score / len(samples)
