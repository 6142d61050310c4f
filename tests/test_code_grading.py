"""The code grader: HumanEval and LiveCodeBench-format answers run against their tests in the
sandbox. Truth first: every HumanEval canonical solution passes, every deliberately broken
variant fails, and hand-written LiveCodeBench-format problems agree 100% with their known
verdicts."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.grade.code import CodeTask, extract_code, grade_code
from perfbench.workload import load_prompts
from perfbench.workload.code import safe_unpickle
from tests import code_problems
from tests.conftest import perfbench, rows


def _block(code: str) -> str:
    return f"Here is the program.\n\n```python\n{code}\n```\n"


def _humaneval() -> list[tuple[str, dict, str]]:
    prompts = load_prompts(WorkloadSpec(dataset="humaneval"))
    return [(p.id, dict(p.metadata["code"]), str(p.metadata["reference"])) for p in prompts]


def test_every_humaneval_canonical_solution_passes_and_returning_none_fails():
    problems = _humaneval()
    assert len(problems) == 164
    right = [
        CodeTask(k, _block(spec["prompt"] + ref), spec) for k, (_, spec, ref) in enumerate(problems)
    ]
    stub = [CodeTask(k, _block(spec["prompt"] + "    return None\n"), spec)
            for k, (_, spec, _) in enumerate(problems)]  # fmt: skip
    verdicts = grade_code([*right, *stub])
    passed = [v for v in verdicts[:164] if v.correct]
    assert len(passed) == 164, [(p[0], v.pred) for p, v in zip(problems, verdicts) if not v.correct]
    assert all(v.pred == "1/1 tests" and v.format_ok for v in passed)
    wrong = [(p[0], v.pred) for p, v in zip(problems, verdicts[164:]) if v.correct]
    assert wrong == []  # a wrong return value fails every problem's tests


def test_humaneval_off_by_one_and_body_only_answers():
    problems = {pid: (spec, ref) for pid, spec, ref in _humaneval()}
    spec, ref = problems["HumanEval/23"]  # strlen: one short
    assert ref == "    return len(string)\n"
    off = "    return len(string) - 1\n"
    spec4, ref4 = problems["HumanEval/4"]  # mean_absolute_deviation: divided by n + 1
    assert "/ len(numbers)" in ref4
    tasks = [
        CodeTask(0, _block(spec["prompt"] + off), spec),
        CodeTask(
            1,
            _block(spec4["prompt"] + ref4.replace("/ len(numbers)", "/ (len(numbers) + 1)")),
            spec4,
        ),
        CodeTask(2, _block(problems["HumanEval/0"][1]), problems["HumanEval/0"][0]),  # a body
        CodeTask(3, "No code here, just prose: return False.", spec),
    ]
    v = grade_code(tasks)
    assert [x.correct for x in v] == [False, False, True, False]
    assert v[0].pred == "wrong answer: a test assertion failed"
    assert v[3].format_ok is False and v[3].pred is None


def test_livecodebench_format_problems_agree_with_their_known_verdicts(tmp_path):
    path = code_problems.write(tmp_path / "lcb.jsonl")
    prompts = {
        p.id: p
        for p in load_prompts(WorkloadSpec(dataset="live_code_bench", dataset_path=str(path)))
    }
    assert prompts["two-sum"].messages[0]["role"] == "system"
    assert (
        "### Format: You will use the following starter code"
        in prompts["two-sum"].messages[1]["content"]
    )
    tasks, expected = [], []
    for p in code_problems.PROBLEMS:
        spec = prompts[p["id"]].metadata["code"]
        assert len(spec["tests"]) == len(p["public"]) + len(p["private"])  # private unpacked
        tasks.append(CodeTask(len(tasks), _block(p["correct"]), spec))
        expected.append((p["id"], "correct", True))
        for why, code in p["wrong"].items():
            tasks.append(CodeTask(len(tasks), _block(code), spec))
            expected.append((p["id"], why, False))
    verdicts = grade_code(tasks)
    got = [(pid, why, v.correct) for (pid, why, _), v in zip(expected, verdicts, strict=True)]
    assert got == expected
    by = {(pid, why): v.pred for (pid, why, _), v in zip(expected, verdicts)}
    assert by["sum-n", "correct"] == "3/3 tests"
    assert by["sum-n", "wrong value"] == "test 1 of 3: wrong answer: line 1: 7 != 6"
    assert by["mean", "output format"].startswith("test 1 of 2: wrong answer: 1 output lines, 2")
    assert by["two-sum", "off by one"].startswith("test 1 of 3: wrong answer: [1, 2] != [0, 1]")


def test_hostile_answers_are_graded_wrong_with_their_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFBENCH_GRADER_SECRET", "s3cr3t-value")
    path = code_problems.write(tmp_path / "lcb.jsonl")
    spec = next(p for p in load_prompts(WorkloadSpec(dataset="live_code_bench", dataset_path=str(path)))
                if p.id == "sum-n").metadata["code"]  # fmt: skip
    leak = "import os\nprint(os.environ.get('PERFBENCH_GRADER_SECRET', 'absent'))\n"
    # the nonce is gone from disk, but the harness holds it in memory: a forged, broken line
    forge = ("import gc, os, sys\nfor o in gc.get_objects():\n"
             "    if isinstance(o, dict) and 'nonce' in o:\n"
             "        os.write(1, (o['nonce'] + ' {broken\\n').encode())\n"
             "        os._exit(0)\n")  # fmt: skip
    tasks = [
        CodeTask(0, _block("while True:\n    pass\n"), spec),
        CodeTask(1, _block("x = bytearray(8 * 1024 ** 3)\n"), spec),
        CodeTask(2, _block("raise SystemExit(3)\n"), spec),
        CodeTask(3, _block("import os\nos._exit(0)\n"), spec),
        CodeTask(4, _block(leak), {**spec, "tests": [{"input": "", "output": "s3cr3t-value"}]}),
        CodeTask(5, _block("print(open('task.json').read())\n"), spec),
        CodeTask(6, _block(forge), spec),
    ]
    v = grade_code(tasks)
    assert not any(x.correct for x in v)
    assert v[0].pred == "test 1 of 3: timeout"
    assert v[1].pred.startswith(("test 1 of 3: memory", "memory"))
    assert v[2].pred.startswith("test 1 of 3: wrong answer")  # SystemExit ends a test normally
    assert v[3].pred == "the program ended the process before its tests ran"
    assert v[4].pred == "test 1 of 1: wrong answer: line 1: absent != s3cr3t-value"
    assert v[5].pred.startswith("test 1 of 3: runtime error: FileNotFoundError")
    assert v[6].pred == "the program wrote a broken verdict line"


def test_extraction_takes_the_last_complete_block():
    text = "```python\nfirst\n```\nthen\n```\nsecond()\n```\nand a cut one:\n```python\nthird("
    assert extract_code(text) == "second()"
    assert extract_code("no code") is None
    assert extract_code("```python\n\n```") is None


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(DatasetError, match="refused posix.system"):
        safe_unpickle(pickle.dumps(Evil()), where="x")
    assert not marker.exists()
    assert safe_unpickle(pickle.dumps([{"a": 1, "b": [2.5, "c"]}, (None, True)]), where="x") == [
        {"a": 1, "b": [2.5, "c"]},
        (None, True),
    ]
    # and in a dataset file: one line, exit 2, nothing sent
    bad = code_problems.row(code_problems.PROBLEMS[0])
    import base64
    import zlib

    bad["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    (tmp_path / "evil.jsonl").write_text(json.dumps(bad) + "\n")
    done = perfbench("perf", "--dataset", "live_code_bench", "--dataset-path",
                     str(tmp_path / "evil.jsonl"), "--db", str(tmp_path / "e.db"))  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "refused posix.system" in done.stderr and not marker.exists()
    assert not (tmp_path / "e.db").exists()


def test_perf_grades_code_end_to_end_offline(tmp_path):
    """The simulator answers HumanEval with the canonical solution or a broken one; the score
    table, the stored grades and the samples export say which and why."""
    db = tmp_path / "c.db"
    done = perfbench(
        "perf", "--dataset", "humaneval", "--number", "40", "--parallel", "8", "--grade",
        "--samples", "2", "--sim-args", "--preset instant --answer-accuracy 0.5 --seed 3",
        "--db", str(db), "--json", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["perf"]["runs"]
    graded = rows(db, "SELECT correct, pred FROM grades WHERE grader = 'code'")
    assert len(graded) == 40
    right = [p for c, p in graded if c]
    assert 8 <= len(right) <= 32 and all(p == "1/1 tests" for p in right)
    assert all(p.startswith(("wrong answer", "runtime error")) for c, p in graded if not c)
    out = tmp_path / "samples.jsonl"
    done = perfbench("grade", "--db", str(db), "--samples", str(out), "--json", "--k", "2")
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    metrics = {(r["metric"], r["subset"]) for r in scores["runs"][0]["scores"]}
    assert ("AveragePass@1", "OVERALL") in metrics and ("pass@2", "OVERALL") in metrics
    assert not any(m.startswith("maj@") for m, _ in metrics)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {x["grader"] for x in lines} == {"code"} and all(x["pred"] for x in lines)
    both = perfbench("compare-answers", str(run["run_id"]), str(run["run_id"]), "--db", str(db))
    assert both.returncode == 0, both.stderr


def test_live_code_bench_dates_subsets_and_bad_input(tmp_path):
    path = code_problems.write(tmp_path / "lcb.jsonl")
    db = tmp_path / "l.db"
    done = perfbench(
        "perf", "--dataset", "live_code_bench", "--dataset-path", str(path), "--start-date",
        "2024-09-01", "--end-date", "2024-12-31", "--grade", "--sim-args",
        "--preset instant --answer-accuracy 1", "--db", str(db), "--json", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ids = {r[0] for r in rows(db, "SELECT prompt_id FROM prompts")}
    assert ids == {"mean", "two-sum"}  # contest dates 2024-09-15 and 2024-11-20
    done = perfbench("grade", "--db", str(db), "--json")
    scores = json.loads(done.stdout)["runs"][0]["scores"]
    subsets = {r["subset"]: r["score"] for r in scores if r["metric"] == "AveragePass@1"}
    assert subsets == {"easy": 1.0, "medium": 1.0, "2024-Q3": 1.0, "2024-Q4": 1.0, "OVERALL": 1.0}
    for args, says in [
        (["--dataset", "live_code_bench", "--dataset-path", str(path), "--start-date", "2024/09/01"],
         "YYYY-MM-DD"),
        (["--dataset", "live_code_bench", "--dataset-path", str(path), "--start-date", "2030-01-01"],
         "no live_code_bench problem"),
        (["--dataset", "live_code_bench", "--dataset-path", str(_no_tests(tmp_path, path))],
         "has no tests"),
    ]:  # fmt: skip
        done = perfbench("perf", *args, "--db", str(tmp_path / "bad.db"))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert says in done.stderr and not (tmp_path / "bad.db").exists()
    math = tmp_path / "m.db"
    done = perfbench("perf", "--dataset", "synthetic_math", "--number", "4", "--db", str(math),
                     "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = perfbench("grade", "--grader", "code", "--db", str(math))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "code dataset" in done.stderr


def _no_tests(tmp_path: Path, path: Path) -> Path:
    first = json.loads(path.read_text().splitlines()[0])
    first["public_test_cases"] = "[]"
    first["private_test_cases"] = "[]"
    out = tmp_path / "none.jsonl"
    out.write_text(json.dumps(first) + "\n")
    return out


def test_ctrl_c_while_grading_code_leaves_nothing_running(tmp_path):
    """SIGINT to `perfbench grade` while answers that sleep are running: exit 130, and every
    sandboxed process (found through the grading process's descendants) is gone."""
    import signal
    import time

    from tests.conftest import alive, children, start_perfbench, uid_of

    db = tmp_path / "s.db"
    done = perfbench("perf", "--dataset", "humaneval", "--number", "6", "--sim-args",
                     "--preset instant", "--db", str(db), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:  # the answers, replaced by programs that sleep
        conn.execute("UPDATE requests SET output_text = ?",
                     ("```python\nimport time\ntime.sleep(120)\n```",))  # fmt: skip
    grade = start_perfbench("grade", "--db", str(db), "--grader", "code")
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    # wait for a sandboxed program (it runs as another user), not merely the grading pool's
    # own workers, which start first
    while time.monotonic() < deadline and not any(
        uid_of(p) not in (None, os.getuid()) for p in seen
    ):
        time.sleep(0.1)
        todo, found = [grade.pid], set()
        while todo:
            for child in children(todo.pop()):
                found.add(child)
                todo.append(child)
        seen |= found
    assert any(uid_of(p) not in (None, os.getuid()) for p in seen), "no sandboxed program started"
    grade.send_signal(signal.SIGINT)
    _, err = grade.communicate(timeout=30)
    assert grade.returncode == 130, err
    time.sleep(0.5)
    assert [p for p in seen if alive(p)] == []


def test_tests_too_big_for_the_database_are_read_again_when_grading(tmp_path):
    """A problem whose tests pass 256 KB keeps them out of the database; grading reads them
    again from the run's file (and would fail in one line if the file were gone)."""
    numbers = " ".join(str(i % 1000) for i in range(60_000))  # ~230 KB an input
    big = dict(code_problems.PROBLEMS[0], id="big-sum", public=[], private=[
        code_problems._stdin(f"60000\n{numbers}\n", f"{sum(i % 1000 for i in range(60_000))}\n"),
        code_problems._stdin(f"60000\n{numbers}\n", f"{sum(i % 1000 for i in range(60_000))}\n"),
    ])  # fmt: skip
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(code_problems.row(big)) + "\n")
    db = tmp_path / "b.db"
    done = perfbench("perf", "--dataset", "live_code_bench", "--dataset-path", str(path),
                     "--grade", "--sim-args", "--preset instant --answer-accuracy 1",
                     "--db", str(db), "--quiet", timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (meta,) = rows(db, "SELECT metadata FROM prompts")[0]
    assert json.loads(meta)["code"]["tests"] is None  # not stored
    assert rows(db, "SELECT correct, pred FROM grades") == [(1, "2/2 tests")]
    path.unlink()
    done = perfbench("grade", "--db", str(db))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
