"""The grading pass end to end: the killable worker pool, the grades table, the CLI commands."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from perfbench.grade.pool import run_tasks
from tests.conftest import perfbench, rows

# -- the worker pool ------------------------------------------------------------------------------


def _work(task: str) -> str:
    """Module-level, so that a spawned worker can import it."""
    if task == "hang":
        while True:  # a pathological answer: never returns, ignores everything but a kill
            time.sleep(1)
    if task == "die":
        os._exit(3)
    if task == "raise":
        raise RuntimeError("grader bug")
    return task.upper()


def _fail(task: str, reason: str) -> str:
    return f"failed: {reason}"


def test_pool_kills_an_overrunning_task_and_keeps_the_order() -> None:
    tasks = ["a", "hang", "b", "die", "c", "raise", "d"]
    started = time.monotonic()
    out = run_tasks(_work, tasks, _fail, workers=2, timeout=1.0)
    assert out[0::2] == ["A", "B", "C", "D"]
    assert out[1] == "failed: grading took longer than 1 s (killed)"
    assert out[3] == "failed: the grading worker died (exit code 3)"
    assert out[5] == "failed: RuntimeError: grader bug"
    assert time.monotonic() - started < 30  # the hang cost its timeout, not forever


def test_pool_with_no_tasks_starts_nothing() -> None:
    assert run_tasks(_work, [], _fail) == []


# -- the CLI over a recorded run ------------------------------------------------------------------


def _answers_file(tmp_path: Path) -> Path:
    """A small eval dataset whose gold answers the tests choose."""
    path = tmp_path / "qa.jsonl"
    lines = [
        {"id": f"q{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i), "grader": "numeric"}
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in lines))
    return path


def test_perf_grade_stores_one_grade_per_answer_and_regrading_replaces(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    data = _answers_file(tmp_path)
    done = perfbench(
        "perf", "--dataset", "jsonl", "--dataset-path", str(data), "--n", "2",
        "--parallel", "4", "--max-tokens", "16", "--grade", "--json", "--db", str(db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    scores = out["grades"]["runs"][0]["scores"]
    metrics = {s["metric"] for s in scores}
    assert {"AveragePass@1", "pass@2", "maj@2"} <= metrics
    first = rows(db, "SELECT idx, sample, correct, graded_at FROM grades ORDER BY idx")
    assert len(first) == 16
    assert [r[1] for r in first] == [0, 1] * 8  # the k-th answer to each prompt, in order
    again = perfbench("grade", "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    second = rows(db, "SELECT idx, sample, correct, graded_at FROM grades ORDER BY idx")
    assert [r[:3] for r in second] == [r[:3] for r in first]
    assert json.loads(again.stdout)["runs"][0]["scores"] == scores


def test_grade_exports_samples_and_counts_failed_requests_wrong(sim, tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    url = sim("--error-rate", "0.5", "--seed", "3")
    done = perfbench(
        "perf", "--url", url, "--dataset", "jsonl", "--dataset-path", str(_answers_file(tmp_path)),
        "--n", "4", "--parallel", "4", "--max-tokens", "8", "--db", str(db), "--quiet",
        "--max-error-rate", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    failed = rows(db, "SELECT count(*) FROM requests WHERE status != 'ok'")[0][0]
    assert failed > 0
    samples = tmp_path / "s.jsonl"
    graded = perfbench("grade", "--db", str(db), "--samples", str(samples))
    assert graded.returncode == 0, graded.stderr
    assert f"{failed} requests failed and are graded wrong" in graded.stdout
    exported = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(exported) == 32
    keys = {"idx", "unique_id", "subject", "level", "problem", "gold", "pred", "pred_text"}
    assert keys | {"correct", "format_ok", "grader"} <= set(exported[0])
    errors = [s for s in exported if s["error"] and s["error"].startswith("request failed")]
    assert len(errors) == failed and not any(s["correct"] for s in errors)
    assert exported[0]["problem"] == "What is 0 + 0?" and exported[0]["gold"] == "0"


def test_regex_grader_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    data = _answers_file(tmp_path)
    assert (
        perfbench(
            "perf",
            "--dataset",
            "jsonl",
            "--dataset-path",
            str(data),
            "--number",
            "8",
            "--parallel",
            "2",
            "--max-tokens",
            "8",
            "--db",
            str(db),
            "--quiet",
        ).returncode  # fmt: skip
        == 0
    )
    done = perfbench(
        "grade", "--db", str(db), "--grader", "regex", "--regex", r"(\w+)\W*$", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    graded = rows(db, "SELECT grader, pred, format_ok FROM grades WHERE grader = 'regex'")
    assert len(graded) == 8 and all(r[2] == 1 and r[1] for r in graded)
    bad = perfbench("grade", "--db", str(db), "--grader", "regex")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--regex" in bad.stderr


def test_grading_a_run_without_gold_answers_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    assert perfbench("perf", "--number", "4", "--db", str(db), "--quiet").returncode == 0
    done = perfbench("grade", "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no gold answers" in done.stderr
    assert "Traceback" not in done.stderr


def test_compare_answers_grades_what_is_ungraded_and_exports(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    data = _answers_file(tmp_path)
    for _ in range(2):
        done = perfbench(
            "perf", "--dataset", "jsonl", "--dataset-path", str(data), "--parallel", "2",
            "--max-tokens", "8", "--db", str(db), "--quiet",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    out = tmp_path / "cmp.jsonl"
    done = perfbench("compare-answers", "1", "2", "--db", str(db), "--json", "--jsonl", str(out))
    assert done.returncode == 0, done.stderr
    assert "was not graded; graded it first" in done.stderr
    result = json.loads(done.stdout)
    total = sum(result[k] for k in ("both_right", "only_a", "only_b", "both_wrong"))
    assert total == 8
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8 and {"pred_a", "pred_b", "outcome"} <= set(lines[0])
    bad = perfbench("compare-answers", "1", "9", "--db", str(db))
    assert bad.returncode == 2 and "no run 9" in bad.stderr


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        (["--k", "0"], "--k"),
        (["--grade-timeout", "0"], "--grade-timeout"),
        (["--steps", "llm"], "--judge-url"),
        (["--markers", " , "], "--markers"),
        (["--max-think-tokens", "0"], "--max-think-tokens"),
        (["--judge-url", "ftp://x"], "--judge-url"),
    ],
)
def test_bad_grade_flags_are_one_line_naming_the_flag(
    tmp_path: Path, flag: list[str], named: str
) -> None:
    done = perfbench("grade", "--db", str(tmp_path / "none.db"), "--think", *flag)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert named in done.stderr and "no database" not in done.stderr


def test_perf_grade_without_gold_answers_stops_before_the_run(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    done = perfbench("perf", "--number", "4", "--grade", "--db", str(db))
    assert done.returncode == 2
    assert "carry no gold answers" in done.stderr and done.stderr.count("\n") == 1
    assert not db.exists() or rows(db, "SELECT count(*) FROM runs") == [(0,)]


def test_names_that_look_like_rich_markup_print_as_typed(tmp_path: Path) -> None:
    """A model, run or subset name is the server's or a dataset's text, never rich markup."""
    db = tmp_path / "m.db"
    done = perfbench(
        "perf", "--dataset", "jsonl", "--dataset-path", str(_answers_file(tmp_path)),
        "--number", "4", "--max-tokens", "8", "--name", "[red]run[/]", "--grade",
        "--sim-args", "--served-model-name [/]m[bold]x", "--db", str(db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[/]m[bold]x" in done.stdout and "[red]run[/]" in done.stdout
    compared = perfbench("compare-answers", "1", "1", "--db", str(db))
    assert compared.returncode == 0, compared.stderr
    assert "[/]m[bold]x" in compared.stdout
