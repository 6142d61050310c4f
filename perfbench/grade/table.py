"""The score table eval users know: Model | Dataset | Metric | Subset | Num | Score.

Metrics, per dataset and subset (then ``OVERALL``), over questions (prompt ids):

* ``AveragePass@1``: the share of correct samples (with one sample per question: accuracy; with
  the same number of samples for every question, the mean of the questions' shares).
* ``pass@k`` (k ≥ 2, when questions have at least k samples): the unbiased estimator
  1 − C(n−c, k)/C(n, k), averaged over the questions that have k samples or more.
* ``maj@k``: the share of questions whose most common extracted answer among their first k
  samples is graded correct (answers compared as extracted strings, whitespace trimmed; a
  missing answer is a vote for "no answer").

``Num`` is the number of samples (AveragePass@1) or questions (pass@k, maj@k) the row averages
over; scores are fractions (0–1).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from perfbench.grade.passk import maj_at_k, mean_pass_at_k

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from perfbench.grade.compare import AnswerComparison, Counts
    from perfbench.grade.run import GradeReport, Sample
    from perfbench.store.runs import Run

OVERALL = "OVERALL"


@dataclass(frozen=True, slots=True)
class ScoreRow:
    model: str
    dataset: str
    metric: str
    subset: str
    num: int
    score: float


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
        parts.append((OVERALL, group))
        questions_all = _questions(group)
        n_max = max(len(q) for q in questions_all.values())
        metrics: list[tuple[str, int | None]] = [("AveragePass@1", None)]
        metrics += [(f"pass@{k}", k) for k in _ks(n_max, ks)]
        if n_max >= 2:
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


# -- output ---------------------------------------------------------------------------------------


def score_table(reports: Sequence[GradeReport]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Grades", title_justify="left")
    for name in ("Run", "Model", "Dataset", "Metric", "Subset", "Num", "Score"):
        table.add_column(name, justify="right" if name in ("Num", "Score", "Run") else "left")
    for report in reports:
        for row in report.scores:
            style = "bold" if row.subset == OVERALL else None
            table.add_row(  # Text: names from the server or a dataset are not rich markup
                str(report.run.id),
                Text(row.model),
                Text(row.dataset),
                row.metric,
                Text(row.subset),
                str(row.num),
                f"{row.score:.4f}",
                style=style,
            )
    return table


def notes(report: GradeReport) -> list[str]:
    """What a reader should know before trusting the scores."""
    out = list(report.notes)
    if report.failed_requests:
        out.append(
            f"run {report.run.id}: {report.failed_requests} requests failed and are graded wrong "
            "(`perfbench report --errors` lists why)"
        )
    if report.grader_errors:
        out.append(
            f"run {report.run.id}: {report.grader_errors} answers could not be graded (timeout or "
            "parse error) and count as wrong; the samples export shows which"
        )
    unformatted = sum(1 for s in report.samples if s.status == "ok" and not s.verdict.format_ok)
    if unformatted:
        out.append(
            f"run {report.run.id}: {unformatted} of {len(report.samples)} answers had no answer "
            "in the expected form (no \\boxed{}, letter or number); truncated by --max-tokens? "
            "thinking in the content? try --remove-until '</think>'"
        )
    return out


def to_json(reports: Sequence[GradeReport]) -> str:
    return json.dumps(
        {
            "schema_version": 1,
            "runs": [
                {
                    "run_id": r.run.id,
                    "model": r.run.model,
                    "samples": len(r.samples),
                    "failed_requests": r.failed_requests,
                    "grader_errors": r.grader_errors,
                    "scores": [asdict(s) for s in r.scores],
                    "thinking": [dict(t) for t in r.thinking],
                    "notes": notes(r),
                }
                for r in reports
            ],
        },
        indent=2,
    )


def sample_rows(report: GradeReport) -> list[dict[str, Any]]:
    """The per-sample export (``perfbench grade --samples FILE``), one dict per answer."""
    out = []
    for s in report.samples:
        out.append(
            {
                "run_id": report.run.id,
                "idx": s.idx,
                "unique_id": s.prompt_id,
                "sample": s.sample,
                "dataset": s.dataset,
                "subset": s.subset,
                "subject": s.metadata.get("subject"),
                "level": s.metadata.get("level"),
                "problem": s.problem,
                "gold": s.gold,
                "pred": s.verdict.pred,
                "pred_text": s.output,
                "correct": s.verdict.correct,
                "format_ok": s.verdict.format_ok,
                "grader": s.grader,
                "error": s.verdict.error,
            }
        )
    return out


_THINK_COLUMNS = (
    ("Dataset", "dataset"),
    ("Subset", "subset"),
    ("Num", "num"),
    ("Tokens T", "reasoning_tokens"),
    ("First correct T̂", "first_correct_tokens"),
    ("Reflection T−T̂", "reflection_tokens"),
    ("Efficiency T̂/T", "efficiency"),
    ("Thoughts", "thought_count"),
    ("Accuracy", "accuracy"),
)


def thinking_table(report: GradeReport) -> Table:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    rows = report.thinking
    method = rows[0]["method"] if rows else ""
    source = rows[0]["token_source"] if rows else ""
    table = Table(
        title=escape(
            f"Thinking efficiency, run {report.run.id} (steps+judge: {method}; tokens: {source})"
        ),
        title_justify="left",
    )
    for title, key in _THINK_COLUMNS:
        table.add_column(title, justify="left" if key in ("dataset", "subset") else "right")
    for row in rows:
        cells: list[str | Text] = []
        for _, key in _THINK_COLUMNS:
            value = row[key]
            if key in ("dataset", "subset"):
                cells.append(Text(str(value)))
            elif value is None:
                cells.append("—")
            elif key in ("efficiency", "accuracy"):
                cells.append(f"{value:.4f}")
            elif isinstance(value, float):
                cells.append(f"{value:.1f}")
            else:
                cells.append(str(value))
        table.add_row(*cells, style="bold" if row["subset"] == OVERALL else None)
    return table


# -- compare-answers ------------------------------------------------------------------------------


def comparison_json(cmp: AnswerComparison, run_a: Run, run_b: Run, alpha: float) -> str:
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

    return json.dumps(
        {
            "schema_version": 1,
            "run_a": {"id": run_a.id, "model": run_a.model},
            "run_b": {"id": run_b.id, "model": run_b.model},
            "alpha": alpha,
            "unpaired_a": cmp.unpaired_a,
            "unpaired_b": cmp.unpaired_b,
            **counts(cmp.counts),
            "significant": cmp.significant(alpha),
            "verdict": cmp.verdict(alpha),
            "by_subset": {str(k): counts(v) for k, v in cmp.by_subset.items()},
        },
        indent=2,
    )


def print_comparison(
    cmp: AnswerComparison, run_a: Run, run_b: Run, alpha: float, *, show: str = "differ"
) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    console = Console()
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
            console.print(table)
    a = f"A = run {run_a.id} ({run_a.model or '?'})"
    b = f"B = run {run_b.id} ({run_b.model or '?'})"
    table = Table(title=escape(f"{a}, {b}"), title_justify="left")
    for name in ("Subset", "Both right", "Only A", "Only B", "Both wrong", "Acc A", "Acc B", "p"):
        table.add_column(name, justify="left" if name == "Subset" else "right")
    parts: list[tuple[str, Counts]] = [(str(k), v) for k, v in cmp.by_subset.items()]
    if len(parts) > 1 or (parts and parts[0][0] != "None"):
        parts.append((OVERALL, cmp.counts))
    else:
        parts = [(OVERALL, cmp.counts)]
    for name, c in parts:
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
    console.print(table)
    if cmp.unpaired_a or cmp.unpaired_b:
        console.print(
            f"{cmp.unpaired_a} answers only in A and {cmp.unpaired_b} only in B are not compared."
        )
    console.print(cmp.verdict(alpha), markup=False, highlight=False)


def _mark(pred: str | None, correct: bool | None) -> Text:
    from rich.text import Text

    label = "—" if pred is None else pred
    return Text(f"{'✓' if correct else '✗'} {label}", style="green" if correct else "red")
