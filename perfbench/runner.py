"""``perfbench.run``: the Python API behind ``perfbench perf``. One spec in, results out.

It wires the stages together and owns nothing else: prompts from the workload, arrival plans
from the load stage, requests through the client, records into the store writer, figures from
the metrics stage. Stopping (SIGINT, SIGTERM) is handled here: scheduling stops, requests in
flight are cancelled and recorded as such, the writer drains, and the run is marked
interrupted, so that ``scheduled == recorded`` holds whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import math
import os
import secrets
import signal
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from perfbench import metadata
from perfbench.client import Client, RequestRecord
from perfbench.client.record import started
from perfbench.client.servermetrics import RunMetrics, metrics_url
from perfbench.config import ClientSpec, LoadSpec, PerfSpec
from perfbench.errors import (
    ConfigError,
    PerfbenchError,
    ServerRejected,
    ServerUnreachable,
    StoreError,
)
from perfbench.execute import (
    Execution,
    LiveStats,
    LoopLag,
    Sessions,
    Templates,
    merge_lag,
    tell,
)
from perfbench.load import Trace, arrival_offsets, constant_offsets, ramp_offsets, read_trace
from perfbench.load.partition import Share, closed_shares, open_shares
from perfbench.load.watch import ServerWatch, threshold_for
from perfbench.metrics import Summary, summarize
from perfbench.redact import redact_url
from perfbench.sim.embedded import EmbeddedSim
from perfbench.store import RecordWriter, Store
from perfbench.store.runs import Run, append_server_samples, now_iso, owner
from perfbench.workload import Prompt, load_prompts
from perfbench.workload.base import last_user_text
from perfbench.workload.replay import trace_prompts

if TYPE_CHECKING:
    from rich.console import RenderableType

    from perfbench.compare.determinism import Determinism
    from perfbench.grade.run import Grades
    from perfbench.scale.fleet import Fleet

__all__ = ["BatchResult", "LiveStats", "Observer", "RunResult", "run"]

Clock = Callable[[], int]
#: records queued for the writer beyond which no request starts until it catches up: a client
#: faster than its database would otherwise grow without bound (about 1 KB a record)
WRITER_BACKLOG = 20_000
EXIT_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Observer(Protocol):
    def begin(self, stats: LiveStats) -> None: ...
    def end(self) -> None: ...


@dataclass(frozen=True)
class RunResult:
    run_id: int
    status: str  # completed | interrupted | failed
    summary: Summary


@dataclass
class BatchResult:
    """What ``run`` returns: one result per load, and how the batch ended."""

    db_path: str
    runs: list[RunResult]
    stopped_by: int | None = None  # the signal that interrupted the batch, if any
    failure: str | None = None  # why the batch stopped early without a signal (a worker lost)
    lost: list[str] = field(default_factory=list)  # one line per worker lost, naming it
    max_error_rate: float | None = None  # PerfSpec.max_error_rate: above it, exit 1
    grades: Grades | None = None  # with PerfSpec.grade
    grade_error: PerfbenchError | None = None  # why grading failed after the runs, if it did
    determinism: Determinism | None = None  # with PerfSpec.determinism
    determinism_error: PerfbenchError | None = None  # why it could not be computed, if so
    notes: list[str] = field(default_factory=list)  # what the batch changed of what was asked

    @property
    def summaries(self) -> list[Summary]:
        return [r.summary for r in self.runs]

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON document; with grades, ``{"perf": …, "grades": …}``."""
        from perfbench.versioned import versioned

        perf = {"runs": [s.to_dict() for s in self.summaries]}
        if not self.grades and not self.determinism:
            return perf
        out = {"perf": versioned(perf)}
        if self.grades:
            out["grades"] = versioned(self.grades.to_dict())
        if self.determinism:
            out["determinism"] = versioned(self.determinism.to_dict())
        return out

    def csv_rows(self) -> list[dict[str, Any]]:
        from perfbench.report.export import flat

        return [flat(s) for s in self.summaries]

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.console import Group

        from perfbench.report.tables import render

        parts = [render(self.summaries, quiet=quiet)]
        if self.grades:
            parts.append(self.grades.render(quiet=quiet))
        if self.determinism:
            parts.append(self.determinism.render(quiet=quiet))
        return Group(*parts)

    def too_many_errors(self) -> list[str]:
        """One line per run whose failed share is above ``max_error_rate``."""
        rate = self.max_error_rate
        if rate is None or self.failure is not None:  # a stop says why on its own
            return []
        return [
            f"run {r.run_id}: {s.failed} of {s.measured} requests failed "
            f"({s.failed / s.measured:.0%}), more than --max-error-rate {rate:g}; "
            "`perfbench report --errors` lists why"
            for r in self.runs
            for s in (r.summary,)
            if s.measured and s.failed / s.measured > rate
        ]

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return EXIT_SIGNALS.get(signal.Signals(self.stopped_by), 130)
        if self.failure is not None or any(r.status == "failed" for r in self.runs):
            return 1
        if any(r.summary.measured and r.summary.ok == 0 for r in self.runs):
            return 1
        if self.too_many_errors():
            return 1
        return 0


