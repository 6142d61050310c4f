"""The ``code`` grader: the answer's program run against the problem's tests in the sandbox.

* **Extraction.** The answer is the last complete fenced code block of the text after
  ``--remove-until``, with a language tag (```` ```python ````) or none. A reasoning model
  writes its final program last; a block cut off by the output limit is incomplete and is
  not taken. No block is a format failure, graded wrong, never a crash.
* **Running.** Each answer runs once, in its own sandboxed process (:mod:`.sandbox`), under
  :mod:`.harness`, which runs every test of the problem with LiveCodeBench's conventions and
  stops at the first that fails. Each test has :data:`TEST_TIMEOUT_S` (LiveCodeBench's 6 s);
  the whole process has (6 + 1) s a test plus 10 s, up to :data:`MAX_WALL_S` (20 minutes:
  a problem of 170 tests), as LiveCodeBench's own global limit grows with the tests.
* **Verdicts.** ``correct`` when every test passes. ``pred`` says how far it got ("12/12
  tests" or "test 3 of 12: wrong answer: line 1: 5 != 6", "timeout", "memory", "runtime
  error: …"), which ``grade --samples`` exports. ``error`` is kept for a failure of the grader
  itself (the sandbox could not start), never for a wrong program.
"""

from __future__ import annotations

import collections
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfbench.grade import extract
from perfbench.grade.graders import Verdict

TEST_TIMEOUT_S = 6.0
#: the most wall time one answer's process gets, however many tests its problem has
MAX_WALL_S = 1200.0
MEMORY_MB = 2048
HARNESS = Path(__file__).with_name("harness.py")


@dataclass(frozen=True, slots=True)
class CodeTask:
    """One answer to run: its text and the problem's test spec (``Prompt.metadata["code"]``,
    with the tests filled in)."""

    idx: int
    output: str
    spec: Mapping[str, Any]


def extract_code(text: str) -> str | None:
    """The last complete fenced block (```` ``` ```` with or without a language), or None."""
    lines = text.split("\n")
    fences = [n for n, line in enumerate(lines) if line.strip().startswith("```")]
    if len(fences) < 2:
        return None
    pairs = list(zip(fences[0::2], fences[1::2]))  # an unclosed last fence is left out
    start, end = pairs[-1]
    code = "\n".join(lines[start + 1 : end])
    return code if code.strip() else None


def task_for(idx: int, output: str, remove_until: str | None, spec: Mapping[str, Any]) -> CodeTask:
    return CodeTask(idx, extract.remove_until(output, remove_until), spec)


def grade_code(
    tasks: Sequence[CodeTask],
    *,
    workers: int | None = None,
) -> list[Verdict]:
    """Every answer run against its tests, in parallel sandboxed processes, in task order.

    At most two programs per worker are prepared at once (a LiveCodeBench problem's tests can
    be large, and each sample of it carries its own copy), and each result is dropped once its
    verdict is read, so memory stays bounded however many answers there are."""
    from perfbench.grade import sandbox

    harness = HARNESS.read_text(encoding="utf-8")
    out: list[Verdict] = [Verdict(None, False, False)] * len(tasks)
    running: collections.deque[tuple[int, str, Any]] = collections.deque()
    with sandbox.Pool(workers=workers) as pool:
        window = 2 * pool.workers

        def collect() -> None:
            k, nonce, future = running.popleft()
            try:
                out[k] = _verdict(future.result(), nonce)
            except sandbox.SandboxError as exc:  # the sandbox failed, not the answer
                out[k] = Verdict(None, False, True, f"not run: {exc}")

        for k, task in enumerate(tasks):
            code = extract_code(task.output)
            if code is None:
                continue  # a format failure: no program to run
            nonce = secrets.token_hex(8)
            payload = {**task.spec, "code": code, "timeout": TEST_TIMEOUT_S, "nonce": nonce}
            n_tests = max(1, len(task.spec.get("tests") or ()))
            wall = min(MAX_WALL_S, (TEST_TIMEOUT_S + 1) * n_tests + 10)
            limits = sandbox.Limits(cpu_s=wall, wall_s=wall + 5, memory_mb=MEMORY_MB)
            future = pool.submit(harness, limits=limits, files={"task.json": json.dumps(payload)})
            running.append((k, nonce, future))
            if len(running) >= window:
                collect()
        while running:
            collect()
    return out


def _verdict(result: Any, nonce: str) -> Verdict:
    """The harness's verdict line, or what the sandbox saw when the process ended without one
    (killed for time or memory, or an answer that ended the process itself). A line the
    answer forged or broke is graded wrong, never taken and never fatal."""
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(nonce + " "):
            try:
                found = json.loads(line[len(nonce) + 1 :])
                passed, total, failure = found["passed"], found["total"], found["failure"]
            except (ValueError, KeyError, TypeError):
                return Verdict("the program wrote a broken verdict line", False, True)
            if failure is None and isinstance(passed, int) and passed == total:
                return Verdict(f"{passed}/{total} tests", True, True)
            return Verdict(str(failure), False, True)
    if result.status == "ok":  # exited 0 before the harness could say anything
        return Verdict("the program ended the process before its tests ran", False, True)
    return Verdict(f"{result.status}: {result.detail}", False, True)


def protections_note() -> str | None:
    """One line naming the sandbox protections missing on this machine, or None."""
    from perfbench.grade import sandbox

    missing = sandbox.missing()
    if not missing:
        return None
    return "code ran with protections missing on this machine: " + "; ".join(missing)
