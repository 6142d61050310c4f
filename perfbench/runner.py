"""``perfbench.run``: the Python API behind ``perfbench perf``. One spec in, results out.

It wires the stages together and owns nothing else: prompts from the workload, arrival plans
from the load stage, requests through the client, records into the store writer, figures from
the metrics stage. Stopping (SIGINT, SIGTERM) is handled here: scheduling stops, requests in
flight are cancelled and recorded as such, the writer drains, and the run is marked
interrupted, so that ``scheduled == recorded`` holds whatever happens.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import itertools
import math
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from perfbench import metadata
from perfbench.client import Client, RequestRecord, RequestSpec
from perfbench.client.servermetrics import RunMetrics, metrics_url
from perfbench.client.wire import build_body
from perfbench.config import ClientSpec, LoadSpec, PerfSpec
from perfbench.errors import ConfigError, PerfbenchError, ServerRejected
from perfbench.load import arrival_offsets, constant_offsets, ramp_offsets, read_trace
from perfbench.metrics import Summary, summarize
from perfbench.redact import redact_url
from perfbench.sim.embedded import EmbeddedSim
from perfbench.store import RecordWriter, Store
from perfbench.store.runs import append_server_samples, now_iso
from perfbench.workload import Prompt, load_prompts
from perfbench.workload.base import last_user_text
from perfbench.workload.replay import trace_prompts

if TYPE_CHECKING:
    from rich.console import RenderableType

    from perfbench.grade.run import Grades

Clock = Callable[[], int]
EXIT_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass
class LiveStats:
    """Running counters for a progress display; written by the loop, read by any thread."""

    label: str = ""
    total: int | None = None
    completed: int = 0
    failed: int = 0
    in_flight: int = 0
    started_ns: int = 0
    recent_ttft_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=512)
    )

    def p50_ttft_ms(self) -> float:
        values = list(self.recent_ttft_ms)
        return float(np.median(values)) if values else math.nan


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
    grades: Grades | None = None  # with PerfSpec.grade
    grade_error: PerfbenchError | None = None  # why grading failed after the runs, if it did

    @property
    def summaries(self) -> list[Summary]:
        return [r.summary for r in self.runs]

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON document; with grades, ``{"perf": …, "grades": …}``."""
        from perfbench.versioned import versioned

        perf = {"runs": [s.to_dict() for s in self.summaries]}
        if not self.grades:
            return perf
        return {"perf": versioned(perf), "grades": versioned(self.grades.to_dict())}

    def csv_rows(self) -> list[dict[str, Any]]:
        from perfbench.report.export import flat

        return [flat(s) for s in self.summaries]

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.console import Group

        from perfbench.report.tables import render

        parts = [render(self.summaries, quiet=quiet)]
        if self.grades:
            parts.append(self.grades.render(quiet=quiet))
        return Group(*parts)

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return EXIT_SIGNALS.get(signal.Signals(self.stopped_by), 130)
        if any(r.summary.measured and r.summary.ok == 0 for r in self.runs):
            return 1
        return 0


