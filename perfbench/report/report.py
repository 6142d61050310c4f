"""``perfbench.report``: the figures of runs already in a database, the library face of
``perfbench report``.

    from perfbench import report
    r = report("outputs/perfbench.db", ["12", "14"], errors=True, html="report.html")
    print(r.summaries[0].distributions["ttft_ms"].values["p99"], r.failures)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfbench.errors import UsageError
from perfbench.metrics.summary import Summary, summarize
from perfbench.store import Run, Store
from perfbench.store.runs import Failure

if TYPE_CHECKING:
    from rich.console import RenderableType


@dataclass(frozen=True)
class Report:
    """Runs and their figures; with ``errors``, their failed requests grouped by message."""

    runs: tuple[Run, ...]
    summaries: tuple[Summary, ...]
    failures: tuple[Failure, ...] | None = None  # None: not asked for

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runs": [s.to_dict() for s in self.summaries]}
        if self.failures is not None:
            out["failures"] = [
                {
                    "run_id": f.run_id,
                    "status": f.status,
                    "http_status": f.http_status,
                    "count": f.count,
                    "error": f.error,
                }
                for f in self.failures
            ]
        return out

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per run: its scalar figures, then ``<metric>_<stat>`` of each distribution."""
        from perfbench.report.export import flat

        return [flat(s) for s in self.summaries]

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.console import Group

        from perfbench.report.tables import failures_table, render

        parts = [render(self.summaries, quiet=quiet)]
        if self.failures is not None:
            parts.append(failures_table(self.failures))
        return Group(*parts)


def report(
    db_path: str | Path,
    runs: Sequence[str] = (),
    *,
    name: str | None = None,
    errors: bool = False,
    html: str | Path | None = None,
) -> Report:
    """Report runs by id or name (``runs``), or every run named ``name``; the latest batch when
    neither. ``errors`` adds the failed requests; ``html`` also writes the self-contained HTML
    page of charts to that file."""
    store = Store(db_path)
    try:
        found = store.find(runs, name)
        summaries = tuple(summarize(store, r) for r in found)
        if html is not None:
            from perfbench.report.html import write_html

            try:
                write_html(store, found, html)
            except OSError as exc:
                raise UsageError(f"cannot write --html {html}: {exc.strerror}") from None
        failures = tuple(store.failures([r.id for r in found])) if errors else None
    finally:
        store.close()
    return Report(tuple(found), summaries, failures)
