"""How long the code grader takes: HumanEval's 164 canonical solutions, each run against its
tests in its own sandboxed process, sandbox start-up included (the target: under 30 s on a
2-core machine).

    .venv/bin/python benchmarks/code_grading.py              # three rounds
    .venv/bin/python benchmarks/code_grading.py --workers 1  # one process at a time

Prints the wall time of each round, every verdict's count, and the sandbox's protections.
"""

from __future__ import annotations

import argparse
import statistics
import time

from perfbench.config import WorkloadSpec
from perfbench.grade import sandbox
from perfbench.grade.code import CodeTask, grade_code
from perfbench.workload import load_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: the CPU count")
    args = parser.parse_args()
    tasks = []
    for k, p in enumerate(load_prompts(WorkloadSpec(dataset="humaneval"))):
        spec = p.metadata["code"]
        program = spec["prompt"] + str(p.metadata["reference"])
        tasks.append(CodeTask(k, f"```python\n{program}\n```", spec))
    print(f"protections: {dict(sandbox.protections())}; missing: {sandbox.missing() or 'none'}")
    times = []
    for r in range(1, args.rounds + 1):
        start = time.perf_counter()
        verdicts = grade_code(tasks, workers=args.workers)
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        passed = sum(v.correct for v in verdicts)
        print(f"round {r}: {len(tasks)} solutions graded in {elapsed:.1f} s, {passed} passed")
    print(
        f"median {statistics.median(times):.1f} s, min {min(times):.1f} s, max {max(times):.1f} s"
    )


if __name__ == "__main__":
    main()