def run(spec: PerfSpec, *, observer: Observer | None = None) -> BatchResult:
    """Run every load of ``spec`` in turn against one server, recording into one database.

    >>> from perfbench import ClientSpec, LoadSpec, PerfSpec, run   # doctest: +SKIP
    >>> result = run(PerfSpec(ClientSpec(), loads=(LoadSpec(parallel=4, number=100),)))
    >>> result.runs[0].summary.mean_ttft_ms
    """
    batch = _Batch(spec, observer)
    result = _event_loop_run(batch.main())
    result.notes = batch.notes
    if spec.grade is not None and result.stopped_by is None:
        from perfbench.grade.run import grade_runs

        try:
            result.grades = grade_runs(
                spec.db_path, [str(r.run_id) for r in result.runs], spec.grade
            )
        except PerfbenchError as exc:  # the runs are measured and stored: report them anyway
            result.grade_error = exc
    if spec.determinism is not None and result.stopped_by is None and len(result.runs) > 1:
        from perfbench.compare.determinism import determinism

        try:
            result.determinism = determinism(
                spec.db_path,
                [str(r.run_id) for r in result.runs],
                tokenizer=spec.workload.tokenizer,
                notes=batch.notes,
            )
        except PerfbenchError as exc:
            result.determinism_error = exc
    return result


def _event_loop_run(coro: Awaitable[BatchResult]) -> BatchResult:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on Windows
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


