"""A worker's side of a scaled-out run: its own event loop, its own client, its own clock.

An :class:`Engine` runs a uvloop event loop in a thread and exposes plain, quick, thread-safe
methods, so that the same object serves a worker process (driven over a pipe,
:mod:`perfbench.scale.local`) and a Ray actor (driven by remote calls,
:mod:`perfbench.scale.ray`). Requests are timed on this process's monotonic clock; the
coordinator maps the run's timeline onto its own clock with the offset it measured, and
durations never cross clocks. Records are encoded into database rows here, off the loop, so
that the coordinator's one writer only inserts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from perfbench.client import Client, RequestRecord
from perfbench.config import ClientSpec
from perfbench.execute import Execution, LiveStats, LoopLag, Template, Templates
from perfbench.load.partition import Share
from perfbench.store.writer import Rows, encode


@dataclass(frozen=True)
class Job:
    """What a worker needs for one run: where to send, what, and the run's start on its clock."""

    run_id: int
    t0_ns: int  # the run's t0, on this worker's clock
    client: ClientSpec
    templates: dict[int, Template]
    prompts: int  # the workload's prompt count (request k takes prompt k mod prompts)
    pool: int  # connections to keep
    tokenizer: str | None = None  # counts outputs the server gave no usage for
    salt: int = 0  # the run's: picks each request's own head (a unique synthetic prompt)


@dataclass(frozen=True)
class Order:
    """Send ``share`` from ``start_ns`` (this worker's clock) until ``deadline_ns``."""

    share: Share
    warmup: bool
    start_ns: int
    deadline_ns: int | None = None


@dataclass
class Drained:
    """What a worker hands back since the last drain: rows, the indices it started, and the
    phase's end (its scheduled count) once every record of the phase is in ``rows``."""

    rows: Rows
    started: list[int]
    done: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _Phase:
    execution: Execution
    task: asyncio.Future[Any]
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _State:
    job: Job
    client: Client
    templates: Templates
    count: Callable[[str], int] | None
    lag: LoopLag
    lag_task: asyncio.Task[None]
    phase: _Phase | None = None
    stats: LiveStats = field(default_factory=LiveStats)


class Engine:
    """One worker: a uvloop event loop in a thread, and the requests of its shares."""

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.clock = time.perf_counter_ns
        self._records: queue.SimpleQueue[RequestRecord] = queue.SimpleQueue()
        self._started: collections.deque[int] = collections.deque()
        self._state: _State | None = None
        self._loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            self._loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency, but not on Windows
            self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"perfbench-worker-{worker}", daemon=True
        )
        self._thread.start()

    # -- the coordinator's calls (any thread; each returns quickly) --------------------------
    def now(self) -> int:
        """This worker's clock, for the coordinator's offset probe."""
        return self.clock()

    def describe(self) -> dict[str, Any]:
        return {"worker": self.worker, "host": socket.gethostname(), "pid": os.getpid()}

    def prepare(self, job: Job) -> None:
        """Open the client for ``job`` (connections pre-opened) and load its tokenizer."""
        self._run(self._prepare(job))

    def start(self, order: Order) -> None:
        """Begin sending ``order``'s share at its start instant; returns at once."""
        self._run(self._start(order))

    def drain(self) -> Drained:
        """Rows and starts since the last drain; ``done`` once the phase is over and drained."""
        state = self._state
        phase = state.phase if state is not None else None
        finished = phase is not None and phase.result is not None  # read before the records
        records: list[RequestRecord] = []
        get = self._records.get_nowait
        try:
            while True:
                records.append(get())
        except queue.Empty:
            pass
        started: list[int] = []
        pop = self._started.popleft
        try:
            while True:
                started.append(pop())
        except IndexError:
            pass
        rows = Rows([], [])
        if records:
            assert state is not None
            rows = encode(
                records,
                state.job.run_id,
                state.job.t0_ns,
                worker=self.worker,
                count=state.count,
            )
        drained = Drained(rows, started)
        if finished:
            assert phase is not None and state is not None
            drained.done, drained.error = phase.result, phase.error
            state.phase = None
        return drained

    def stop(self) -> None:
        """Stop the current phase: requests in flight end as cancelled records."""
        state = self._state
        if state is not None and state.phase is not None:
            self._loop.call_soon_threadsafe(state.phase.task.cancel)

    def finish(self) -> dict[str, float]:
        """Close the job's client; returns this worker's event-loop lag figures."""
        lag: dict[str, float] = self._run(self._finish())
        return lag

    def shutdown(self) -> None:
        if self._state is not None:
            with contextlib.suppress(Exception):  # shutting down: nothing left to report it to
                self.finish()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # -- on the worker's loop ---------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    async def _prepare(self, job: Job) -> None:
        if self._state is not None:
            await self._finish()
        count = None
        if job.tokenizer is not None:
            from perfbench.workload.tokenizers import load_tokenizer

            count = load_tokenizer(job.tokenizer).count
        client = Client(job.client, pool_size=job.pool, clock=self.clock)
        await client.__aenter__()
        try:
            await client.check()  # every worker must reach the server, not only the coordinator
        except BaseException:
            await client.__aexit__(None, None, None)
            raise
        await client.prewarm(job.pool)
        lag = LoopLag(self.clock)
        self._state = _State(
            job,
            client,
            Templates.shipped(job.templates, job.prompts, job.salt),
            count,
            lag,
            asyncio.create_task(lag.watch()),
        )

    async def _start(self, order: Order) -> None:
        state = self._state
        assert state is not None, "prepare() comes first"
        execution = Execution(
            state.client,
            state.templates,
            self._records.put,
            state.stats,
            self.clock,
            started=self._started,  # type: ignore[arg-type]
        )
        task = asyncio.ensure_future(self._phase(order, execution))
        phase = state.phase = _Phase(execution, task)
        task.add_done_callback(functools.partial(self._ended, phase))

    async def _phase(self, order: Order, execution: Execution) -> None:
        delay = order.start_ns - self.clock()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        share = order.share
        if share.open_loop:
            assert share.planned_s is not None and share.indices is not None
            planned = (order.start_ns + (share.planned_s * 1e9).astype("int64")).tolist()
            slots = None if share.prompt_slots is None else share.prompt_slots.tolist()
            await execution.open(planned, share.indices.tolist(), share.slots or None, slots)
        else:
            await execution.closed(
                share.slots, share.closed_indices(), order.deadline_ns, warmup=order.warmup
            )

    @staticmethod
    def _ended(phase: _Phase, task: asyncio.Future[Any]) -> None:
        error = None
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            error = f"{type(exc).__name__}: {exc}"
        phase.error = error
        phase.result = {"scheduled": phase.execution.scheduled}

    async def _finish(self) -> dict[str, float]:
        state, self._state = self._state, None
        if state is None:
            return {}
        state.lag_task.cancel()
        await state.client.__aexit__(None, None, None)
        return state.lag.stats()
