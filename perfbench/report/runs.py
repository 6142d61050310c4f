"""``perfbench.runs``: what a database holds, a run a line; the library face of
``perfbench runs``.

    from perfbench import runs
    for r in runs("outputs/perfbench.db").runs:
        print(r.run.id, r.run.name, r.requests.get("ok", 0))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfbench.store import Run, Store

if TYPE_CHECKING:
    from rich.console import RenderableType


@dataclass(frozen=True)
class RunInfo:
    """A run and how its measured requests ended (status -> count)."""

    run: Run
    requests: dict[str, int]

    @property
    def ok(self) -> int:
        return self.requests.get("ok", 0)

    @property
    def failed(self) -> int:
        return sum(self.requests.values()) - self.ok

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {
            "id": r.id,
            "name": r.name,
            "batch": r.batch,
            "status": r.status,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "model": r.model,
            "endpoint": r.endpoint,
            "load": asdict(r.load),
            "scheduled": r.scheduled,
            "recorded": r.recorded,
            "requests": self.requests,
            "source": {k: r.source.get(k) for k in ("tool", "version", "file", "part")}
            if r.source
            else None,
        }


@dataclass(frozen=True)
class RunList:
    db_path: str
    runs: tuple[RunInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs]}

    def csv_rows(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.runs]

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(self.db_path), title_justify="left")
        for col in ("Id", "Name", "Status", "Started", "Model", "Load", "OK", "Failed"):
            table.add_column(col)
        for info in self.runs:
            r = info.run
            shape = r.load.label
            status = f"imported ({r.source['tool']})" if r.source else r.status
            table.add_row(
                str(r.id),
                Text(r.name or ""),
                status,
                r.started_at[:16].replace("T", " "),
                Text(r.model or ""),
                shape,
                str(info.ok),
                str(info.failed),
            )
        return table


def runs(db_path: str | Path) -> RunList:
    """Every run in the database, oldest first, with its requests counted by status."""
    store = Store(db_path)
    try:
        return RunList(str(db_path), tuple(RunInfo(r, _counts(store, r)) for r in store.runs()))
    finally:
        store.close()


def _counts(store: Store, run: Run) -> dict[str, int]:
    """Measured requests by status; of a run imported from a summary alone, its file's counts
    (failures unclassified: a summary does not say why)."""
    counts = store.count_by_status(run.id)
    figures = run.source.get("figures") or {}
    if counts or not isinstance(figures.get("ok"), int):
        return counts
    return {"ok": figures["ok"], "unclassified": int(figures.get("failed") or 0)}