class _Batch:
    def __init__(self, spec: PerfSpec, observer: Observer | None) -> None:
        self.spec = spec
        self.observer = observer
        self.clock: Clock = time.perf_counter_ns
        self.stopped_by: int | None = None
        self._stop = asyncio.Event()
        self._current: list[asyncio.Task[Any]] = []
        self._answer_book: Path | None = None
        self.failure: str | None = None  # why the batch stopped early (a worker lost), if it did
        self.lost: list[str] = []  # one line per worker lost
        self._halt: str | None = None  # why the run had to stop (not a signal), if it did
        self._claimed: Any = None  # a resumed run's former (status, owner)
        self._resume_sent = False  # whether a resumed run got as far as sending
        self._traces: dict[tuple[str, float, int], Trace] = {}
        self.notes: list[str] = []  # what the batch changed of what was asked (--determinism)
        # --determinism: one salt for every run, so that each level sends the same prompts
        self._salt: int | None = None

    async def main(self) -> BatchResult:
        spec = self.spec
        prompts = load_prompts(spec.workload)
        for load in spec.loads:  # a bad trace is found before anything starts
            if load.trace is not None:
                self._trace(load)
        if spec.grade is not None and spec.grade.think is not None and spec.grade.think.judge_url:
            from perfbench.grade.judge import resolve_model

            resolve_model(spec.grade.think)  # a dead judge is found before the run, not after
        if spec.grade is not None and not any(p.answer is not None for p in prompts):
            raise ConfigError(
                f"--grade: the {spec.workload.dataset} prompts carry no gold answers; benchmark "
                "an eval dataset (e.g. --dataset math_500, gsm8k, synthetic_math) or drop --grade"
            )
        if spec.determinism is not None:
            from perfbench.compare.determinism import level_loads

            loads, self.notes = level_loads(spec.loads, spec.determinism, len(prompts))
            # the levels as runs (the re-run's number may be smaller): checked and planned now
            spec = self.spec = dataclasses.replace(spec, loads=loads, determinism=None)
            self._salt = secrets.randbits(48)
        resumed = None
        if spec.resume is not None:
            resumed, load = self._resumable(prompts)
            spec = self.spec = dataclasses.replace(spec, loads=(load,))
            try:
                return await self._batch(prompts, resumed)
            finally:
                if not self._resume_sent:  # nothing sent: the run is given back as it was
                    store = Store(spec.db_path)
                    try:
                        store.release(resumed.id, self._claimed)
                    finally:
                        store.close()
        return await self._batch(prompts, None)

    async def _batch(self, prompts: list[Prompt], resumed: Run | None) -> BatchResult:
        spec = self.spec
        # the workers first: a Ray cluster that cannot be used is found before anything is
        # recorded or sent
        fleet = await self._fleet(embedded=spec.client.url is None)
        try:
            store = Store(spec.db_path, create=True)
        except BaseException:
            if fleet is not None:
                await fleet.close()
            raise
        loop = asyncio.get_running_loop()
        for sig in EXIT_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        sim: EmbeddedSim | None = None
        try:
            client_spec = spec.client
            if client_spec.url is None:
                sim = EmbeddedSim(self._sim_args(prompts)).__enter__()
                client_spec = dataclasses.replace(client_spec, url=sim.url)
            batch = uuid.uuid4().hex[:12]
            host = metadata.collect(type(loop).__module__.split(".")[0])  # once: it runs git
            results: list[RunResult] = []
            for load, replicate in itertools.product(spec.loads, range(1, spec.repeat + 1)):
                if self._stop.is_set() or self.failure is not None or self._halt is not None:
                    break
                if results and spec.pause_s > 0:  # --sleep-interval: let the server settle
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), spec.pause_s)
                    if self._stop.is_set():
                        break
                if replicate == 1:
                    first = None
                run_id = await self._one(
                    store,
                    client_spec,
                    load,
                    prompts,
                    batch,
                    sim is not None,
                    host,
                    fleet,
                    replica=(first, replicate) if spec.repeat > 1 else None,
                    resumed=resumed,
                )
                first = first or run_id
                run = store.run(run_id)
                results.append(RunResult(run_id, run.status, summarize(store, run)))
            return BatchResult(
                str(spec.db_path),
                results,
                self.stopped_by,
                self.failure,
                lost=self.lost,
                max_error_rate=spec.max_error_rate,
            )
        finally:
            for sig in EXIT_SIGNALS:
                loop.remove_signal_handler(sig)
            if fleet is not None:
                await fleet.close()
            if sim is not None:
                sim.__exit__()
            if self._answer_book is not None:
                self._answer_book.unlink(missing_ok=True)
            store.close()

    def _trace(self, load: LoadSpec) -> Trace:
        """The load's trace, read once (the batch's loads may share it)."""
        assert load.trace is not None
        key = (load.trace, load.trace_speed, load.trace_block_size)
        if key not in self._traces:
            self._traces[key] = read_trace(
                load.trace, speed=load.trace_speed, block_size=load.trace_block_size
            )
        return self._traces[key]

    def _resumable(self, prompts: list[Prompt]) -> tuple[Run, LoadSpec]:
        """The run ``spec.resume`` names, checked and claimed before anything starts (one line
        if it cannot be), and which of the spec's loads is its."""
        from perfbench import resume

        spec = self.spec
        assert spec.resume is not None
        if spec.repeat != 1:
            raise ConfigError("--resume continues one run: drop --repeat")
        if not Path(spec.db_path).exists():
            raise StoreError(f"no database at {spec.db_path}: --resume needs the run's --db")
        store = Store(spec.db_path)
        try:
            run = resume.check(store, spec.resume)
            differ = [resume.differences(run, _resolve_number(x, prompts)) for x in spec.loads]
            if all(differ):
                raise resume.refuse_load(run, min(differ, key=len))
            token = resume.claim(store, run)
        finally:
            store.close()
        self._claimed = token
        return run, spec.loads[differ.index([])]

    async def _fleet(self, embedded: bool) -> Fleet | None:
        """The run's workers, when the load is spread over several (``--workers``, ``--ray``)."""
        from perfbench.scale import open_fleet, worker_count

        count = worker_count(self.spec, embedded=embedded)
        if count is None and self.spec.ray is None:
            return None
        return await open_fleet(self.spec, count, self.clock)

    def _sim_args(self, prompts: Sequence[Prompt]) -> list[str]:
        """The embedded simulator's flags; with gold answers, an answer book so that it answers
        them (a temporary file, keyed by the text each request carries)."""
        args = list(self.spec.embedded_args)
        graded = [p for p in prompts if p.answer is not None]
        if not graded or any(a == "--answers" or a.startswith("--answers=") for a in args):
            return args
        from perfbench.sim.answers import write_answer_book

        fd, name = tempfile.mkstemp(prefix="perfbench-answers-", suffix=".jsonl")
        os.close(fd)
        self._answer_book = Path(name)
        path = self._answer_book
        write_answer_book((_book_row(p) for p in graded), path)
        return [*args, "--answers", str(path)]

    def _on_signal(self, sig: int) -> None:
        if self.stopped_by is None:
            self.stopped_by = sig
        self._stop.set()
        for task in self._current:
            task.cancel()

    async def _one(
        self,
        store: Store,
        client_spec: ClientSpec,
        load: LoadSpec,
        prompts: list[Prompt],
        batch: str,
        embedded: bool,
        host: dict[str, Any],
        fleet: Fleet | None,
        replica: tuple[int | None, int] | None = None,
        resumed: Run | None = None,
    ) -> int:
        """One run of ``load``; ``replica``: (the first replicate's id, None for the first; this
        one's number) when the load is repeated; ``resumed``: the run to finish instead of a
        new one (perfbench/resume.py)."""
        from perfbench import resume

        spec = self.spec
        load = _resolve_number(load, prompts)
        offsets = None
        traced = False
        reuse: dict[str, int] = {}
        if load.trace is not None:
            trace = self._trace(load)
            prompts = trace_prompts(trace, spec.workload)
            offsets = trace.offsets
            if load.duration is not None:
                offsets = offsets[offsets < load.duration]
            if load.number is not None:
                offsets = offsets[: load.number]
            traced = True
            reuse = trace.reuse(len(offsets))
        elif load.open_loop:
            offsets = _plan(load)
        planned = len(offsets) if offsets is not None else load.number
        sessions = None  # conversations: the sessions planned (planned counts their turns)
        if spec.workload.sessions:
            sessions, planned = planned, _turns(prompts, load.warmup, planned)
        again = None
        if resumed is not None:
            again = resume.plan(store, resumed, load, planned, {p.id for p in prompts})
            if offsets is not None:  # the rest at the run's rate
                offsets = _plan(
                    dataclasses.replace(load, number=int(again.todo.size), duration=None)
                )
        if offsets is not None:
            pool = load.concurrency or min(max(len(offsets), 1), 1024)
        else:
            assert load.parallel is not None
            pool = load.parallel
        assert client_spec.url is not None
        async with (
            Client(client_spec, pool_size=pool, clock=self.clock) as client,
            self._server_metrics(client_spec) as server_metrics,
        ):
            models, model = await _served_model(client, client_spec)
            client_spec = dataclasses.replace(client_spec, model=model)
            await server_metrics.check()
            if fleet is None:
                await client.prewarm(min(pool, planned or pool, 1024))
            count = _local_counter(spec.workload.tokenizer)
            unique = _unique(prompts, again.run if again is not None else None, self._salt)
            templates = Templates(
                client_spec, model, prompts, count, salt=unique["salt"] if unique else 0
            )
            watch = ServerWatch(
                threshold_for(pool),
                functools.partial(_probe, client),
                self.clock,
                spec.wait_for_server,
                on_gone=self._halt_run,
            )
            server = {
                "models": models,
                "embedded": embedded,
                "sim_args": list(spec.embedded_args) if embedded else None,
            }
            if again is not None:
                self._resume_sent = True
                run_id, t0 = again.run.id, again.t0(store, self.clock())
                # the time it ran before (a killed run never wrote it: its last stamp)
                before_s = again.run.duration_s or store.last_end_ns(run_id) / 1e9
                set_aside = store.set_aside(run_id, again.todo.tolist(), again.number)
                dropped = store.drop_warmup_in_flight(run_id, again.number)
                if dropped:
                    set_aside["warmup in_flight"] = dropped
                store.update_run(run_id, ended_at=None)
            else:
                t0 = self.clock()
                run_id = store.create_run(
                    name=spec.name,
                    batch=batch,
                    t0_ns=t0,
                    endpoint=redact_url(client_spec.url or ""),
                    model=model,
                    load={
                        **dataclasses.asdict(load),
                        "planned": planned,
                        **({"planned_sessions": sessions} if spec.workload.sessions else {}),
                    },
                    client=client_spec.redacted(),
                    workload={
                        **dataclasses.asdict(spec.workload),
                        "prompts": len(prompts),
                        "unique_prompts": unique,
                        **({"trace_reuse": reuse} if reuse else {}),
                    },
                    server={**server, "metrics": server_metrics.info()},
                    host=host,
                    command=spec.command,
                    owner=owner(),
                )
                if replica is not None:
                    store.update_run(
                        run_id, replicate_of=replica[0] or run_id, replicate=replica[1]
                    )
                store.add_prompts(run_id, prompts)
            loop = asyncio.get_running_loop()
            writer = RecordWriter(
                spec.db_path,
                run_id,
                t0,
                count=count,
                on_error=lambda exc: tell(
                    loop, self._halt_run, "the database could not be written"
                ),
            ).start()
            sending = int(again.todo.size) if again is not None else planned
            warm = _turns(prompts, 0, load.warmup) if spec.workload.sessions else load.warmup
            stats = LiveStats(label=f"run {run_id}", total=(sending or 0) + (warm or 0))
            think = spec.workload.think_time if spec.workload.sessions else None
            plan = _Plan(load, pool, offsets, traced, think_s=think)
            if again is not None:
                plan = dataclasses.replace(plan, todo=again.todo, warm_start=again.warm_start)
            if fleet is None:
                driver: _Driver = _InProcess(client, templates, writer, stats, self.clock, watch)
            else:
                driver = _Scaled(fleet, templates, writer, stats, run_id, t0, spec, client_spec)
                fleet.watch(watch)
            if self.observer is not None:
                self.observer.begin(stats)
            status = "failed"
            segment_ns = self.clock() - t0
            try:
                await server_metrics.start(
                    t0, functools.partial(append_server_samples, spec.db_path, run_id)
                )
                await driver.begin(plan)
                if driver.workers:  # who sends, before anything is sent (kill -9 finds them here)
                    store.update_run(run_id, workers=driver.workers)
                if load.warmup and not self._halted(driver, watch):
                    await self._phase(driver.warmup(plan))
                    await server_metrics.measured()
                if not self._halted(driver, watch):
                    await self._phase(driver.measured(plan))
                status = (
                    "failed"
                    if driver.failed or watch.gone
                    else "interrupted"
                    if self._stop.is_set()
                    else "completed"
                )
            finally:
                if self.observer is not None:
                    self.observer.end()
                watch.cancel()
                health: dict[str, Any] = {}
                try:
                    await server_metrics.finish()
                    health = {**(await driver.end()), **watch.record(t0)}
                finally:
                    unwritten = None
                    try:
                        recorded = writer.close()
                    except StoreError as exc:  # a full disk: what was written is kept
                        unwritten, recorded, status = exc, writer.written, "failed"
                        health["stopped"] = str(exc)
                    scheduled = driver.scheduled
                    if again is not None:  # the run's rows: the earlier ones and this segment's
                        counts = store.count_by_status(run_id, warmup=True)
                        scheduled = sum(counts.values())
                        recorded = scheduled - counts.get("in_flight", 0)
                        entry = again.entry(segment_ns, set_aside)
                        health = resume.merged_health(again.run.health, health, entry)
                    try:
                        store.update_run(
                            run_id,
                            status=status,
                            ended_at=now_iso(),
                            duration_s=(self.clock() - t0) / 1e9
                            if again is None
                            else float(before_s) + (self.clock() - t0 - segment_ns) / 1e9,
                            scheduled=scheduled,
                            recorded=recorded,
                            health=health,
                            server={**server, "metrics": server_metrics.info()},
                            **({"workers": driver.workers} if driver.workers else {}),
                        )
                    except sqlite3.Error as exc:
                        if unwritten is None:
                            raise StoreError(f"cannot write to {spec.db_path} ({exc})") from exc
            self.lost.extend(driver.lost)
            kept = f"everything measured is in {spec.db_path}"
            if unwritten is not None:
                self.failure = f"run {run_id} stopped: {unwritten}"
            elif driver.failed:
                self.failure = f"run {run_id} stopped: {driver.failure}; {kept}"
            elif watch.gone:
                self.failure = f"run {run_id} stopped: {watch.gone}; {kept}"
            return run_id

    def _server_metrics(self, client_spec: ClientSpec) -> RunMetrics:
        """The run's /metrics scraper: the address, and the client's headers (a gateway may
        want its key there too)."""
        sm = self.spec.server_metrics
        assert client_spec.url is not None
        headers = dict(client_spec.headers)
        if client_spec.api_key:
            headers["Authorization"] = f"Bearer {client_spec.api_key}"
        return RunMetrics(
            sm.enabled,
            sm.url or metrics_url(client_spec.url),
            interval=sm.interval,
            headers=headers,
            clock=self.clock,
        )

    async def _phase(self, coro: Awaitable[None]) -> None:
        """Run one phase; a stop signal (or a server gone) cancels it, and its requests record
        themselves."""
        task = asyncio.ensure_future(coro)
        self._current = [task]
        try:
            await task
        except asyncio.CancelledError:
            if not self._stop.is_set() and self._halt is None:
                raise
        finally:
            self._current = []

    def _halt_run(self, why: str) -> None:
        """The run cannot go on (the server went away, the database cannot be written): stop
        this run's phase; the batch ends after it."""
        self._halt = why
        for task in self._current:
            task.cancel()

    def _halted(self, driver: _Driver, watch: ServerWatch) -> bool:
        return (
            self._stop.is_set() or driver.failed or watch.gone is not None or self._halt is not None
        )