def run(spec: PerfSpec, *, observer: Observer | None = None) -> BatchResult:
    """Run every load of ``spec`` in turn against one server, recording into one database.

    >>> from perfbench import ClientSpec, LoadSpec, PerfSpec, run   # doctest: +SKIP
    >>> result = run(PerfSpec(ClientSpec(), loads=(LoadSpec(parallel=4, number=100),)))
    >>> result.runs[0].summary.mean_ttft_ms
    """
    result = _event_loop_run(_Batch(spec, observer).main())
    if spec.grade is not None and result.stopped_by is None:
        from perfbench.grade.run import grade_runs

        try:
            result.grades = grade_runs(
                spec.db_path, [str(r.run_id) for r in result.runs], spec.grade
            )
        except PerfbenchError as exc:  # the runs are measured and stored: report them anyway
            result.grade_error = exc
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

    async def main(self) -> BatchResult:
        spec = self.spec
        prompts = load_prompts(spec.workload)
        if spec.grade is not None and spec.grade.think is not None and spec.grade.think.judge_url:
            from perfbench.grade.judge import resolve_model

            resolve_model(spec.grade.think)  # a dead judge is found before the run, not after
        if spec.grade is not None and not any(p.answer is not None for p in prompts):
            raise ConfigError(
                f"--grade: the {spec.workload.dataset} prompts carry no gold answers; benchmark "
                "an eval dataset (e.g. --dataset math_500, gsm8k, synthetic_math) or drop --grade"
            )
        store = Store(spec.db_path, create=True)
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
            for load in spec.loads:
                if self._stop.is_set():
                    break
                run_id = await self._one(
                    store, client_spec, load, prompts, batch, sim is not None, host
                )
                run = store.run(run_id)
                results.append(RunResult(run_id, run.status, summarize(store, run)))
            return BatchResult(str(spec.db_path), results, self.stopped_by)
        finally:
            for sig in EXIT_SIGNALS:
                loop.remove_signal_handler(sig)
            if sim is not None:
                sim.__exit__()
            if self._answer_book is not None:
                self._answer_book.unlink(missing_ok=True)
            store.close()

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
        write_answer_book(
            ((_prompt_key(p), str(p.answer), p.grader, p.choices) for p in graded), path
        )
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
    ) -> int:
        spec = self.spec
        load = _resolve_number(load, prompts)
        planned = None
        offsets = None
        traced = False
        if load.trace is not None:
            trace = read_trace(load.trace, speed=load.trace_speed)
            prompts = trace_prompts(trace, spec.workload)
            offsets = trace.offsets
            if load.duration is not None:
                offsets = offsets[offsets < load.duration]
            if load.number is not None:
                offsets = offsets[: load.number]
            planned, traced = len(offsets), True
            pool = load.concurrency or min(max(planned, 1), 1024)
        elif load.open_loop:
            offsets = _plan(load)
            planned = len(offsets)
            pool = load.concurrency or min(max(planned, 1), 1024)
        else:
            assert load.parallel is not None
            planned = load.number
            pool = load.parallel
        assert client_spec.url is not None
        async with (
            Client(client_spec, pool_size=pool, clock=self.clock) as client,
            self._server_metrics(client_spec) as server_metrics,
        ):
            models = await client.check()
            model = client_spec.model
            if model is None:
                if not models:
                    answer = (
                        f"HTTP {client.models_status}"
                        if client.models_status != 200
                        else "an empty list"
                    )
                    raise ConfigError(
                        f"{client_spec.models_url} gave no model list ({answer}): give --model"
                    )
                model = models[0]
            elif models and model not in models:
                raise ServerRejected(
                    f"model {model!r} is not served by {client_spec.models_url} "
                    f"(it serves: {', '.join(models)}); check --model"
                )
            client_spec = dataclasses.replace(client_spec, model=model)
            await server_metrics.check()
            await client.prewarm(min(pool, planned or pool, 1024))
            count = _local_counter(spec.workload.tokenizer)
            bodies = _Bodies(client_spec, model, prompts, count)
            server = {
                "models": models,
                "embedded": embedded,
                "sim_args": list(spec.embedded_args) if embedded else None,
            }
            t0 = self.clock()
            run_id = store.create_run(
                name=spec.name,
                batch=batch,
                t0_ns=t0,
                endpoint=redact_url(client_spec.url or ""),
                model=model,
                load={**dataclasses.asdict(load), "planned": planned},
                client=client_spec.redacted(),
                workload={**dataclasses.asdict(spec.workload), "prompts": len(prompts)},
                server={**server, "metrics": server_metrics.info()},
                host=host,
                command=spec.command,
            )
            store.add_prompts(run_id, prompts)
            writer = RecordWriter(spec.db_path, run_id, t0, count=count).start()
            stats = LiveStats(label=f"run {run_id}", total=(planned or 0) + load.warmup)
            execution = _Execution(client, bodies, writer, stats, self.clock)
            lag = _LoopLag(self.clock)
            lag_task = asyncio.create_task(lag.watch())
            if self.observer is not None:
                self.observer.begin(stats)
            status = "failed"
            try:
                await server_metrics.start(
                    t0, functools.partial(append_server_samples, spec.db_path, run_id)
                )
                if load.warmup and not self._stop.is_set():
                    await self._phase(
                        execution.closed(
                            load.concurrency or pool, 0, load.warmup, None, warmup=True
                        )
                    )
                    await server_metrics.measured()
                if not self._stop.is_set():
                    start = load.warmup
                    if offsets is not None:
                        phase = execution.open(offsets, start, load.concurrency, traced=traced)
                    else:
                        deadline = (
                            None
                            if load.duration is None
                            else self.clock() + int(load.duration * 1e9)
                        )
                        end = start + load.number if load.number is not None else None
                        phase = execution.closed(pool, start, end, deadline, warmup=False)
                    await self._phase(phase)
                status = "interrupted" if self._stop.is_set() else "completed"
            finally:
                lag_task.cancel()
                if self.observer is not None:
                    self.observer.end()
                try:
                    await server_metrics.finish()
                finally:
                    recorded = writer.close()
                    store.update_run(
                        run_id,
                        status=status,
                        ended_at=now_iso(),
                        duration_s=(self.clock() - t0) / 1e9,
                        scheduled=execution.scheduled,
                        recorded=recorded,
                        health={"loop_lag_ms": lag.stats()},
                        server={**server, "metrics": server_metrics.info()},
                    )
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
        """Run one phase; a stop signal cancels it, and its requests record themselves."""
        task = asyncio.ensure_future(coro)
        self._current = [task]
        try:
            await task
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise
        finally:
            self._current = []


