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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfbench.config import GradeSpec, ThinkSpec, WorkloadSpec
from perfbench.errors import PerfbenchError, UsageError
from perfbench.grade import code, extract, graders, records, scores, think
from perfbench.grade.pool import run_tasks
from perfbench.grade.records import GradeReport, Sample
from perfbench.store.runs import Run, Store, now_iso
from perfbench.workload.base import last_user_text

if TYPE_CHECKING:
    from rich.console import RenderableType


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


def grade_run(
    store: Store,
    run: Run,
    spec: GradeSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> GradeReport:
    """Grade one run's answers; store the grades; return them with the score table."""
    rows = store.answers_to_grade(run.id)
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
    code_tasks: list[code.CodeTask] = []
    for row in rows:
        grader = spec.grader or row.grader or "exact"
        meta = json.loads(row.metadata) if row.metadata else {}
        infos.append(
            {
                "idx": row.idx,
                "prompt_id": row.prompt_id,
                "sample": samples_seen.get(row.prompt_id, 0),
                "dataset": row.dataset or run.workload.get("dataset") or "",
                "subset": row.subset,
                "grader": grader,
                "gold": row.gold,
                "status": row.status,
                "output": row.output,
                "reasoning": row.reasoning,
                "reasoning_tokens": row.reasoning_tokens,
                "completion_tokens": row.completion_tokens,
                "metadata": meta,
                "problem": problem_text(meta, row.text, row.messages),
            }
        )
        samples_seen[row.prompt_id] = samples_seen.get(row.prompt_id, 0) + 1
        if grader == "code":
            tests = meta.get("code")
            if not isinstance(tests, dict):
                raise UsageError(
                    f"--grader code runs a problem's tests, and run {run.id}'s "
                    f"{infos[-1]['dataset'] or 'prompts'} have none: grade a code dataset "
                    "(humaneval, live_code_bench) with it"
                )
            if row.status == "ok":
                code_tasks.append(
                    code.task_for(row.idx, row.output or "", spec.remove_until, tests)
                )
            continue
        if row.status == "ok":
            tasks.append(
                GradeTask(
                    idx=row.idx,
                    grader=grader,
                    output=row.output or "",
                    reasoning=row.reasoning or None,
                    gold=row.gold,
                    choices=tuple(json.loads(row.choices)) if row.choices else None,
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
    if code_tasks:
        code_tasks = _with_tests(run, code_tasks)
        ran = code.grade_code(code_tasks, workers=spec.workers)
        verdicts.update({t.idx: v for t, v in zip(code_tasks, ran, strict=True)})
    steps = {t.idx: r for t, r in zip(tasks[n_answers:], results[n_answers:], strict=True)}
    samples = []
    for info in infos:
        verdict = verdicts.get(info["idx"])
        if not isinstance(verdict, graders.Verdict):
            verdict = graders.Verdict(None, False, False, f"request failed ({info['status']})")
        samples.append(Sample(verdict=verdict, **info))
    _store_grades(store, run.id, samples)
    report = GradeReport(run, samples)
    if code_tasks:
        note = code.protections_note()
        if note:
            report.notes.append(f"run {run.id}: {note}")
    report.scores = scores.score_rows(samples, model=run.model or "", ks=spec.ks)
    report.notes += scores.k_notes(samples, spec.ks)
    if think_spec is not None:
        answered = [s for s in samples if s.status == "ok"]
        found = [steps.get(s.idx) for s in answered]
        try:
            report.thinking = _thinking(store, run, think_spec, answered, found, report.notes)
        except PerfbenchError as exc:  # the judge went away mid-pass: keep the grades
            report.notes.append(f"run {run.id}: no thinking figures: {exc}")
    return report


def _with_tests(run: Run, tasks: list[code.CodeTask]) -> list[code.CodeTask]:
    """Tasks whose problem's tests were too big for the database, with the tests read again
    from the run's dataset file (or the hub's cache)."""

    def lacking(t: code.CodeTask) -> bool:
        return t.spec.get("tests") is None and "id" in t.spec

    wanted = {str(t.spec["id"]) for t in tasks if lacking(t)}
    if not wanted:
        return tasks
    from perfbench.workload.code import tests_for

    path = None
    if run.workload.get("dataset") == "live_code_bench":
        path = run.workload.get("dataset_path")
    for name, mixed, _ in run.workload.get("mix") or ():  # --mix live_code_bench=FILE
        if name == "live_code_bench":
            path = mixed
    found = tests_for(WorkloadSpec(dataset="live_code_bench", dataset_path=path), wanted)
    return [
        dataclasses.replace(t, spec={**t.spec, "tests": found[str(t.spec["id"])]})
        if lacking(t)
        else t
        for t in tasks
    ]


def _nothing_to_grade(store: Store, run: Run) -> str:
    if not store.prompt_count(run.id):
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
    store.put_thinking(stored)
    limits = {"max_think_tokens": spec.max_think_tokens, "count": spec.count}
    token_source = "+".join(sorted({row["token_source"] for row in stored}))
    out = []
    for dataset, members in rows.items():
        overall = [dataclasses.replace(r, subset=scores.OVERALL) for r in members]
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


def problem_text(meta: dict[str, Any], text: str | None, messages: str | None) -> str | None:
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
    store.put_grades(rows)


@dataclass(frozen=True)
class Grades:
    """What :func:`grade_runs` returns: one :class:`GradeReport` per run."""

    reports: tuple[GradeReport, ...]

    def __iter__(self) -> Iterator[GradeReport]:
        return iter(self.reports)

    def __len__(self) -> int:
        return len(self.reports)

    def to_dict(self) -> dict[str, Any]:
        return records.grades_dict(self.reports)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per score: run, model, dataset, metric, subset, num, score."""
        return [
            {"run_id": r.run.id, **dataclasses.asdict(row)}
            for r in self.reports
            for row in r.scores
        ]

    def sample_rows(self) -> list[dict[str, Any]]:
        """One row per graded answer (``perfbench grade --samples FILE``)."""
        return [row for r in self.reports for row in records.sample_rows(r)]

    def render(self, *, quiet: bool = False) -> RenderableType:
        from perfbench.grade.table import render

        return render(self.reports, quiet=quiet)


def grade_runs(
    db_path: str | Path,
    runs: Sequence[str] = (),
    spec: GradeSpec | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Grades:
    """Grade runs of a database by id or name (default: the latest batch); the library face of
    ``perfbench grade``. ``progress(done, total)`` is called as answers are graded.

    Grading starts worker processes with ``spawn``, which imports the calling script again in
    each worker: call this from under ``if __name__ == "__main__":`` in a script.

    >>> grades = grade_runs("outputs/perfbench.db", ["3"], GradeSpec(ks=(4,)))  # doctest: +SKIP
    >>> [(row.metric, row.score) for row in grades.reports[0].scores]
    """
    spec = spec or GradeSpec()
    if spec.think is not None and spec.think.tokenizer is not None:
        from perfbench.workload.tokenizers import load_tokenizer

        load_tokenizer(spec.think.tokenizer)  # a tokenizer that cannot load is a usage error
    store = Store(db_path)
    try:
        return Grades(
            tuple(grade_run(store, run, spec, progress=progress) for run in store.find(runs))
        )
    finally:
        store.close()
