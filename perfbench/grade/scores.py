"""The score table eval users know: Model | Dataset | Metric | Subset | Num | Score.

Metrics, per dataset and subset (then ``OVERALL``), over questions (prompt ids):

* ``AveragePass@1``: the share of correct samples (with one sample per question: accuracy; with
  the same number of samples for every question, the mean of the questions' shares).
* ``pass@k`` (k ≥ 2, when questions have at least k samples): the unbiased estimator
  1 − C(n−c, k)/C(n, k), averaged over the questions that have k samples or more.
* ``maj@k``: the share of questions whose most common extracted answer among their first k
  samples is graded correct (answers compared as extracted strings, whitespace trimmed; a
  missing answer is a vote for "no answer").

Code problems (LiveCodeBench) also get a row per contest quarter (``2024-Q3``), so that scores
before and after a model's training cutoff can be told apart; they have no maj@k (a program
has no answer to vote on).

``Num`` is the number of samples (AveragePass@1) or questions (pass@k, maj@k) the row averages
over; scores are fractions (0–1).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from perfbench.grade.passk import maj_at_k, mean_pass_at_k
from perfbench.grade.records import Sample, ScoreRow

OVERALL = "OVERALL"


def _ks(max_samples: int, ks: Sequence[int] | None) -> list[int]:
    if ks is not None:
        return sorted({k for k in ks if k <= max_samples})
    out, k = [], 2
    while k <= max_samples:
        out.append(k)
        k *= 2
    if max_samples >= 2 and max_samples not in out:
        out.append(max_samples)
    return out


def score_rows(
    samples: Sequence[Sample], *, model: str, ks: Sequence[int] | None
) -> list[ScoreRow]:
    by_dataset: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_dataset[s.dataset].append(s)
    rows: list[ScoreRow] = []
    for dataset, group in by_dataset.items():
        subsets = sorted({s.subset for s in group if s.subset is not None}, key=_natural)
        parts = [(name, [s for s in group if s.subset == name]) for name in subsets]
        windows = sorted({str(s.metadata["window"]) for s in group if s.metadata.get("window")})
        parts += [(w, [s for s in group if s.metadata.get("window") == w]) for w in windows]
        parts.append((OVERALL, group))
        questions_all = _questions(group)
        n_max = max(len(q) for q in questions_all.values())
        metrics: list[tuple[str, int | None]] = [("AveragePass@1", None)]
        metrics += [(f"pass@{k}", k) for k in _ks(n_max, ks)]
        if n_max >= 2 and not any(s.grader == "code" for s in group):  # no answer to vote on
            metrics.append((f"maj@{n_max}", -n_max))
        for metric, k in metrics:
            for subset, members in parts:
                questions = list(_questions(members).values())
                if k is None:  # the mean over samples, so Num counts samples
                    correct = sum(s.verdict.correct for s in members)
                    rows.append(
                        ScoreRow(
                            model, dataset, metric, subset, len(members), correct / len(members)
                        )
                    )
                elif k > 0:
                    eligible = [[s.verdict.correct for s in q] for q in questions if len(q) >= k]
                    if eligible:
                        rows.append(
                            ScoreRow(
                                model,
                                dataset,
                                metric,
                                subset,
                                len(eligible),
                                mean_pass_at_k(eligible, k),
                            )
                        )
                else:
                    votes = [
                        [(_vote(s), s.verdict.correct) for s in q]
                        for q in questions
                        if len(q) >= -k
                    ]
                    if votes:
                        rows.append(
                            ScoreRow(
                                model, dataset, metric, subset, len(votes), maj_at_k(votes, -k)
                            )
                        )
    return rows


def k_notes(samples: Sequence[Sample], ks: Sequence[int] | None) -> list[str]:
    """Why a pass@k asked for is missing, or why AveragePass@1 and per-question figures differ."""
    questions = _questions(samples)
    counts = {len(q) for q in questions.values()}
    out = []
    too_big = sorted(k for k in ks or () if k > max(counts))
    if too_big:
        out.append(
            f"pass@{', '.join(map(str, too_big))} not computed: questions have at most "
            f"{max(counts)} samples (--n on the run)"
        )
    if len(counts) > 1:
        out.append(
            f"questions have between {min(counts)} and {max(counts)} samples: AveragePass@1 is the "
            "mean over samples, pass@k over the questions with at least k"
        )
    return out


def _vote(s: Sample) -> str:
    return (s.verdict.pred or "").strip()


def _questions(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.idx):
        out[s.prompt_id].append(s)
    return out


def _natural(text: str) -> tuple[Any, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))
