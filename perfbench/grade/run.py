"""The grading pass over a recorded run: read its answers, grade them in workers, store, score.

``grade_run(store, run, spec)`` reads the run's measured requests whose prompt has a gold answer
(``requests`` joined to ``prompts``), grades every answer in the worker pool of :mod:`.pool`,
writes one ``grades`` row per (request, grader) (a re-grade replaces its own rows, so grading is
idempotent), and returns a :class:`GradeReport`: the per-sample grades and the score table.

A request that failed (no answer came back) is graded wrong with the error "request failed"
rather than left out, so that a server that drops 10% of its requests cannot look more
accurate for it; the report says how many there were.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfbench.config import GradeSpec, ThinkSpec
from perfbench.errors import PerfbenchError, UsageError
from perfbench.grade import extract, graders, table, think
from perfbench.grade.pool import run_tasks
from perfbench.store.runs import Run, Store, now_iso
from perfbench.workload.base import last_user_text


@dataclass(frozen=True, slots=True)
class GradeTask:
    """One answer to grade, or (``steps`` set) to search for its first correct step, as a
    worker receives it (plain, picklable data). The two are separate tasks, so that a long
    step search that overruns its time limit cannot cost the answer its grade."""

    idx: int
    grader: str
    output: str
    reasoning: str | None
    gold: str
    choices: tuple[str, ...] | None
    pattern: str | None
    remove_until: str | None
    steps: str | None = None  # "separator" or "keywords": a rule-based step search
    markers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Steps:
    """A step search's result: the steps and the first correct one (None: none found)."""

    split: think.StepSplit
    first: int | None


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
    verdict: graders.Verdict
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
    scores: list[Any] = field(default_factory=list)  # table.ScoreRow
    thinking: list[Any] = field(default_factory=list)  # think rows, when asked
    notes: list[str] = field(default_factory=list)  # what else a reader should know

    @property
    def failed_requests(self) -> int:
        return sum(1 for s in self.samples if s.status != "ok")

    @property
    def grader_errors(self) -> int:
        return sum(1 for s in self.samples if s.status == "ok" and s.verdict.error is not None)


def grade_task(task: GradeTask) -> graders.Verdict | Steps:
    """Worker entry (module-level, so that it pickles): grade the answer, or search its
    thinking for the first correct step."""
    if task.steps is not None:
        thinking, _ = think.thinking_text(task.reasoning, task.output)
        spans = think.split_steps(thinking, task.steps, task.markers)
        check = think.candidate_checker(task.grader, task.gold, task.choices)
        first = think.first_correct_step(thinking, spans, check)
        return Steps(think.StepSplit(tuple(spans), task.steps), first)
    text = task.output
    if task.reasoning is None:
        text = extract.remove_until(text, task.remove_until)
    return graders.grade(task.grader, text, task.gold, choices=task.choices, pattern=task.pattern)


def _failed(task: GradeTask, reason: str) -> graders.Verdict | Steps:
    if task.steps is not None:
        return Steps(think.StepSplit((), task.steps, f"no step search: {reason}"), None)
    return graders.Verdict(None, False, False, reason)


_ROWS_SQL = """
SELECT r.idx, r.prompt_id, r.status, r.output_text, r.reasoning_text, r.reasoning_tokens,
       CASE WHEN r.token_source = 'usage' THEN r.completion_tokens END,
       p.dataset, p.subset, p.grader, p.answer, p.choices, p.metadata, p.text, p.messages
FROM requests r JOIN prompts p ON p.run_id = r.run_id AND p.prompt_id = r.prompt_id
WHERE r.run_id = ? AND r.warmup = 0 AND p.answer IS NOT NULL
ORDER BY r.idx
"""


