"""The coordinator's side of a scaled-out run: its workers, their clocks, and the accounting.

The coordinator plans (the runner does), then for each phase hands every live worker its
:class:`~perfbench.load.partition.Share` with one common start instant, expressed on that
worker's clock. Rows come back in batches and go to the run's one writer as they arrive. A
worker that dies costs only its requests in flight (and, in an open loop, those that fell due
before its death was seen): each becomes a ``worker_lost`` row, so that ``scheduled ==
recorded`` holds. Then the run stops, or goes on with the others, as the user chose.

Clock offsets are measured NTP-style: the coordinator reads its clock, asks the worker for its
own, reads its clock again; the offset is the worker's reading minus the midpoint, with half
the round trip as its uncertainty (the best of several probes).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from perfbench.client import RequestRecord
from perfbench.client.record import IN_FLIGHT
from perfbench.errors import WorkerError
from perfbench.execute import LiveStats, tell
from perfbench.load.partition import Share
from perfbench.load.watch import ServerWatch
from perfbench.scale.engine import Drained, Job, Order
from perfbench.scale.local import WorkerFailed, WorkerLost
from perfbench.store import RecordWriter
from perfbench.store.writer import COLUMNS

Clock = Callable[[], int]
PROBES = 7


class Handle(Protocol):
    index: int
    kind: str
    lost: str | None

    def pump(
        self,
        loop: asyncio.AbstractEventLoop,
        on_drained: Callable[[int, Drained], None],
        on_lost: Callable[[int, str], None],
    ) -> None: ...
    async def call(self, method: str, *args: Any) -> Any: ...
    def describe_self(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


@dataclass
class _Worker:
    handle: Handle
    info: dict[str, Any]
    offset_ns: int = 0
    uncertainty_ns: int = 0
    # this run's accounting
    in_flight: dict[int, int] = field(default_factory=dict)  # index -> when its start was seen
    started: int = 0  # starts seen in this phase
    scheduled: int = 0  # this run's requests, over its phases
    lost_rows: int = 0
    share: Share | None = None
    order: Order | None = None
    done: asyncio.Future[None] | None = None
    lag: dict[str, float] = field(default_factory=dict)


class Fleet:
    """Live workers, measured clocks, and the run in progress."""

    def __init__(self, handles: Sequence[Handle], clock: Clock, *, on_loss: str = "stop") -> None:
        self.clock = clock
        self.on_loss = on_loss
        self.workers = [_Worker(h, {}) for h in handles]
        self.lost: list[str] = []  # one line per worker lost in the current run
        self.failed = False  # the run cannot go on: a worker lost (with stop), or all of them
        self.failure = ""  # why, in a few words
        self._lock = threading.Lock()
        self._writer: RecordWriter | None = None
        self._prompt_of: Callable[[int], tuple[str | None, str | None]] = lambda i: (None, None)
        self._stats: LiveStats | None = None
        self._watch: ServerWatch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warmup = False

    @classmethod
    async def start(cls, handles: Sequence[Handle], clock: Clock, *, on_loss: str) -> Fleet:
        """Pump every handle, read who each worker is, and measure its clock's offset."""
        fleet = cls(handles, clock, on_loss=on_loss)
        loop = fleet._loop = asyncio.get_running_loop()
        for w in fleet.workers:
            w.handle.pump(loop, fleet._on_drained, fleet._on_lost)
        await asyncio.gather(*(fleet._introduce(w) for w in fleet.workers))
        return fleet

    async def _introduce(self, w: _Worker) -> None:
        w.info = {**w.handle.describe_self(), **(await w.handle.call("describe"))}
        best: tuple[int, int] | None = None
        for _ in range(PROBES):
            before = self.clock()
            theirs = await w.handle.call("now")
            after = self.clock()
            rtt = after - before
            if best is None or rtt < 2 * best[1]:
                best = (theirs - (before + after) // 2, rtt // 2)
        assert best is not None
        w.offset_ns, w.uncertainty_ns = best

    @property
    def live(self) -> list[_Worker]:
        return [w for w in self.workers if w.handle.lost is None]

    # -- one run ----------------------------------------------------------------------------
    async def begin(
        self,
        job_for: Callable[[int, int], Job],
        writer: RecordWriter,
        prompt_of: Callable[[int], tuple[str | None, str | None]],
        stats: LiveStats | None = None,
    ) -> None:
        """Prepare every live worker for a run: ``job_for(k, offset)`` is the ``k``-th live
        worker's job, given its clock's offset so that the run's t0 is expressed on it."""
        self._writer, self._prompt_of, self._stats = writer, prompt_of, stats
        self.lost, self.failed, self.failure = [], False, ""
        for w in self.workers:
            w.in_flight, w.scheduled, w.lost_rows, w.lag = {}, 0, 0, {}
        await asyncio.gather(
            *(
                self._guard(w, w.handle.call("prepare", job_for(k, w.offset_ns)))
                for k, w in enumerate(self.live)
            )
        )

    def watch(self, watch: ServerWatch) -> None:
        """Feed this run's request statuses to ``watch`` (a server that went away stops the
        run; workers are not held at a gate while it is probed)."""
        self._watch = watch

    def _watched(self, statuses: list[str]) -> None:
        if self._watch is not None:
            for status in statuses:
                self._watch.saw(status)

    async def phase(
        self, shares: Sequence[Share], *, warmup: bool, duration_s: float | None
    ) -> None:
        """Send every share from one common instant; returns when every worker has finished
        (or was lost). Share ``k`` goes to the ``k``-th live worker."""
        live = self.live
        if not live:  # every worker was lost: nothing can send the rest
            self._fail("every worker was lost")
            return
        assert len(shares) <= len(live)
        lead = 200_000_000 + 4 * max((w.uncertainty_ns for w in live), default=0)
        start = self.clock() + lead
        deadline = None if duration_s is None else start + int(duration_s * 1e9)
        loop = asyncio.get_running_loop()
        self._warmup = warmup
        used = []
        for share, w in zip(shares, live):
            w.share, w.started, w.done = share, 0, loop.create_future()
            w.order = Order(
                share,
                warmup,
                start + w.offset_ns,
                None if deadline is None else deadline + w.offset_ns,
            )
            used.append(w)
        done = [w.done for w in used if w.done is not None]
        try:
            await asyncio.gather(*(self._guard(w, w.handle.call("start", w.order)) for w in used))
            await asyncio.wait(done)  # not gather: a cancelled gather would cancel them too
            for future in done:
                future.result()  # a worker's own failure, named
        except asyncio.CancelledError:
            # the run is stopping: every worker cancels its requests and ships their rows
            await asyncio.shield(self._drain_stop(done))
            raise

    async def _drain_stop(self, done: list[asyncio.Future[None]]) -> None:
        await self.stop()
        await asyncio.wait(done, timeout=30)

    async def stop(self) -> None:
        """Stop every live worker's phase; their requests in flight end as cancelled rows."""
        await asyncio.gather(
            *(self._guard(w, w.handle.call("stop")) for w in self.live), return_exceptions=True
        )

    async def end(self) -> list[dict[str, Any]]:
        """Close the run on every worker; what the run keeps about each (its clock, its load)."""
        for w in self.live:
            with contextlib.suppress(WorkerLost, WorkerFailed):
                w.lag = await w.handle.call("finish")
        self._writer, self._watch = None, None
        return self.entries()

    def entries(self) -> list[dict[str, Any]]:
        """What the run keeps about each worker: who, its clock's offset, its share, its fate."""
        return [self._entry(w) for w in self.workers]

    @property
    def scheduled(self) -> int:
        return sum(w.scheduled for w in self.workers)

    def lag(self) -> list[dict[str, float]]:
        return [w.lag for w in self.workers]

    def _entry(self, w: _Worker) -> dict[str, Any]:
        return {
            **w.info,
            "worker": w.handle.index,
            "kind": w.handle.kind,
            "offset_ns": w.offset_ns,
            "offset_uncertainty_ns": w.uncertainty_ns,
            "scheduled": w.scheduled,
            "lost": w.handle.lost if w.handle.lost not in (None, "closed") else None,
            "lost_requests": w.lost_rows,
            "loop_lag_ms": w.lag,
        }

    async def close(self) -> None:
        await asyncio.gather(*(w.handle.close() for w in self.workers), return_exceptions=True)

    # -- from the workers -------------------------------------------------------------------
    async def _guard(self, w: _Worker, call: Any) -> Any:
        try:
            return await call
        except WorkerLost:
            return None  # _on_lost accounts for it
        except WorkerFailed as exc:
            raise WorkerError(
                f"worker {w.handle.index} ({_where(w.info)}): {exc}", exc.exit_code
            ) from None

    def _on_drained(self, index: int, drained: Drained) -> None:
        """A shipment (any thread): starts and rows into the accounting, rows to the writer."""
        w = self.workers[index]
        with self._lock:
            now = self.clock()
            for i in drained.started:
                w.in_flight[i] = now
            w.started += len(drained.started)
            for row in drained.rows.requests:
                w.in_flight.pop(row[1], None)
            if self._writer is not None and drained.rows:
                self._writer.add_rows(drained.rows)
            # a row for each request still in flight (a kill -9 of this process keeps them);
            # one that started and ended within the shipment needs none
            still = [i for i in drained.started if i in w.in_flight]
            if self._writer is not None and still:
                self._writer.add_for(
                    index, [self._record(i, "in_flight", now, IN_FLIGHT) for i in still]
                )
            if self._stats is not None:
                _count(self._stats, drained)
            if self._watch is not None and drained.rows and self._loop is not None:
                statuses = [row[_STATUS] for row in drained.rows.requests]
                tell(self._loop, self._watched, statuses)
        if drained.done is not None:
            scheduled = int(drained.done["scheduled"])
            error = drained.error
            if w.done is not None:
                tell(w.done.get_loop(), self._phase_done, w, scheduled, error)

    def _phase_done(self, w: _Worker, scheduled: int, error: str | None) -> None:
        w.scheduled += scheduled
        if w.done is not None and not w.done.done():
            if error is not None:
                w.done.set_exception(
                    WorkerError(f"worker {w.handle.index} ({_where(w.info)}) failed: {error}")
                )
            else:
                w.done.set_result(None)

    def _on_lost(self, index: int, reason: str) -> None:
        """A worker died (on the loop): its requests in flight, and in an open loop those that
        fell due, become ``worker_lost`` rows."""
        w = self.workers[index]
        line = f"worker {index} ({_where(w.info)}) was lost: {reason}"
        with self._lock:
            rows, due = self._lost_records(w, reason)
            if self._writer is not None and rows:
                self._writer.add_for(index, rows)
            w.lost_rows += len(rows)
        in_phase = w.done is not None and not w.done.done()
        if in_phase:
            w.scheduled += w.started + due
            assert w.done is not None
            w.done.set_result(None)
        if self._writer is None and not in_phase:
            return  # between runs: it is simply not used again
        self.lost.append(f"{line}; {len(rows)} of its requests recorded as worker_lost")
        if not self.live:
            self._fail("every worker was lost")
        elif self.on_loss == "stop":
            self._fail("a worker was lost (--on-worker-loss stop)")
            asyncio.ensure_future(self.stop())

    def _fail(self, why: str) -> None:
        if not self.failed:
            self.failed, self.failure = True, why

    def _lost_records(self, w: _Worker, reason: str) -> tuple[list[RequestRecord], int]:
        """Rows for its requests in flight and for those due but not seen starting (counted)."""
        now = self.clock()
        error = f"worker {w.handle.index} was lost ({reason}) with this request in flight"
        records = [
            self._record(i, "worker_lost", seen, error) for i, seen in sorted(w.in_flight.items())
        ]
        w.in_flight.clear()
        due_before = len(records)
        share, order = w.share, w.order
        if (
            share is not None
            and order is not None
            and share.open_loop
            and w.done is not None
            and not w.done.done()
        ):
            assert share.indices is not None and share.planned_s is not None
            start = order.start_ns - w.offset_ns  # back on the coordinator's clock
            due = (
                f"worker {w.handle.index} was lost ({reason}); this request fell due before "
                "its loss was seen"
            )
            for j in range(w.started, len(share.indices)):
                planned = start + int(share.planned_s[j] * 1e9)
                if planned > now:
                    break
                records.append(self._record(int(share.indices[j]), "worker_lost", planned, due))
        return records, len(records) - due_before

    def _record(self, index: int, status: str, intended: int, error: str) -> RequestRecord:
        """A row written here on a worker's behalf: a request still in flight, or lost."""
        prompt_id, dataset = self._prompt_of(index)
        return RequestRecord(
            index=index,
            warmup=self._warmup,
            prompt_id=prompt_id,
            dataset=dataset,
            status=status,
            intended_ns=intended,
            error=error,
        )


_STATUS, _TTFT = COLUMNS.index("status"), COLUMNS.index("ttft_ms")


def _count(stats: LiveStats, drained: Drained) -> None:
    """The progress display's counters, from a shipment (the workers' own are not shared)."""
    for row in drained.rows.requests:
        if row[_STATUS] == "ok":
            stats.completed += 1
            if row[_TTFT] is not None:
                stats.recent_ttft_ms.append(row[_TTFT])
        else:
            stats.failed += 1
    stats.in_flight += len(drained.started) - len(drained.rows)


def _where(info: dict[str, Any]) -> str:
    where = f"pid {info.get('pid')}"
    if info.get("host"):
        where += f" on {info['host']}"
    return where