def _local_counter(tokenizer: str | None) -> Callable[[str], int] | None:
    """The local tokenizer's count, when --tokenizer names one (the fallback is no better than chars/4)."""
    if tokenizer is None:
        return None
    from perfbench.workload.tokenizers import load_tokenizer

    return load_tokenizer(tokenizer).count


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


class _Bodies:
    """Request bodies, encoded once per prompt."""

    def __init__(
        self,
        spec: ClientSpec,
        model: str,
        prompts: list[Prompt],
        count: Callable[[str], int] | None = None,
    ) -> None:
        self.spec, self.model, self.prompts, self.count = spec, model, prompts, count
        # --extra-body can take back the request for an exact length (min_tokens/ignore_eos)
        extra = spec.extra_body
        self._exact_asked = extra.get("min_tokens", 0) is not None and extra.get("ignore_eos", True)
        self._cache: dict[int, bytes] = {}
        self._tokens: dict[int, int] = {}

    def request(
        self, index: int, intended_ns: int, warmup: bool, slot: int | None = None
    ) -> RequestSpec:
        """The request at ``index``; its prompt is ``slot`` (a trace row) or the next in turn."""
        k = (index if slot is None else slot) % len(self.prompts)
        prompt = self.prompts[k]
        body = self._cache.get(k)
        if body is None:
            messages = [dict(m) for m in prompt.messages] if prompt.messages is not None else None
            max_tokens = (
                prompt.max_tokens if prompt.max_tokens is not None else self.spec.max_tokens
            )
            body = self._cache[k] = build_body(
                self.spec, self.model, messages, prompt.text, max_tokens, exact=prompt.exact_output
            )
        local = None
        if self.count is not None:
            local = self._tokens.get(k)
            if local is None:
                text = prompt.text if prompt.text is not None else _joined(prompt)
                local = self._tokens[k] = self.count(text)
        return RequestSpec(
            index,
            body,
            intended_ns,
            warmup,
            prompt.id,
            prompt.chars,
            prompt.dataset,
            prompt.max_tokens if prompt.exact_output and self._exact_asked else None,
            local,
        )


def _joined(prompt: Prompt) -> str:
    return "\n".join(str(m.get("content", "")) for m in prompt.messages or ())


