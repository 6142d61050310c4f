"""What grading hands on: one graded answer (:class:`Sample`), one row of the score table
(:class:`ScoreRow`), and a run's whole result (:class:`GradeReport`), with its JSON forms.
Plain data: computing the scores is :mod:`.scores`' work, drawing them :mod:`.table`'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from perfbench.grade.graders import Verdict
from perfbench.store import Run


@dataclass(frozen=True, slots=True)
class ScoreRow:
    model: str
    dataset: str
    metric: str
    subset: str
    num: int
    score: float


@dataclass(frozen=True, slots=True)
class Sample:
    """One graded answer, with what the score table and the samples export need."""

    idx: int
    prompt_id: str
    sample: int  # the k-th answer to this prompt, in request order
    dataset: str
    subset: str | None
    grader: str
    gold: str
    verdict: Verdict
    status: str
    output: str | None
    reasoning: str | None
    reasoning_tokens: int | None
    completion_tokens: int | None  # from the server's usage (None: it gave none)
    metadata: dict[str, Any]
    problem: str | None


@dataclass
class GradeReport:
    run: Run
    samples: list[Sample]
    scores: list[ScoreRow] = field(default_factory=list)
    thinking: list[Any] = field(default_factory=list)  # think rows, when asked
    notes: list[str] = field(default_factory=list)  # what else a reader should know

    @property
    def failed_requests(self) -> int:
        return sum(1 for s in self.samples if s.status != "ok")

    @property
    def grader_errors(self) -> int:
        return sum(1 for s in self.samples if s.status == "ok" and s.verdict.error is not None)

    def all_notes(self) -> list[str]:
        """What a reader should know before trusting the scores."""
        out = list(self.notes)
        if self.failed_requests:
            out.append(
                f"run {self.run.id}: {self.failed_requests} requests failed and are graded wrong "
                "(`perfbench report --errors` lists why)"
            )
        if self.grader_errors:
            out.append(
                f"run {self.run.id}: {self.grader_errors} answers could not be graded (timeout or "
                "parse error) and count as wrong; the samples export shows which"
            )
        unformatted = sum(1 for s in self.samples if s.status == "ok" and not s.verdict.format_ok)
        if unformatted:
            out.append(
                f"run {self.run.id}: {unformatted} of {len(self.samples)} answers had no answer "
                "in the expected form (no \\boxed{}, letter or number); truncated by --max-tokens? "
                "thinking in the content? try --remove-until '</think>'"
            )
        return out


def grades_dict(reports: Sequence[GradeReport]) -> dict[str, Any]:
    """The grades' JSON document (``perfbench grade --json``), without its schema_version."""
    return {
        "runs": [
            {
                "run_id": r.run.id,
                "model": r.run.model,
                "samples": len(r.samples),
                "failed_requests": r.failed_requests,
                "grader_errors": r.grader_errors,
                "scores": [asdict(s) for s in r.scores],
                "thinking": [dict(t) for t in r.thinking],
                "notes": r.all_notes(),
            }
            for r in reports
        ],
    }


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
