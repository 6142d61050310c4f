"""A live progress bar for a run: completed / failed / in flight, req/s, running p50 TTFT.

It reads the runner's ``LiveStats`` on rich's own refresh thread (a few times a second), so the
event loop that times requests does no display work at all.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from perfbench.runner import LiveStats


class _StatsColumn(ProgressColumn):
    def __init__(self, stats_ref: list[LiveStats]) -> None:
        super().__init__()
        self.stats_ref = stats_ref

    def render(self, task: Task) -> Text:
        if not self.stats_ref:
            return Text("")
        s = self.stats_ref[0]
        elapsed = (time.perf_counter_ns() - s.started_ns) / 1e9 if s.started_ns else 0
        done = s.completed + s.failed
        rate = done / elapsed if elapsed > 0 else 0.0
        p50 = s.p50_ttft_ms()
        ttft = f"{p50:.1f} ms" if math.isfinite(p50) else "—"
        return Text.assemble(
            (f"ok {s.completed}", "green"), " · ", (f"failed {s.failed}", "red" if s.failed else "dim"),
            " · ", f"in flight {s.in_flight}", " · ", f"{rate:.1f} req/s", " · ", f"p50 TTFT {ttft}",
        )


class ProgressObserver:
    """Shows a progress bar while a run goes; does nothing when stdout is not a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._ref: list[LiveStats] = []
        self._progress: Progress | None = None
        self._task: Any = None

    def begin(self, stats: LiveStats) -> None:
        self._ref[:] = [stats]
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            _StatsColumn(self._ref), TimeElapsedColumn(),
            console=self.console, refresh_per_second=4, transient=True,
        )
        self._task = self._progress.add_task(stats.label, total=stats.total or None)
        self._progress.start()
        progress, task = self._progress, self._task

        def update() -> None:
            progress.update(task, completed=stats.completed + stats.failed)

        # rich calls get_renderable on its refresh thread; piggy-back the counter update on it
        original = progress.get_renderable

        def renderable() -> Any:
            update()
            return original()

        progress.get_renderable = renderable  # type: ignore[method-assign]

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