async def _served_model(client: Client, spec: ClientSpec) -> tuple[list[str], str]:
    """The served models, and the one to ask for: --model, checked against them, or the first."""
    models = await client.check()
    model = spec.model
    if model is None:
        if not models:
            answer = (
                f"HTTP {client.models_status}" if client.models_status != 200 else "an empty list"
            )
            raise ConfigError(f"{spec.models_url} gave no model list ({answer}): give --model")
        return models, models[0]
    if models and model not in models:
        raise ServerRejected(
            f"model {model!r} is not served by {spec.models_url} "
            f"(it serves: {', '.join(models)}); check --model"
        )
    return models, model


@dataclass(frozen=True)
class _Plan:
    """One run's plan: the load, its slots (or cap), and the open loop's arrival offsets."""

    load: LoadSpec
    pool: int
    offsets: np.ndarray | None  # seconds from the measured phase's start; None: closed loop
    traced: bool
    todo: np.ndarray | None = None  # a resumed run: the measured indices still to send
    warm_start: int = 0  # the first warm-up index (a resumed run's come after its last)
    think_s: float | None = None  # conversations: the think time between turns; None: none

    @property
    def warm_slots(self) -> int:
        return self.load.concurrency or self.pool

    def warmup_shares(self, workers: int) -> list[Share]:
        start = self.warm_start
        return closed_shares(self.warm_slots, start, start + self.load.warmup, workers)

    def measured_shares(self, workers: int) -> list[Share]:
        load, start = self.load, self.load.warmup
        if self.offsets is not None:
            slots = np.arange(len(self.offsets), dtype=np.int64) if self.traced else None
            return open_shares(self.offsets, start, load.concurrency, workers, slots, self.todo)
        end = start + load.number if load.number is not None else None
        return closed_shares(self.pool, start, end, workers, self.todo)


