"""Answer-by-answer comparison of two graded runs, with McNemar's test on the disagreements.

Rows pair by ``(prompt_id, sample)``, where ``sample`` is the 0-based index of an answer among
those to the same prompt, in request order. A row whose key is in only one run is unpaired: it
is kept in ``only_in_a`` / ``only_in_b`` and exported, but counts nowhere else. Each pair falls
in one cell of the 2×2 table

                     B right        B wrong
    A right        both_right       only_a  (= b)
    A wrong          only_b (= c)   both_wrong

and accuracies are over the paired rows only. Both runs answered the same questions, so their
accuracies are not independent samples and a two-proportion test would be wrong; only the
discordant pairs carry evidence (McNemar 1947, "Note on the sampling error of the difference
between correlated proportions or percentages", Psychometrika 12). Under the null hypothesis
each of the n = b + c discordant pairs is equally likely to go either way, so

- n < 25: exact two-sided binomial test, p = min(1, 2·P[X ≤ min(b, c)]) with X ~ Bin(n, ½),
  computed in integers as Σ_{i ≤ min(b,c)} C(n, i) / 2^(n−1); ``statistic`` is min(b, c).
- n ≥ 25: chi-square with Edwards' continuity correction, statistic = (|b − c| − 1)² / n, and
  with one degree of freedom p = P[χ²₁ ≥ statistic] = erfc(√(statistic / 2)).
- n = 0: nothing disagrees, p = 1 (method "exact", statistic 0).

The 25 cut-off and the correction follow common practice (e.g. statsmodels' ``mcnemar``).

``AnswerComparison.to_jsonl_rows()`` gives one dict per row, paired rows first (in run A's
order), then A's unpaired rows, then B's, each with exactly these keys:

    prompt_id   str
    sample      int           0-based answer index within the prompt
    subset      str | None    from A, else B
    problem     str | None    from A, else B
    gold        str | None    from A, else B
    outcome     str           both_right | only_a | only_b | both_wrong | only_in_a | only_in_b
    pred_a      str | None    None when A has no answer (or no such row)
    pred_b      str | None
    correct_a   bool | None   None only when the row is missing from A
    correct_b   bool | None   None only when the row is missing from B

Example::

    cmp = pair_answers(rows_a, rows_b)
    print(cmp.verdict())  # "A is right on 12 questions B gets wrong and B on 4 ..."
    cmp.mcnemar.p_value, cmp.by_subset["algebra"].only_a
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from perfbench.config import GradeSpec
from perfbench.errors import UsageError
from perfbench.grade.run import grade_run, problem_text
from perfbench.grade.scores import OVERALL
from perfbench.store import Run, Store

if TYPE_CHECKING:
    from rich.console import RenderableType

EXACT_BELOW = 25
"""McNemar uses the exact binomial test while b + c is below this, the chi-square from it on."""

Outcome = Literal["both_right", "only_a", "only_b", "both_wrong"]


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """One graded answer of a run; ``sample`` is its 0-based index among the prompt's answers."""

    prompt_id: str
    sample: int
    pred: str | None
    correct: bool
    problem: str | None = None
    gold: str | None = None
    subset: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerPair:
    """The same question answered by both runs."""

    prompt_id: str
    sample: int
    subset: str | None
    problem: str | None
    gold: str | None
    pred_a: str | None
    pred_b: str | None
    correct_a: bool
    correct_b: bool

    @property
    def outcome(self) -> Outcome:
        if self.correct_a:
            return "both_right" if self.correct_b else "only_a"
        return "only_b" if self.correct_b else "both_wrong"