def grade_run(
    store: Store,
    run: Run,
    spec: GradeSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> GradeReport:
    """Grade one run's answers; store the grades; return them with the score table."""
    rows = store.db.conn.execute(_ROWS_SQL, [run.id]).fetchall()
    if not rows:
        raise UsageError(_nothing_to_grade(store, run))
    think_spec = spec.think
    if think_spec is not None and think_spec.judge_url is not None:
        from perfbench.grade.judge import resolve_model

        # before any work: a dead judge found now costs nothing
        think_spec = dataclasses.replace(think_spec, judge_model=resolve_model(think_spec))
    samples_seen: dict[str, int] = {}
    infos: list[dict[str, Any]] = []
    tasks: list[GradeTask] = []
    for row in rows:
        (idx, prompt_id, status, output, reasoning, reasoning_tokens, completion_tokens) = row[:7]
        (dataset, subset, own_grader, gold, choices, metadata, text, messages) = row[7:]
        grader = spec.grader or own_grader or "exact"
        meta = json.loads(metadata) if metadata else {}
        infos.append(
            {
                "idx": idx,
                "prompt_id": prompt_id,
                "sample": samples_seen.get(prompt_id, 0),
                "dataset": dataset or run.workload.get("dataset") or "",
                "subset": subset,
                "grader": grader,
                "gold": gold,
                "status": status,
                "output": output,
                "reasoning": reasoning,
                "reasoning_tokens": reasoning_tokens,
                "completion_tokens": completion_tokens,
                "metadata": meta,
                "problem": _problem(meta, text, messages),
            }
        )
        samples_seen[prompt_id] = samples_seen.get(prompt_id, 0) + 1
        if status == "ok":
            tasks.append(
                GradeTask(
                    idx=idx,
                    grader=grader,
                    output=output or "",
                    reasoning=reasoning or None,
                    gold=gold,
                    choices=tuple(json.loads(choices)) if choices else None,
                    pattern=spec.regex,
                    remove_until=spec.remove_until,
                )
            )
    n_answers = len(tasks)
    if think_spec is not None and think_spec.judge_url is None:
        tasks += [
            dataclasses.replace(t, steps=think_spec.steps, markers=think_spec.markers)
            for t in tasks
        ]
    results = run_tasks(
        grade_task,
        tasks,
        _failed,
        workers=spec.workers,
        timeout=spec.timeout,
        progress=None if progress is None else lambda n: progress(n, len(tasks)),
    )
    verdicts = {t.idx: r for t, r in zip(tasks[:n_answers], results, strict=False)}
    steps = {t.idx: r for t, r in zip(tasks[n_answers:], results[n_answers:], strict=True)}
    samples = []
    for info in infos:
        verdict = verdicts.get(info["idx"])
        if not isinstance(verdict, graders.Verdict):
            verdict = graders.Verdict(None, False, False, f"request failed ({info['status']})")
        samples.append(Sample(verdict=verdict, **info))
    _store_grades(store, run.id, samples)
    report = GradeReport(run, samples)
    report.scores = table.score_rows(samples, model=run.model or "", ks=spec.ks)
    report.notes += table.k_notes(samples, spec.ks)
    if think_spec is not None:
        answered = [s for s in samples if s.status == "ok"]
        found = [steps.get(s.idx) for s in answered]
        try:
            report.thinking = _thinking(store, run, think_spec, answered, found, report.notes)
        except PerfbenchError as exc:  # the judge went away mid-pass: keep the grades
            report.notes.append(f"run {run.id}: no thinking figures: {exc}")
    return report


def _nothing_to_grade(store: Store, run: Run) -> str:
    (prompts,) = store.db.conn.execute(
        "SELECT count(*) FROM prompts WHERE run_id = ?", [run.id]
    ).fetchone()
    if not prompts:
        return (
            f"run {run.id} has no stored prompts (it was recorded before perfbench kept them), "
            "so there is nothing to grade against; run the benchmark again"
        )
    return (
        f"run {run.id} has no answers to grade: its prompts carry no gold answers; "
        "benchmark an eval dataset (e.g. --dataset math_500, gsm8k, synthetic_math)"
    )


def _thinking(
    store: Store,
    run: Run,
    spec: ThinkSpec,
    answered: Sequence[Sample],
    found: Sequence[Steps | graders.Verdict | None],
    notes: list[str],
) -> list[dict[str, Any]]:
    """The thinking figures of each answer (stored) and their means per subset (returned)."""
    count_tokens = None
    if spec.tokenizer is not None:
        from perfbench.workload.tokenizers import load_tokenizer

        count_tokens = load_tokenizer(spec.tokenizer).count
    splits: list[tuple[think.StepSplit, int | None]]
    if spec.judge_url is not None:
        from perfbench.grade.judge import judge_steps

        items = [(s.reasoning, s.output, s.problem or "", s.gold) for s in answered]
        splits, unreadable = judge_steps(spec, items)
        if unreadable:
            notes.append(
                f"run {run.id}: the judge's reply could not be read for {unreadable} of "
                f"{len(items)} answers; they count as having no correct step (efficiency 0)"
            )
    else:
        splits = [
            (f.split, f.first) if isinstance(f, Steps) else (think.StepSplit((), spec.steps), None)
            for f in found
        ]
        missed = sum(1 for split, _ in splits if split.note)
        if missed:
            notes.append(
                f"run {run.id}: the step search did not finish for {missed} answers (e.g. "
                f"{next(sp.note for sp, _ in splits if sp.note)}); they count as efficiency 0"
            )
    graded = list(zip(answered, splits, strict=True))
    rows: dict[str, list[think.ThinkRow]] = {}  # per dataset, in request order
    stored: list[dict[str, Any]] = []
    stamp = now_iso()
    for s, (split, first) in graded:
        text, source = think.thinking_text(s.reasoning, s.output)
        figures = think.measure(
            text,
            source,
            split,
            first,
            markers=spec.markers,
            count_tokens=count_tokens,
            usage_reasoning_tokens=_reasoning_usage(s, text, source),
        )
        rows.setdefault(s.dataset, []).append(
            think.ThinkRow(s.subset or "", figures, s.verdict.correct)
        )
        stored.append(
            {
                "run_id": run.id,
                "idx": s.idx,
                "method": spec.method,
                "source": figures.source,
                "token_source": figures.token_source,
                "reasoning_tokens": figures.reasoning_tokens,
                "first_correct_tokens": figures.first_correct_tokens,
                "reflection_tokens": figures.reflection_tokens,
                "efficiency": figures.efficiency,
                "thought_count": figures.thought_count,
                "steps": len(figures.steps),
                "first_correct_step": figures.first_correct_step,
                "graded_at": stamp,
            }
        )
    with store.db.conn:
        store.db.table("thinking").insert_all(stored, batch_size=100, replace=True)
    limits = {"max_think_tokens": spec.max_think_tokens, "count": spec.count}
    token_source = "+".join(sorted({row["token_source"] for row in stored}))
    out = []
    for dataset, members in rows.items():
        overall = [dataclasses.replace(r, subset=table.OVERALL) for r in members]
        named = [g for g in think.aggregate(members, **limits) if g.subset]
        for summary in [*named, *think.aggregate(overall, **limits)]:
            out.append(
                {
                    "dataset": dataset,
                    "subset": summary.subset,
                    "method": spec.method,
                    "num": summary.num,
                    "over_limit": summary.over_limit,
                    "reasoning_tokens": summary.reasoning_tokens,
                    "first_correct_tokens": summary.first_correct_tokens,
                    "reflection_tokens": summary.reflection_tokens,
                    "efficiency": summary.efficiency,
                    "thought_count": summary.thought_count,
                    "accuracy": summary.accuracy,
                    "token_source": token_source,
                }
            )
    return out


def _reasoning_usage(s: Sample, text: str, source: str) -> int | None:
    """The server's count of the thinking tokens: its reasoning-token usage, or, for thinking
    inside ``<think>`` in the content, its completion tokens split by the thinking text's share of
    the characters (None when the server gave no usage)."""
    if s.reasoning_tokens:
        return s.reasoning_tokens
    if source == "think_tag" and s.completion_tokens and s.output:
        return round(s.completion_tokens * len(text) / len(s.output))
    return None


def _problem(meta: dict[str, Any], text: str | None, messages: str | None) -> str | None:
    for key in ("problem", "question"):
        if isinstance(meta.get(key), str):
            return str(meta[key])
    if text is not None:
        return text
    return last_user_text(json.loads(messages)) if messages else None


def _store_grades(store: Store, run_id: int, samples: Sequence[Sample]) -> None:
    stamp = now_iso()
    rows = [
        {
            "run_id": run_id,
            "idx": s.idx,
            "grader": s.grader,
            "prompt_id": s.prompt_id,
            "sample": s.sample,
            "pred": s.verdict.pred,
            "correct": int(s.verdict.correct),
            "format_ok": int(s.verdict.format_ok),
            "error": s.verdict.error,
            "graded_at": stamp,
        }
        for s in samples
    ]
    with store.db.conn:
        store.db.table("grades").insert_all(rows, batch_size=100, replace=True)


def grade_runs(
    db_path: str | Path,
    runs: Sequence[str] = (),
    spec: GradeSpec | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[GradeReport]:
    """Grade runs of a database by id or name (default: the latest batch); the library face of
    ``perfbench grade``.

    Grading starts worker processes with ``spawn``, which imports the calling script again in
    each worker: call this from under ``if __name__ == "__main__":`` in a script.
    """
    store = Store(db_path)
    try:
        return [
            grade_run(store, run, spec or GradeSpec(), progress=progress)
            for run in store.find(runs)
        ]
    finally:
        store.close()


def answer_rows(store: Store, run: Run) -> list[Any]:
    """A graded run's answers for :func:`.compare.compare_answers`, the latest grade of each
    request (empty when the run was never graded)."""
    from perfbench.grade.compare import AnswerRow

    rows = store.db.conn.execute(
        """
        SELECT g.prompt_id, g.sample, g.pred, g.correct, p.subset, p.answer, p.metadata,
               p.text, p.messages
        FROM grades g JOIN prompts p ON p.run_id = g.run_id AND p.prompt_id = g.prompt_id
        WHERE g.run_id = ? AND g.rowid = (
            SELECT h.rowid FROM grades h WHERE h.run_id = g.run_id AND h.idx = g.idx
            ORDER BY h.graded_at DESC, h.rowid DESC LIMIT 1)
        ORDER BY g.idx
        """,
        [run.id],
    ).fetchall()
    return [
        AnswerRow(
            prompt_id=prompt_id,
            sample=sample,
            pred=pred,
            correct=bool(correct),
            problem=_problem(json.loads(meta) if meta else {}, text, messages),
            gold=gold,
            subset=subset,
        )
        for prompt_id, sample, pred, correct, subset, gold, meta, text, messages in rows
    ]


def compare_answer_runs(
    db_path: str | Path, run_a: str, run_b: str, spec: GradeSpec | None = None
) -> tuple[Run, Run, Any, list[int]]:
    """The library face of ``perfbench compare-answers``: the two runs, their
    :class:`~perfbench.grade.compare.AnswerComparison`, and the ids of runs that had to be
    graded first (with ``spec``, default each dataset's own grader)."""
    from perfbench.grade.compare import compare_answers

    store = Store(db_path)
    try:
        sides: list[tuple[Run, list[Any]]] = []
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
    return a, b, compare_answers(rows_a, rows_b), graded_now