class _Driver(Protocol):
    """Sends a run's phases: in this process, or over workers."""

    workers: list[dict[str, Any]]

    @property
    def failed(self) -> bool: ...
    @property
    def failure(self) -> str: ...
    @property
    def lost(self) -> list[str]: ...
    @property
    def scheduled(self) -> int: ...
    async def begin(self, plan: _Plan) -> None: ...
    async def warmup(self, plan: _Plan) -> None: ...
    async def measured(self, plan: _Plan) -> None: ...
    async def end(self) -> dict[str, Any]: ...


class _InProcess:
    """The plan driven by this process's own event loop (``--workers 1``, the default)."""

    failed = False
    failure = ""

    def __init__(
        self,
        client: Client,
        templates: Templates,
        writer: RecordWriter,
        stats: LiveStats,
        clock: Clock,
        watch: ServerWatch,
    ) -> None:
        def sink(record: RequestRecord) -> None:
            writer.add(record)
            watch.saw(record.status)

        self.execution = Execution(client, templates, sink, stats, clock)
        self.execution.gate = watch.gate
        self.execution.hold = lambda: writer.backlog() > WRITER_BACKLOG
        # a row when each request starts, replaced by its end: a kill -9 keeps those in flight
        self.execution.on_start = lambda req: writer.add(started(req))
        self.clock = clock
        self.lost: list[str] = []
        self.workers: list[dict[str, Any]] = []
        self.lag = LoopLag(clock)
        self.sessions: Sessions | None = None
        self._lag_task: asyncio.Task[None] | None = None

    @property
    def scheduled(self) -> int:
        return self.execution.scheduled

    async def begin(self, plan: _Plan) -> None:
        self._lag_task = asyncio.create_task(self.lag.watch())
        if plan.think_s is not None:
            self.sessions = Sessions(self.execution, int(plan.think_s * 1e9))

    async def warmup(self, plan: _Plan) -> None:
        if self.sessions is not None:  # --warmup W: W whole sessions
            await self.sessions.closed(plan.warm_slots, plan.load.warmup, None, warmup=True)
            return
        (share,) = plan.warmup_shares(1)
        await self.execution.closed(share.slots, share.closed_indices(), None, warmup=True)

    async def measured(self, plan: _Plan) -> None:
        if self.sessions is not None:
            await self._sessions(plan, self.sessions)
            return
        (share,) = plan.measured_shares(1)
        if share.open_loop:
            assert share.planned_s is not None and share.indices is not None
            t_start = self.clock()
            planned = (t_start + (share.planned_s * 1e9).astype(np.int64)).tolist()
            slots = None if share.prompt_slots is None else share.prompt_slots.tolist()
            await self.execution.open(planned, share.indices.tolist(), share.slots or None, slots)
            return
        duration = plan.load.duration
        deadline = None if duration is None else self.clock() + int(duration * 1e9)
        await self.execution.closed(share.slots, share.closed_indices(), deadline, warmup=False)

    async def _sessions(self, plan: _Plan, sessions: Sessions) -> None:
        load = plan.load
        if plan.offsets is not None:  # open loop: the plan is when sessions start
            t_start = self.clock()
            planned = (t_start + (plan.offsets * 1e9).astype(np.int64)).tolist()
            await sessions.open(planned, load.concurrency)
            return
        assert load.parallel is not None
        last = None if load.number is None else load.warmup + load.number
        deadline = None if load.duration is None else self.clock() + int(load.duration * 1e9)
        await sessions.closed(load.parallel, last, deadline, warmup=False)

    async def end(self) -> dict[str, Any]:
        if self._lag_task is not None:
            self._lag_task.cancel()
        out: dict[str, Any] = {"loop_lag_ms": self.lag.stats()}
        if self.sessions is not None:
            out["sessions"] = {
                "started": self.sessions.next_session,
                "ended_by_a_failed_turn": self.sessions.ended_early,
            }
        if self.execution.skipped:
            out["skipped"] = self.execution.skipped
        if self.execution.holds:
            out["writer_waits"] = {
                "count": self.execution.holds,
                "seconds": round(self.execution.held_ns / 1e9, 3),
            }
        return out