@dataclass(frozen=True, slots=True)
class McNemar:
    """McNemar's test on b (only A right) against c (only B right); see the module docstring."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: Literal["exact", "chi-square"]

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether A and B differ in accuracy at level ``alpha`` (two-sided)."""
        _check_alpha(alpha)
        return self.p_value < alpha

    def verdict(self, alpha: float = 0.05) -> str:
        """One sentence: the discordant counts, the p-value and what they mean at ``alpha``."""
        _check_alpha(alpha)
        if self.significant(alpha):
            better = "A" if self.b > self.c else "B"
            meaning = f"{better} is significantly more accurate at α = {alpha:g}."
        else:
            meaning = f"no significant difference at α = {alpha:g}."
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        return (
            f"A is right on {_questions(self.b)} B gets wrong and B on {self.c} the other way; "
            f"McNemar {p} ({self.method}): {meaning}"
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """The 2×2 table of paired outcomes, for a whole comparison or one subset."""

    both_right: int = 0
    only_a: int = 0
    only_b: int = 0
    both_wrong: int = 0

    @property
    def n(self) -> int:
        return self.both_right + self.only_a + self.only_b + self.both_wrong

    @property
    def accuracy_a(self) -> float | None:
        """Share of paired rows A got right; None when nothing paired."""
        return (self.both_right + self.only_a) / self.n if self.n else None

    @property
    def accuracy_b(self) -> float | None:
        return (self.both_right + self.only_b) / self.n if self.n else None

    def mcnemar(self) -> McNemar:
        return mcnemar(self.only_a, self.only_b)

    @classmethod
    def of(cls, pairs: Iterable[AnswerPair]) -> Counts:
        tally = dict.fromkeys(("both_right", "only_a", "only_b", "both_wrong"), 0)
        for pair in pairs:
            tally[pair.outcome] += 1
        return cls(**tally)


@dataclass(frozen=True, slots=True)
class AnswerComparison:
    """Result of :func:`pair_answers`; the counts and accuracies cover paired rows only."""

    pairs: tuple[AnswerPair, ...]
    only_in_a: tuple[AnswerRow, ...]
    only_in_b: tuple[AnswerRow, ...]
    counts: Counts
    by_subset: dict[str | None, Counts]
    mcnemar: McNemar

    @property
    def both_right(self) -> int:
        return self.counts.both_right

    @property
    def only_a(self) -> int:
        return self.counts.only_a

    @property
    def only_b(self) -> int:
        return self.counts.only_b

    @property
    def both_wrong(self) -> int:
        return self.counts.both_wrong

    @property
    def unpaired_a(self) -> int:
        return len(self.only_in_a)

    @property
    def unpaired_b(self) -> int:
        return len(self.only_in_b)

    @property
    def accuracy_a(self) -> float | None:
        return self.counts.accuracy_a

    @property
    def accuracy_b(self) -> float | None:
        return self.counts.accuracy_b

    def significant(self, alpha: float = 0.05) -> bool:
        return self.mcnemar.significant(alpha)

    def verdict(self, alpha: float = 0.05) -> str:
        if not self.pairs:
            return (
                f"No question was answered by both runs ({self.unpaired_a} only in A, "
                f"{self.unpaired_b} only in B): nothing to compare."
            )
        return self.mcnemar.verdict(alpha)

    def to_jsonl_rows(self) -> list[dict[str, Any]]:
        """One dict per row, with the stable keys listed in the module docstring."""
        rows = [
            _export(p, p.outcome, p.pred_a, p.pred_b, p.correct_a, p.correct_b) for p in self.pairs
        ]
        rows += [_export(r, "only_in_a", r.pred, None, r.correct, None) for r in self.only_in_a]
        rows += [_export(r, "only_in_b", None, r.pred, None, r.correct) for r in self.only_in_b]
        return rows


def pair_answers(a: Sequence[AnswerRow], b: Sequence[AnswerRow]) -> AnswerComparison:
    """Pair the rows of runs A and B by ``(prompt_id, sample)`` and test their difference.

    Raises ValueError when one run holds the same ``(prompt_id, sample)`` twice.
    """
    by_key_a, by_key_b = _index(a, "A"), _index(b, "B")
    pairs = tuple(_pair(row, by_key_b[key]) for key, row in by_key_a.items() if key in by_key_b)
    only_in_a = tuple(row for key, row in by_key_a.items() if key not in by_key_b)
    only_in_b = tuple(row for key, row in by_key_b.items() if key not in by_key_a)
    subsets = sorted({p.subset for p in pairs}, key=lambda s: (s is None, s or ""))
    by_subset = {s: Counts.of(p for p in pairs if p.subset == s) for s in subsets}
    counts = Counts.of(pairs)
    return AnswerComparison(pairs, only_in_a, only_in_b, counts, by_subset, counts.mcnemar())


def mcnemar(b: int, c: int) -> McNemar:
    """McNemar's test for b pairs only A got right against c only B got right.

    Exact binomial below ``EXACT_BELOW`` discordant pairs, continuity-corrected chi-square from
    there on (module docstring). Integer arithmetic keeps both exact and overflow-free at any n.
    """
    if b < 0 or c < 0:
        raise ValueError(f"McNemar needs counts >= 0 (b={b}, c={c})")
    n = b + c
    if n < EXACT_BELOW:
        k = min(b, c)
        # 2·P[X ≤ k] = Σ C(n, i) / 2^(n−1); int / int rounds correctly however large.
        tail = sum(math.comb(n, i) for i in range(k + 1))
        p = 1.0 if n == 0 else min(1.0, tail / 2 ** (n - 1))
        return McNemar(b, c, float(k), p, "exact")
    statistic = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, statistic, math.erfc(math.sqrt(statistic / 2)), "chi-square")


