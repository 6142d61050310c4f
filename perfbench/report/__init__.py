"""The report stage: rich tables, JSON, CSV and the HTML page, and the read commands' results
(:func:`~perfbench.report.report.report`, :func:`~perfbench.report.runs.runs`)."""

import sys
import types
from typing import Any

from perfbench.report.export import to_csv, to_json
from perfbench.report.tables import print_report, render

__all__ = ["print_report", "render", "to_csv", "to_json"]


class _Callable(types.ModuleType):
    """``from perfbench import report`` gives this package instead of the function of the same
    name once the package was imported first (Python sets a package's attribute to each
    subpackage it imports): calling the package calls the function, so both work."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from perfbench.report.report import report

        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _Callable