class _Scaled:
    """The plan partitioned over a fleet of workers (``--workers N``, ``--ray``): the
    coordinator keeps the plan, the server check, the server metrics and the one writer."""

    def __init__(
        self,
        fleet: Fleet,
        templates: Templates,
        writer: RecordWriter,
        stats: LiveStats,
        run_id: int,
        t0: int,
        spec: PerfSpec,
        client_spec: ClientSpec,
    ) -> None:
        self.fleet, self.templates, self.writer, self.stats = fleet, templates, writer, stats
        self.run_id, self.t0, self.spec, self.client_spec = run_id, t0, spec, client_spec
        self.workers: list[dict[str, Any]] = []

    @property
    def failed(self) -> bool:
        return self.fleet.failed

    @property
    def failure(self) -> str:
        return self.fleet.failure

    @property
    def lost(self) -> list[str]:
        return self.fleet.lost

    @property
    def scheduled(self) -> int:
        return self.fleet.scheduled

    async def begin(self, plan: _Plan) -> None:
        from perfbench.scale.engine import Job

        n = len(self.fleet.live)
        if not n:
            return  # every worker was lost in an earlier run: the phases find none to send
        warm = plan.warmup_shares(n) if plan.load.warmup else []
        measured = plan.measured_shares(n)
        pools = [0] * n
        for share in (*warm, *measured):
            need = share.slots or min(share.planned or 1024, 1024)
            pools[share.worker] = max(pools[share.worker], need)
        table = self.templates.table(_prompt_slots(plan, self.templates.size))

        def job_for(k: int, offset: int) -> Job:
            return Job(
                self.run_id,
                self.t0 + offset,
                self.client_spec,
                table,
                self.templates.size,
                max(pools[k], 1),
                self.spec.workload.tokenizer,
                self.templates.salt,
            )

        def prompt_of(index: int) -> tuple[str | None, str | None]:
            k = index - plan.load.warmup if plan.traced else index
            t = self.templates.template(k % self.templates.size)
            return t.prompt_id, t.dataset

        await self.fleet.begin(job_for, self.writer, prompt_of, self.stats)
        self.workers = self.fleet.entries()

    async def warmup(self, plan: _Plan) -> None:
        n = len(self.fleet.live)
        await self.fleet.phase(plan.warmup_shares(n) if n else [], warmup=True, duration_s=None)

    async def measured(self, plan: _Plan) -> None:
        duration = None if plan.offsets is not None else plan.load.duration
        n = len(self.fleet.live)
        shares = plan.measured_shares(n) if n else []
        await self.fleet.phase(shares, warmup=False, duration_s=duration)

    async def end(self) -> dict[str, Any]:
        self.workers = await self.fleet.end()
        return {"loop_lag_ms": merge_lag(self.fleet.lag())}


