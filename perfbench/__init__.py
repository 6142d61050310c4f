"""perfbench: how fast an OpenAI-compatible LLM server is under load, and whether its answers hold.

The Python API mirrors the CLI::

    from perfbench import ClientSpec, LoadSpec, PerfSpec, run
    result = run(PerfSpec(ClientSpec(url="http://127.0.0.1:8000"), loads=(LoadSpec(parallel=8, number=200),)))
    print(result.runs[0].summary.mean_ttft_ms)

Names are imported lazily so that ``perfbench --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "perfbench.runner",
    "BatchResult": "perfbench.runner",
    "RunResult": "perfbench.runner",
    "ClientSpec": "perfbench.config",
    "LoadSpec": "perfbench.config",
    "WorkloadSpec": "perfbench.config",
    "PerfSpec": "perfbench.config",
    "GradeSpec": "perfbench.config",
    "ThinkSpec": "perfbench.config",
    "grade_runs": "perfbench.grade.run",
    "compare_answer_runs": "perfbench.grade.run",
    "GradeReport": "perfbench.grade.run",
    "RequestRecord": "perfbench.client.record",
    "Summary": "perfbench.metrics.summary",
    "summarize": "perfbench.metrics.summary",
    "Store": "perfbench.store.runs",
    "PerfbenchError": "perfbench.errors",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from perfbench.client.record import RequestRecord
    from perfbench.config import (
        ClientSpec,
        GradeSpec,
        LoadSpec,
        PerfSpec,
        ThinkSpec,
        WorkloadSpec,
    )
    from perfbench.errors import PerfbenchError
    from perfbench.grade.run import GradeReport, compare_answer_runs, grade_runs
    from perfbench.metrics.summary import Summary, summarize
    from perfbench.runner import BatchResult, RunResult, run
    from perfbench.store.runs import Store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perfbench' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
