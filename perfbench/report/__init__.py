"""The report stage: rich tables, JSON, CSV and the HTML page, and the read commands' results
(:func:`~perfbench.report.report.report`, :func:`~perfbench.report.runs.runs`)."""

from perfbench import _callable_package
from perfbench.report.export import to_csv, to_json
from perfbench.report.tables import print_report, render

__all__ = ["print_report", "render", "to_csv", "to_json"]


_callable_package(__name__, "perfbench.report.report", "report")