def _index(rows: Sequence[AnswerRow], run: str) -> dict[tuple[str, int], AnswerRow]:
    index: dict[tuple[str, int], AnswerRow] = {}
    for row in rows:
        key = (row.prompt_id, row.sample)
        if key in index:
            raise ValueError(
                f"run {run} has two answers for prompt {row.prompt_id!r} sample {row.sample}: "
                "number each prompt's answers 0, 1, … in request order"
            )
        index[key] = row
    return index


def _pair(a: AnswerRow, b: AnswerRow) -> AnswerPair:
    return AnswerPair(
        prompt_id=a.prompt_id,
        sample=a.sample,
        subset=a.subset if a.subset is not None else b.subset,
        problem=a.problem if a.problem is not None else b.problem,
        gold=a.gold if a.gold is not None else b.gold,
        pred_a=a.pred,
        pred_b=b.pred,
        correct_a=a.correct,
        correct_b=b.correct,
    )


def _export(
    row: AnswerPair | AnswerRow,
    outcome: str,
    pred_a: str | None,
    pred_b: str | None,
    correct_a: bool | None,
    correct_b: bool | None,
) -> dict[str, Any]:
    return {
        "prompt_id": row.prompt_id,
        "sample": row.sample,
        "subset": row.subset,
        "problem": row.problem,
        "gold": row.gold,
        "outcome": outcome,
        "pred_a": pred_a,
        "pred_b": pred_b,
        "correct_a": correct_a,
        "correct_b": correct_b,
    }


def _questions(count: int) -> str:
    return f"{count} question" if count == 1 else f"{count} questions"


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (got {alpha})")


# -- two runs of a database ------------------------------------------------------------------


def answer_rows(store: Store, run: Run) -> list[AnswerRow]:
    """A graded run's answers, the latest grade of each request (empty: never graded)."""
    return [
        AnswerRow(
            prompt_id=g.prompt_id,
            sample=g.sample,
            pred=g.pred,
            correct=bool(g.correct),
            problem=problem_text(json.loads(g.metadata) if g.metadata else {}, g.text, g.messages),
            gold=g.gold,
            subset=g.subset,
        )
        for g in store.latest_grades(run.id)
    ]


