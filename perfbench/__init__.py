"""perfbench: how fast an OpenAI-compatible LLM server is under load, and whether its answers hold.

The Python API mirrors the CLI, a function per command, each taking specs or a database path and
returning a result that prints itself as a table, JSON or CSV (``perfbench.report.output``)::

    from perfbench import ClientSpec, LoadSpec, PerfSpec, run
    result = run(PerfSpec(ClientSpec(url="http://127.0.0.1:8000"), loads=(LoadSpec(parallel=8, number=200),)))
    print(result.runs[0].summary.mean_ttft_ms)

=====================  ==============================  ====================================
command                library call                    returns
=====================  ==============================  ====================================
``perfbench perf``     ``run(PerfSpec)``               :class:`BatchResult`
``perfbench sweep``    ``sweep(PerfSpec, SweepSpec)``  :class:`SweepResult`
``perfbench plan``     ``plan(PlanSpec)``              :class:`Plan`
``perfbench compare``  ``compare(db, base, new, spec)``  :class:`Comparison`
``perfbench grade``    ``grade_runs(db, runs, spec)``  :class:`Grades`
``compare-answers``    ``compare_answers(db, a, b)``   :class:`AnswersResult`
``perfbench report``   ``report(db, runs)``            :class:`Report`
``report --determinism`` ``determinism(db, runs)``     :class:`Determinism`
``perfbench runs``     ``runs(db)``                    :class:`RunList`
``perfbench import``   ``import_results(db, files)``   :class:`ImportResult`
``perfbench datasets`` ``datasets()``                  :class:`DatasetList`
=====================  ==============================  ====================================

Names are imported lazily so that ``perfbench --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from perfbench.version import __version__

_EXPORTS = {
    "run": "perfbench.runner",
    "BatchResult": "perfbench.runner",
    "RunResult": "perfbench.runner",
    "sweep": "perfbench.capacity.sweep",
    "SweepSpec": "perfbench.capacity.sweep",
    "SweepResult": "perfbench.capacity.sweep",
    "plan": "perfbench.capacity.plan",
    "PlanSpec": "perfbench.capacity.plan",
    "Plan": "perfbench.capacity.plan",
    "parse_slos": "perfbench.capacity.slo",
    "compare": "perfbench.compare.runs",
    "CompareSpec": "perfbench.compare.runs",
    "Comparison": "perfbench.compare.runs",
    "grade_runs": "perfbench.grade.run",
    "Grades": "perfbench.grade.run",
    "GradeReport": "perfbench.grade.records",
    "compare_answers": "perfbench.compare.answers",
    "AnswersResult": "perfbench.compare.answers",
    "determinism": "perfbench.compare.determinism",
    "Determinism": "perfbench.compare.determinism",
    "DeterminismSpec": "perfbench.config",
    "report": "perfbench.report.report",
    "Report": "perfbench.report.report",
    "runs": "perfbench.report.runs",
    "import_results": "perfbench.interop.imports",
    "ImportResult": "perfbench.interop.imports",
    "RunList": "perfbench.report.runs",
    "datasets": "perfbench.workload.catalog",
    "DatasetList": "perfbench.workload.catalog",
    "ClientSpec": "perfbench.config",
    "LoadSpec": "perfbench.config",
    "WorkloadSpec": "perfbench.config",
    "PerfSpec": "perfbench.config",
    "GradeSpec": "perfbench.config",
    "ThinkSpec": "perfbench.config",
    "ServerMetricsSpec": "perfbench.config",
    "RequestRecord": "perfbench.client.record",
    "Summary": "perfbench.metrics.summary",
    "summarize": "perfbench.metrics.summary",
    "Store": "perfbench.store.runs",
    "Run": "perfbench.store.runs",
    "PerfbenchError": "perfbench.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def _callable_package(package: str, module: str, name: str) -> None:
    """Make ``package`` callable as its function ``module.name``: ``from perfbench import
    report`` gives the subpackage ``perfbench.report`` instead of the function once that
    subpackage was imported (Python binds a package's attribute to each subpackage it imports,
    and this module's lazy ``__getattr__`` is then never asked), so both must work."""
    import sys
    import types

    class _Callable(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(import_module(module), name)(*args, **kwargs)

    sys.modules[package].__class__ = _Callable


if TYPE_CHECKING:
    from perfbench.capacity.plan import Plan, PlanSpec, plan
    from perfbench.capacity.slo import parse_slos
    from perfbench.capacity.sweep import SweepResult, SweepSpec, sweep
    from perfbench.client.record import RequestRecord
    from perfbench.compare.answers import AnswersResult, compare_answers
    from perfbench.compare.determinism import Determinism, determinism
    from perfbench.compare.runs import CompareSpec, Comparison, compare
    from perfbench.config import (
        ClientSpec,
        DeterminismSpec,
        GradeSpec,
        LoadSpec,
        PerfSpec,
        ServerMetricsSpec,
        ThinkSpec,
        WorkloadSpec,
    )
    from perfbench.errors import PerfbenchError
    from perfbench.grade.records import GradeReport
    from perfbench.grade.run import Grades, grade_runs
    from perfbench.metrics.summary import Summary, summarize
    from perfbench.report.report import Report, report
    from perfbench.report.runs import RunList, runs
    from perfbench.runner import BatchResult, RunResult, run
    from perfbench.store.runs import Run, Store
    from perfbench.workload.catalog import DatasetList, datasets


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perfbench' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