def _prompt_slots(plan: _Plan, size: int) -> range:
    """The prompt slots a run can use: every prompt, or fewer when the run is shorter."""
    load = plan.load
    if plan.todo is not None:  # a resumed run's requests are anywhere in the plan
        return range(size)
    if plan.offsets is not None:
        return range(min(size, len(plan.offsets) + load.warmup))
    if load.number is not None:
        return range(min(size, load.number + load.warmup))
    return range(size)


async def _probe(client: Client) -> str | None:
    """None when the server answers its model list, else why not (the watch's probe)."""
    try:
        await client.check()
    except ServerUnreachable as exc:  # "cannot reach URL (WHY): what to do"
        text = str(exc)
        start, end = text.find(" ("), text.rfind("): ")
        return text[start + 2 : end] if 0 <= start < end else text
    except ServerRejected:
        return None  # it answered
    return None


def _local_counter(tokenizer: str | None) -> Callable[[str], int] | None:
    """The local tokenizer's count, when --tokenizer names one (the fallback is no better than chars/4)."""
    if tokenizer is None:
        return None
    from perfbench.workload.tokenizers import load_tokenizer

    return load_tokenizer(tokenizer).count


def _unique(
    prompts: Sequence[Prompt], resumed: Run | None, salt: int | None = None
) -> dict[str, int] | None:
    """How the run makes each request's synthetic prompt its own (``runs.workload``): the
    head's tokens and the salt its heads start from, drawn afresh for every run, so that the
    next run (or invocation) does not send these prompts again; a resumed run keeps its own,
    and ``salt`` (the batch's, with --determinism: every level the same prompts) wins."""
    heads = next((p.heads for p in prompts if p.heads is not None), None)
    composed = heads is None and any(p.composed is not None for p in prompts)  # a trace's blocks
    if heads is None and not composed:
        return None
    if resumed is not None and resumed.workload.get("unique_prompts"):
        return dict(resumed.workload["unique_prompts"])
    return {
        "head_tokens": heads.length if heads else 0,
        "salt": secrets.randbits(48) if salt is None else salt,
    }


