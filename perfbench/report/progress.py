"""A live progress bar for a run: completed / failed / in flight, req/s, running p50 TTFT.

It reads the runner's ``LiveStats`` on rich's own refresh thread (a few times a second), so the
event loop that times requests does no display work at all.
"""

from __future__ import annotations

import math
import threading
import time

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
            (f"ok {s.completed}", "green"),
            " ",
            (f"failed {s.failed}", "red" if s.failed else "dim"),
            " ",
            f"in flight {s.in_flight}",
            " ",
            f"{rate:.1f} req/s",
            " ",
            f"p50 TTFT {ttft}",
        )


class ProgressObserver:
    """Shows a progress bar while a run goes (the CLI uses it only on a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._ref: list[LiveStats] = []
        self._progress: Progress | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, stats: LiveStats) -> None:
        self._ref[:] = [stats]
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            _StatsColumn(self._ref),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=4,
            transient=True,
        )
        task = progress.add_task(stats.label, total=stats.total or None)
        progress.start()
        self._progress = progress
        self._stop.clear()

        def follow() -> None:  # counters are plain ints: reading them from here is safe
            while not self._stop.wait(0.25):
                progress.update(task, completed=stats.completed + stats.failed)

        self._thread = threading.Thread(target=follow, name="perfbench-progress", daemon=True)
        self._thread.start()

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LineObserver:
    """A progress line on stderr every ``every`` finished requests (evalscope's
    ``--log-every-n-query``), for logs rather than terminals; read off the loop, as above."""

    def __init__(self, every: int, prog: str = "perfbench") -> None:
        self.every, self.prog = every, prog
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, stats: LiveStats) -> None:
        self._stop.clear()

        def follow() -> None:
            logged = 0
            while not self._stop.wait(0.1):
                done = stats.completed + stats.failed
                if done // self.every > logged // self.every:
                    logged = done
                    self._line(stats, done)
            done = stats.completed + stats.failed
            if done > logged:  # the last line: where the run ended
                self._line(stats, done)

        self._thread = threading.Thread(target=follow, name="perfbench-log", daemon=True)
        self._thread.start()

    def _line(self, stats: LiveStats, done: int) -> None:
        import sys

        elapsed = (time.perf_counter_ns() - stats.started_ns) / 1e9 if stats.started_ns else 0
        total = f"/{stats.total}" if stats.total else ""
        rate = f", {done / elapsed:.1f} req/s" if elapsed > 0 else ""
        print(
            f"{self.prog}: {stats.label}: {done}{total} requests (ok {stats.completed}, failed "
            f"{stats.failed}){rate}",
            file=sys.stderr,
            flush=True,
        )

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