@dataclass(frozen=True)
class AnswersResult:
    """What :func:`compare_answers` returns: the two runs, their comparison at ``alpha``, and
    the runs that had to be graded first."""

    run_a: Run
    run_b: Run
    comparison: AnswerComparison
    graded_now: tuple[int, ...]
    alpha: float = 0.05
    show: str = "differ"  # questions the table lists: differ, all or none

    def to_dict(self) -> dict[str, Any]:
        cmp, alpha = self.comparison, self.alpha

        def counts(c: Counts) -> dict[str, Any]:
            test = c.mcnemar()
            return {
                "both_right": c.both_right,
                "only_a": c.only_a,
                "only_b": c.only_b,
                "both_wrong": c.both_wrong,
                "accuracy_a": c.accuracy_a,
                "accuracy_b": c.accuracy_b,
                "mcnemar": {
                    "statistic": test.statistic,
                    "p_value": test.p_value,
                    "method": test.method,
                },
            }

        return {
            "run_a": {"id": self.run_a.id, "model": self.run_a.model},
            "run_b": {"id": self.run_b.id, "model": self.run_b.model},
            "alpha": alpha,
            "unpaired_a": cmp.unpaired_a,
            "unpaired_b": cmp.unpaired_b,
            **counts(cmp.counts),
            "significant": cmp.significant(alpha),
            "verdict": cmp.verdict(alpha),
            "by_subset": {str(k): counts(v) for k, v in cmp.by_subset.items()},
        }

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per question and sample (the ``--jsonl`` rows)."""
        return self.comparison.to_jsonl_rows()

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        cmp, run_a, run_b, show = self.comparison, self.run_a, self.run_b, self.show
        parts: list[RenderableType] = []
        if show != "none":
            listed = [p for p in cmp.pairs if show == "all" or p.correct_a != p.correct_b]
            if listed:
                table = Table(title="Questions", title_justify="left")
                for name in ("Question", "Sample", "Subset", "Gold", "A", "B", "Outcome"):
                    table.add_column(name)
                for p in listed:
                    table.add_row(  # Text, not str: model output is never read as rich markup
                        Text(p.prompt_id),
                        str(p.sample),
                        Text(p.subset or ""),
                        Text(p.gold or ""),
                        _mark(p.pred_a, p.correct_a),
                        _mark(p.pred_b, p.correct_b),
                        p.outcome,
                    )
                parts.append(table)
        a = f"A = run {run_a.id} ({run_a.model or '?'})"
        b = f"B = run {run_b.id} ({run_b.model or '?'})"
        table = Table(title=escape(f"{a}, {b}"), title_justify="left")
        for name in (
            "Subset",
            "Both right",
            "Only A",
            "Only B",
            "Both wrong",
            "Acc A",
            "Acc B",
            "p",
        ):
            table.add_column(name, justify="left" if name == "Subset" else "right")
        rows: list[tuple[str, Counts]] = [(str(k), v) for k, v in cmp.by_subset.items()]
        if len(rows) > 1 or (rows and rows[0][0] != "None"):
            rows.append((OVERALL, cmp.counts))
        else:
            rows = [(OVERALL, cmp.counts)]
        for name, c in rows:
            table.add_row(
                Text(name),
                str(c.both_right),
                str(c.only_a),
                str(c.only_b),
                str(c.both_wrong),
                "" if c.accuracy_a is None else f"{c.accuracy_a:.4f}",
                "" if c.accuracy_b is None else f"{c.accuracy_b:.4f}",
                f"{c.mcnemar().p_value:.4g}",
                style="bold" if name == OVERALL else None,
            )
        parts.append(table)
        if cmp.unpaired_a or cmp.unpaired_b:
            parts.append(
                Text(
                    f"{cmp.unpaired_a} answers only in A and {cmp.unpaired_b} only in B "
                    "are not compared."
                )
            )
        parts.append(Text(cmp.verdict(self.alpha)))
        return Group(*parts)


def _mark(pred: str | None, correct: bool | None) -> Any:
    from rich.text import Text

    label = "—" if pred is None else pred
    return Text(f"{'✓' if correct else '✗'} {label}", style="green" if correct else "red")


def compare_answers(
    db_path: str | Path,
    run_a: str,
    run_b: str,
    spec: GradeSpec | None = None,
    *,
    alpha: float = 0.05,
    show: str = "differ",
) -> AnswersResult:
    """Compare two runs' answers question by question, the library face of ``perfbench
    compare-answers``. A run not yet graded is graded first, with ``spec`` (default: each
    dataset's own grader); ``graded_now`` names those runs.

    >>> r = compare_answers("outputs/perfbench.db", "3", "4")   # doctest: +SKIP
    >>> r.comparison.mcnemar.p_value, r.comparison.verdict()
    """
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha {alpha} must be between 0 and 1, e.g. 0.05")
    store = Store(db_path)
    try:
        sides: list[tuple[Run, list[AnswerRow]]] = []
        graded_now: list[int] = []
        for selector in (run_a, run_b):
            runs = store.find([selector])
            if len(runs) != 1:
                raise UsageError(f"{selector!r} names {len(runs)} runs; give one run id")
            rows = answer_rows(store, runs[0])
            if not rows:
                grade_run(store, runs[0], spec or GradeSpec())
                graded_now.append(runs[0].id)
                rows = answer_rows(store, runs[0])
            sides.append((runs[0], rows))
    finally:
        store.close()
    (a, rows_a), (b, rows_b) = sides
    return AnswersResult(a, b, pair_answers(rows_a, rows_b), tuple(graded_now), alpha, show)