def _turns(prompts: Sequence[Prompt], first: int, count: int | None) -> int | None:
    """The requests of sessions ``first`` … ``first + count − 1`` (conversations in turn)."""
    if count is None:
        return None
    size = len(prompts)
    return sum(prompts[k % size].turns for k in range(first, first + count))


def _resolve_number(load: LoadSpec, prompts: list[Prompt]) -> LoadSpec:
    """With neither --number nor --duration: once per row for an eval dataset, else 10 per worker."""
    if load.number is not None or load.duration is not None or load.trace is not None:
        return load
    if any(p.answer is not None for p in prompts):
        number = len(prompts)
    elif load.open_loop:
        number = 100
    else:
        number = max(100, 10 * (load.parallel or 1))
    return dataclasses.replace(load, number=number)


def _plan(load: LoadSpec) -> np.ndarray:
    """The open loop's planned start offsets (seconds), from the load's shape."""
    if load.ramp_from is not None:
        assert load.ramp_to is not None and load.duration is not None
        return ramp_offsets(
            load.ramp_from,
            load.ramp_to,
            duration=load.duration,
            number=load.number,
            burstiness=load.burstiness,
            seed=load.seed,
        )
    assert load.rate is not None
    if load.arrival == "constant" and not math.isinf(load.rate):
        return constant_offsets(load.rate, number=load.number, duration=load.duration)
    return arrival_offsets(
        load.rate,
        number=load.number,
        duration=load.duration,
        burstiness=load.burstiness,
        seed=load.seed,
    )


def _book_row(p: Prompt) -> tuple[str, str, str | None, Sequence[str] | None, str | None]:
    """A prompt's answer-book row: for a code problem with a reference program, that program
    (right) and the prompt's function returning None (wrong); for one without, no program the
    sim could write is right, so it writes the wrong one."""
    if p.grader != "code":
        return (_prompt_key(p), str(p.answer), p.grader, p.choices, None)
    spec = p.metadata.get("code") or {}
    humaneval = spec.get("kind") == "humaneval"
    stub = str(spec.get("prompt")) + "    return None\n" if humaneval else "print(0)\n"
    right = p.metadata.get("reference")
    if isinstance(right, str) and humaneval:
        right = str(spec.get("prompt") or "") + right  # the canonical body under its signature
    return (_prompt_key(p), right if isinstance(right, str) else stub, "code", None, stub)


def _prompt_key(prompt: Prompt) -> str:
    """The text the simulator looks an answer up by: the prompt, or its last user message."""
    if prompt.text is not None:
        return prompt.text
    return last_user_text(prompt.messages or ()) or ""
