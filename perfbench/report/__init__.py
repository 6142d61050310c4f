"""The report stage: rich tables, JSON and CSV."""

from perfbench.report.export import to_csv, to_json
from perfbench.report.tables import print_report, render

__all__ = ["print_report", "render", "to_csv", "to_json"]