class _Execution:
    """Drives the requests of one run; every request it starts ends as exactly one record."""

    def __init__(
        self, client: Client, bodies: _Bodies, writer: RecordWriter, stats: LiveStats, clock: Clock
    ) -> None:
        self.client, self.bodies, self.writer, self.stats, self.clock = (
            client,
            bodies,
            writer,
            stats,
            clock,
        )
        self.scheduled = 0
        stats.started_ns = clock()

    async def _send(self, req: RequestSpec) -> str:
        stats = self.stats
        stats.in_flight += 1
        try:
            record = await self.client.send(req)
        finally:
            stats.in_flight -= 1
        self._sink(record)
        return record.status

    def _sink(self, record: RequestRecord) -> None:
        self.writer.add(record)
        stats = self.stats
        if record.status == "ok":
            stats.completed += 1
            ttft = record.ttft_ns
            if ttft is not None:
                stats.recent_ttft_ms.append(ttft / 1e6)
        else:
            stats.failed += 1

    async def closed(
        self, workers: int, start: int, end: int | None, deadline: int | None, *, warmup: bool
    ) -> None:
        """``workers`` loops, each sending its next request as soon as the last one ended."""
        counter = itertools.count(start)
        clock = self.clock

        async def worker() -> None:
            while True:
                now = clock()
                if deadline is not None and now >= deadline:
                    return
                i = next(counter)
                if end is not None and i >= end:
                    return
                self.scheduled += 1
                if await self._send(self.bodies.request(i, now, warmup)) == "cancelled":
                    return  # the run is stopping

        n = workers if end is None else min(workers, end - start)
        tasks = [asyncio.create_task(worker()) for _ in range(n)]
        await _join(tasks)

    async def open(
        self, offsets: np.ndarray, start: int, cap: int | None, *, traced: bool = False
    ) -> None:
        """Send request k at ``t_start + offsets[k]`` whatever the server does.

        With ``cap``, a request whose time has come waits for a free slot; the wait is
        schedule lag, recorded on its row.
        """
        clock = self.clock
        sem = asyncio.Semaphore(cap) if cap else None
        tasks: set[asyncio.Task[None]] = set()
        t_start = clock()
        planned = (t_start + (offsets * 1e9).astype(np.int64)).tolist()

        async def one(req: RequestSpec) -> None:
            try:
                await self._send(req)
            finally:
                if sem is not None:
                    sem.release()

        waiting: RequestSpec | None = None
        try:
            for k, intended in enumerate(planned):
                delay = intended - clock()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                req = self.bodies.request(start + k, intended, False, k if traced else None)
                self.scheduled += 1
                if sem is not None:
                    waiting = req
                    await sem.acquire()
                    waiting = None
                task = asyncio.create_task(one(req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            if waiting is not None:  # its time had come: it gets its row
                self._sink(_cancelled(waiting, clock()))
            await _cancel_all(list(tasks))
            raise
        await _join(list(tasks))


def _cancelled(req: RequestSpec, now: int) -> RequestRecord:
    return RequestRecord(
        index=req.index,
        warmup=req.warmup,
        prompt_id=req.prompt_id,
        dataset=req.dataset,
        status="cancelled",
        intended_ns=req.intended_ns,
        end_ns=now,
        error="the run stopped while the request waited for a free slot",
    )


async def _join(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for every task; when cancelled, cancel them all and still wait for them to record."""
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        await _cancel_all(tasks)
        raise


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel requests in flight and wait until each has recorded itself as cancelled."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _LoopLag:
    """How late the event loop wakes a 10 ms timer: the client's own delay, measured."""

    def __init__(self, clock: Clock, interval: float = 0.01) -> None:
        self.clock, self.interval = clock, interval
        self.samples: collections.deque[float] = collections.deque(maxlen=100_000)
        self.max = 0.0

    async def watch(self) -> None:
        interval_ns = int(self.interval * 1e9)
        while True:
            before = self.clock()
            await asyncio.sleep(self.interval)
            lag = max(0, self.clock() - before - interval_ns) / 1e6
            self.samples.append(lag)
            if lag > self.max:
                self.max = lag

    def stats(self) -> dict[str, float]:
        if not self.samples:
            return {}
        values = np.fromiter(self.samples, dtype=np.float64)
        return {
            "mean": float(values.mean()),
            "p99": float(np.percentile(values, 99)),
            "max": self.max,
            "samples": float(values.size),
        }


def _prompt_key(prompt: Prompt) -> str:
    """The text the simulator looks an answer up by: the prompt, or its last user message."""
    if prompt.text is not None:
        return prompt.text
    return last_user_text(prompt.messages or ()) or ""
