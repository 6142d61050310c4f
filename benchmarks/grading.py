"""How long the grading pass takes over a run of 500 answers (the target: seconds, not minutes).

Two sources of answers:

* ``--source sim`` (default): a real ``perfbench perf --dataset synthetic_math --number 500``
  run against the built-in simulator answering with reasoning and ``\\boxed{}`` (about 400
  tokens each), recorded into a temporary database;
* ``--source math100``: the 800 real Qwen2.5-Math generations on 100 MATH problems from
  ``../shared/datasets`` (long LaTeX answers), written into a temporary database as one run.

Then ``grade_runs`` is timed end to end (worker start-up included), with and without
``--think``, ``--repeat`` times each; the median and the range are printed.

    .venv/bin/python benchmarks/grading.py
    .venv/bin/python benchmarks/grading.py --source math100 --workers 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfbench import GradeSpec, ThinkSpec, grade_runs  # noqa: E402
from perfbench.store import Store  # noqa: E402
from perfbench.workload.base import Prompt  # noqa: E402

MATH100 = ROOT.parent / "shared" / "datasets" / "math100_qwen25math_8samples_labeled.jsonl"


def record_sim(db: Path, number: int) -> None:
    cmd = [
        sys.executable, "-m", "perfbench", "perf", "--dataset", "synthetic_math",
        "--number", str(number), "--parallel", "64", "--max-tokens", "400", "--quiet",
        "--db", str(db), "--sim-args", "--burst --output-len-dist fixed --output-len-mean 400",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def record_math100(db: Path) -> int:
    rows = [json.loads(line) for line in MATH100.read_text().splitlines()]
    store = Store(db, create=True)
    run_id = store.create_run(name="math100", t0_ns=0, model="qwen2.5-math", workload={})
    prompts = [
        Prompt(
            id=f"math100-{r['idx']}",
            text=r["question"],
            answer=r["answer"],
            grader="math",
            subset=r["level"].lower(),
            dataset="math100",
        )
        for r in rows
    ]
    store.add_prompts(run_id, prompts)
    requests = []
    for r, p in zip(rows, prompts, strict=True):
        for text in r["response"]:
            idx = len(requests)
            requests.append(
                {
                    "run_id": run_id, "idx": idx, "warmup": 0, "status": "ok",
                    "intended_ns": 0, "prompt_id": p.id, "output_text": text,
                    "dataset": "math100",
                }
            )  # fmt: skip
    with store.db.conn:
        store.db.table("requests").insert_all(requests, batch_size=200)
    store.close()
    return len(requests)


def _pool_costs(workers: int | None) -> tuple[float, float]:
    """Seconds for a pass over one trivial exact-match answer (worker start-up) and over 800
    (start-up plus the pool's per-task cost)."""
    from perfbench.grade.pool import run_tasks
    from perfbench.grade.run import GradeTask, _failed, grade_task

    def task(i: int) -> GradeTask:
        return GradeTask(i, "exact", f"\\boxed{{{i}}}", None, str(i), None, None, None)

    started = time.perf_counter()
    run_tasks(grade_task, [task(0)], _failed, workers=workers or 2)
    one = time.perf_counter() - started
    started = time.perf_counter()
    run_tasks(grade_task, [task(i) for i in range(800)], _failed, workers=workers or 2)
    return one, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("sim", "math100"), default="sim")
    parser.add_argument("--number", type=int, default=500, help="answers (--source sim)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "grading.db"
        if args.source == "sim":
            record_sim(db, args.number)
            answers = args.number
        else:
            if not MATH100.is_file():
                sys.exit(f"{MATH100} is not here; use --source sim")
            answers = record_math100(db)
        one, many = _pool_costs(args.workers)
        print(f"pool: 1 trivial answer {one:.2f} s, 800 trivial answers {many:.2f} s")
        for label, spec in (
            ("grade", GradeSpec(workers=args.workers)),
            ("grade --think", GradeSpec(workers=args.workers, think=ThinkSpec())),
        ):
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                reports = grade_runs(db, [], spec)
                times.append(time.perf_counter() - started)
            accuracy = next(s.score for s in reports.reports[0].scores if s.subset == "OVERALL")
            print(
                f"{args.source}: {label:<14} {answers} answers: median {statistics.median(times):.2f} s "
                f"(range {min(times):.2f}-{max(times):.2f}, {args.repeat} runs), "
                f"{answers / statistics.median(times):.0f} answers/s, accuracy {accuracy:.3f}"
            )


if __name__ == "__main__":
    main()
