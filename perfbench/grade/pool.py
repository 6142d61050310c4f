"""Grading in worker processes that can be killed.

Answers are graded away from the process that times requests, in a pool of worker processes
(pebble's ``ProcessPool``): math-verify bounds its own parsing and comparison with SIGALRM, which
works only in a process's main thread, and a worker's task runs there. A task that still overruns
``timeout`` (a pathological answer the alarm cannot interrupt, e.g. inside a C extension) is
ended by killing its worker, which pebble replaces; a worker that dies is reported the same way.
Either way the task's result is ``on_fail(task, reason)``: one bad answer costs one grade, never
the pass.

Workers are started with ``spawn``: the parent may hold threads (the store's writer, an event
loop's executor) that ``fork`` would copy in an undefined state.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from pebble import ProcessExpired, ProcessPool

T = TypeVar("T")
R = TypeVar("R")

#: Seconds one task may take before its worker is killed (math-verify's own limits are 5 s for
#: parsing and 5 s for comparing, so this is the backstop, not the rule).
TASK_TIMEOUT = 30.0


def _warm() -> None:
    """Worker initializer: import the graders' heavy dependencies once per worker."""
    import math_verify  # noqa: F401


def default_workers(n_tasks: int) -> int:
    return max(1, min(os.cpu_count() or 1, 8, n_tasks))


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    on_fail: Callable[[T, str], R],
    *,
    workers: int | None = None,
    timeout: float = TASK_TIMEOUT,
    progress: Callable[[int], None] | None = None,
) -> list[R]:
    """``[fn(t) for t in tasks]``, in worker processes, each task bounded by ``timeout``.

    ``fn`` must be a module-level function and the tasks picklable. Results come back in task
    order; ``progress(done)`` is called as they complete.
    """
    if not tasks:
        return []
    results: list[R] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPool(
        max_workers=workers or default_workers(len(tasks)), initializer=_warm, context=context
    ) as pool:
        futures = [pool.schedule(fn, args=(task,), timeout=timeout) for task in tasks]
        for task, future in zip(tasks, futures, strict=True):
            try:
                results.append(future.result())
            except FutureTimeout:
                results.append(on_fail(task, f"grading took longer than {timeout:g} s (killed)"))
            except ProcessExpired as exc:
                results.append(on_fail(task, f"the grading worker died (exit code {exc.exitcode})"))
            except Exception as exc:  # a grader bug: reported on its answer, never fatal
                results.append(on_fail(task, f"{type(exc).__name__}: {exc}"))
            if progress is not None:
                progress(len(results))
    return results
