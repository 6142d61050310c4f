"""Driving one share of a run's plan through one client: what the in-process run and every
worker process (or Ray actor) execute, so that both send and time requests the same way.

A share is a set of request indices and, for the open loop, their planned start times. The
closed loop hands the next index of its share to whichever of its slots frees first; the open
loop sends index k at its planned instant whatever the server does. Every request started ends
as exactly one record, handed to ``sink``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfbench.client import Client, RequestRecord, RequestSpec
from perfbench.client.wire import build_body
from perfbench.config import ClientSpec
from perfbench.workload import Prompt
from perfbench.workload.base import UniqueHeads

Clock = Callable[[], int]


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


@dataclass(frozen=True, slots=True)
class Template:
    """One prompt as every request of it is sent: the encoded body and what its record carries."""

    body: bytes
    prompt_id: str
    chars: int
    dataset: str | None
    expected_tokens: int | None  # the exact output length asked for, if any
    local_tokens: int | None  # the prompt's count in the local tokenizer, if one was named
    # a prompt made unique per request: ``body`` ends where its head goes, ``tail`` follows it
    tail: bytes | None = None
    heads: UniqueHeads | None = None


#: stands for a request's own head while a body is encoded (JSON leaves it as it is)
_HEAD = "@@perfbench-head@@"


class Templates:
    """Request bodies, encoded once per prompt (lazily, or up front for shipping to workers)."""

    def __init__(
        self,
        spec: ClientSpec,
        model: str,
        prompts: Sequence[Prompt],
        count: Callable[[str], int] | None = None,
        salt: int = 0,
    ) -> None:
        self.spec, self.model, self.prompts, self.count = spec, model, prompts, count
        self.size = len(prompts)
        self.salt = salt  # the run's: added to a request's number to pick its head
        # --extra-body can take back the request for an exact length (min_tokens/ignore_eos)
        extra = spec.extra_body
        self._exact_asked = extra.get("min_tokens", 0) is not None and extra.get("ignore_eos", True)
        self._cache: dict[int, Template] = {}

    @classmethod
    def shipped(cls, table: dict[int, Template], size: int, salt: int = 0) -> Templates:
        """Templates built elsewhere (a worker's copy of the coordinator's)."""
        self = cls.__new__(cls)
        self.prompts, self.size, self._cache, self.salt = (), size, dict(table), salt
        return self

    def table(self, slots: Iterable[int]) -> dict[int, Template]:
        """The templates of these prompt slots, built now: what a worker is sent."""
        return {k: self.template(k) for k in slots}

    def template(self, k: int) -> Template:
        found = self._cache.get(k)
        if found is not None:
            return found
        prompt = self.prompts[k]
        text = prompt.text
        if prompt.composed is not None:  # built for this request, and not kept
            text = prompt.composed.text(self.salt)
        elif prompt.unique_span is not None:
            text = prompt.with_head(_HEAD)
        messages = [dict(m) for m in prompt.messages] if prompt.messages is not None else None
        max_tokens = prompt.max_tokens if prompt.max_tokens is not None else self.spec.max_tokens
        local = None
        if prompt.composed is not None:
            local = prompt.composed.tokens if self.count is not None else None  # exact as built
        elif self.count is not None:
            local = self.count(prompt.text if prompt.text is not None else _joined(prompt))
        body = build_body(
            self.spec,
            self.model,
            messages,
            text,
            max_tokens,
            exact=prompt.exact_output,
            tools=[dict(t) for t in prompt.tools] if prompt.tools else None,
        )
        tail = None
        if prompt.unique_span is not None:
            body, tail = body.split(_HEAD.encode(), 1)
        made = Template(
            body,
            prompt.id,
            prompt.chars if prompt.composed is None else len(text or ""),
            prompt.dataset,
            prompt.max_tokens if prompt.exact_output and self._exact_asked else None,
            local,
            tail,
            prompt.heads if tail is not None else None,
        )
        if prompt.composed is None:
            self._cache[k] = made
        return made

    def request(
        self, index: int, intended_ns: int, warmup: bool, slot: int | None = None
    ) -> RequestSpec:
        """The request at ``index``; its prompt is ``slot`` (a trace row) or the next in turn."""
        t = self.template((index if slot is None else slot) % self.size)
        body = t.body
        if t.tail is not None and t.heads is not None:  # this request's own prompt
            body = b"".join((body, t.heads.head(self.salt + index).encode(), t.tail))
        return RequestSpec(
            index,
            body,
            intended_ns,
            warmup,
            t.prompt_id,
            t.chars,
            t.dataset,
            t.expected_tokens,
            t.local_tokens,
        )

    def turn(
        self,
        slot: int,
        turn: int,
        history: Sequence[Mapping[str, Any]],
        history_tokens: int | None,
        *,
        index: int,
        intended_ns: int,
        warmup: bool,
        session: int,
    ) -> tuple[RequestSpec, list[dict[str, Any]]]:
        """Turn ``turn`` (0 first) of session ``session``, whose conversation is prompt
        ``slot``, after ``history`` (the earlier turns and their answers, ``history_tokens``
        of them in the local tokenizer): the request, and the turn's own messages (what the
        history gains before the answer). A synthetic first turn gets the session's own head,
        so that no two sessions share more than the prefix asked for."""
        prompt = self.prompts[slot]
        if turn == 0:
            max_tokens, exact = prompt.max_tokens, prompt.exact_output
            if prompt.messages is not None:
                own = [dict(m) for m in prompt.messages]
            else:
                text = prompt.text or ""
                if prompt.unique_span is not None and prompt.heads is not None:
                    text = prompt.with_head(prompt.heads.head(self.salt + session))
                own = [{"role": "user", "content": text}]
        else:
            later = prompt.followups[turn - 1]
            max_tokens, exact = later.max_tokens, later.exact_output
            own = [{"role": "user", "content": later.content}]
        messages = [*map(dict, history), *own]
        local = None
        if self.count is not None and history_tokens is not None:
            local = history_tokens + sum(self.count(str(m.get("content") or "")) for m in own)
        budget = max_tokens if max_tokens is not None else self.spec.max_tokens
        req = RequestSpec(
            index=index,
            body=build_body(self.spec, self.model, messages, None, budget, exact=exact),
            intended_ns=intended_ns,
            warmup=warmup,
            prompt_id=prompt.id,
            prompt_chars=sum(len(str(m.get("content") or "")) for m in messages),
            dataset=prompt.dataset,
            expected_tokens=max_tokens if exact and self._exact_asked else None,
            prompt_tokens_local=local,
            session=session,
            turn=turn + 1,
            turns=prompt.turns,
        )
        return req, own

    def grown(self, prompt_tokens: int | None, answer: str) -> int | None:
        """The local count of a history after a turn: that turn's prompt and its answer (the
        history is counted once, turn by turn, not again at every turn)."""
        if self.count is None or prompt_tokens is None:
            return None
        return prompt_tokens + self.count(answer)

    def turns(self, slot: int) -> int:
        """How many turns the conversation at prompt ``slot`` has."""
        return self.prompts[slot % self.size].turns


def _joined(prompt: Prompt) -> str:
    return "\n".join(str(m.get("content", "")) for m in prompt.messages or ())


class Execution:
    """Drives the requests of one share; every request it starts ends as exactly one record.

    ``started`` (when given) collects the index of every request as it starts: a worker reports
    it, so that the coordinator can account for a worker that dies with requests in flight.
    """

    def __init__(
        self,
        client: Client,
        templates: Templates,
        sink: Callable[[RequestRecord], None],
        stats: LiveStats,
        clock: Clock,
        started: list[int] | None = None,
    ) -> None:
        self.client, self.templates, self.sink, self.stats, self.clock = (
            client,
            templates,
            sink,
            stats,
            clock,
        )
        self.started = started
        self.on_start: Callable[[RequestSpec], None] | None = None  # e.g. its in-flight row
        self.scheduled = 0
        self.skipped = 0  # open loop: arrivals that fell due while the server was away
        self._skip_before = 0  # ... those planned before this instant
        self.gate: asyncio.Event | None = None  # closed: no request starts (the server is suspect)
        # true while the records' writer is too far behind: no request starts (memory stays
        # bounded, and the report says the client limited the run)
        self.hold: Callable[[], bool] | None = None
        self.held_ns = 0  # wall time spent waiting for the writer
        self.holds = 0  # times it fell behind
        self._held_since: int | None = None
        stats.started_ns = clock()

    def _gate_closed(self) -> bool:
        return self.gate is not None and not self.gate.is_set()

    async def _wait_for_writer(self) -> None:
        """Wait while the writer is behind; every request about to start waits alike, and the
        wait counts once, in wall time, however many wait together."""
        assert self.hold is not None
        if self._held_since is None:
            self._held_since = self.clock()
            self.holds += 1
        while self.hold():
            await asyncio.sleep(0.005)
        if self._held_since is not None:
            self.held_ns += self.clock() - self._held_since
            self._held_since = None

    async def _through_gate(self) -> int:
        """Wait while the gate is closed; how long the wait was (ns)."""
        assert self.gate is not None
        before = self.clock()
        await self.gate.wait()
        return self.clock() - before

    async def arrive(self, intended: int) -> bool:
        """An open loop's arrival planned at ``intended``: False when it fell due while the
        server was away for over a second (it is skipped, and counted); else True once the
        writer has caught up (its schedule lag shows any wait)."""
        if self._gate_closed() and await self._through_gate() > 1_000_000_000:
            self._skip_before = self.clock()  # the server was away: what fell due is not sent
        if intended < self._skip_before:
            self.skipped += 1
            return False
        if self.hold is not None and self.hold():
            await self._wait_for_writer()
        return True

    async def admit(self) -> None:
        """Wait until a request may start: the server is not suspect (the gate) and the writer
        is not too far behind."""
        if self._gate_closed():
            await self._through_gate()
        if self.hold is not None and self.hold():
            await self._wait_for_writer()

    def start(self, req: RequestSpec) -> None:
        self.scheduled += 1
        if self.started is not None:
            self.started.append(req.index)
        if self.on_start is not None:
            self.on_start(req)

    async def send(self, req: RequestSpec) -> RequestRecord:
        stats = self.stats
        stats.in_flight += 1
        try:
            record = await self.client.send(req)
        finally:
            stats.in_flight -= 1
        self.finish(record)
        return record

    def finish(self, record: RequestRecord) -> None:
        self.sink(record)
        stats = self.stats
        if record.status == "ok":
            stats.completed += 1
            ttft = record.ttft_ns
            if ttft is not None:
                stats.recent_ttft_ms.append(ttft / 1e6)
        else:
            stats.failed += 1

    async def closed(
        self, slots: int, indices: Iterator[int], deadline: int | None, *, warmup: bool
    ) -> None:
        """``slots`` loops, each sending the next index of ``indices`` as soon as its last
        request ended, until the indices run out or ``deadline`` passes."""
        clock = self.clock

        async def slot() -> None:
            while True:
                await self.admit()
                now = clock()
                if deadline is not None and now >= deadline:
                    return
                i = next(indices, None)
                if i is None:
                    return
                req = self.templates.request(i, now, warmup)
                self.start(req)
                if (await self.send(req)).status == "cancelled":
                    return  # the run is stopping

        tasks = [asyncio.create_task(slot()) for _ in range(slots)]
        await join(tasks)

    async def open(
        self,
        planned_ns: Sequence[int],
        indices: Sequence[int],
        cap: int | None,
        prompt_slots: Sequence[int] | None = None,
    ) -> None:
        """Send request ``indices[k]`` at the clock instant ``planned_ns[k]`` whatever the server
        does (its prompt is ``prompt_slots[k]`` for a trace, else the index's turn).

        With ``cap``, a request whose time has come waits for a free slot; the wait is
        schedule lag, recorded on its row.
        """
        clock = self.clock
        sem = asyncio.Semaphore(cap) if cap else None
        tasks: set[asyncio.Task[None]] = set()

        async def one(req: RequestSpec) -> None:
            try:
                await self.send(req)
            finally:
                if sem is not None:
                    sem.release()

        waiting: RequestSpec | None = None
        try:
            for k, intended in enumerate(planned_ns):
                delay = intended - clock()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                if not await self.arrive(intended):
                    continue
                slot = None if prompt_slots is None else prompt_slots[k]
                req = self.templates.request(indices[k], intended, False, slot)
                self.start(req)
                if sem is not None:
                    waiting = req
                    await sem.acquire()
                    waiting = None
                task = asyncio.create_task(one(req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            if waiting is not None:  # its time had come: it gets its row
                self.finish(_cancelled(waiting, clock()))
            await cancel_all(list(tasks))
            raise
        await join(list(tasks))


class Sessions:
    """Conversations driven as a chat client would: a session sends its conversation's turns
    one after another, each with the whole history (the model's own answers included, not a
    recorded reply), the next ``think_ns`` after the answer to the last ended. A turn that
    fails ends its session: what the user would say next depends on the answer it lacks, so
    the later turns are not sent (and have no rows); the report counts such sessions.

    A turn's planned start is the session's (its first) or the previous answer's end plus the
    think time (the later ones): its schedule lag shows a client or a cap that kept it waiting.
    Sessions are numbered in start order across the run, from 0, and take consecutive request
    indices, so that ``(session, turn)`` and ``idx`` tell one another.
    """

    def __init__(self, execution: Execution, think_ns: int) -> None:
        self.execution, self.think_ns = execution, think_ns
        self.templates = execution.templates
        self.next_session = 0
        self.next_index = 0
        self.ended_early = 0  # sessions a failed turn ended before their last turn

    def _take(self, last: int | None) -> tuple[int, int, int] | None:
        """The next session (number, first index, turns), or None past session ``last``."""
        number = self.next_session
        if last is not None and number >= last:
            return None
        turns = self.templates.turns(number)
        first = self.next_index
        self.next_session, self.next_index = number + 1, first + turns
        return number, first, turns

    async def _session(
        self,
        taken: tuple[int, int, int],
        start_ns: int,
        warmup: bool,
        cap: asyncio.Semaphore | None,
        holding: bool = False,
    ) -> str:
        """Send one session's turns; the status of the last turn sent. With ``cap``, each turn
        sends with a permit of it (``holding``: the first turn's was taken by the planner)."""
        number, first, turns = taken
        ex, clock = self.execution, self.execution.clock
        history: list[dict[str, Any]] = []
        history_tokens: int | None = 0
        intended = start_ns
        status = "ok"
        for turn in range(turns):
            permit = holding and turn == 0
            try:
                if turn:
                    delay = intended - clock()
                    if delay > 0:
                        await asyncio.sleep(delay / 1e9)
                    await ex.admit()
                req, own = self.templates.turn(
                    number % self.templates.size,
                    turn,
                    history,
                    history_tokens,
                    index=first + turn,
                    intended_ns=intended,
                    warmup=warmup,
                    session=number,
                )
                ex.start(req)
                if cap is not None and not permit:
                    try:
                        await cap.acquire()
                    except asyncio.CancelledError:  # its time had come: it gets its row
                        ex.finish(_cancelled(req, clock()))
                        raise
                    permit = True
                record = await ex.send(req)
            finally:
                if cap is not None and permit:
                    cap.release()
            status = record.status
            if status != "ok":
                if status != "cancelled" and turn + 1 < turns:
                    self.ended_early += 1
                return status
            history += [*own, {"role": "assistant", "content": record.output_text}]
            history_tokens = self.templates.grown(req.prompt_tokens_local, record.output_text)
            intended = (record.end_ns or clock()) + self.think_ns
        return status

    async def closed(
        self, slots: int, last: int | None, deadline: int | None, *, warmup: bool
    ) -> None:
        """``slots`` users, each starting the next session when its last one ended, until
        session ``last`` (None: no bound) or ``deadline``; a session started runs to its end."""
        ex, clock = self.execution, self.execution.clock

        async def user() -> None:
            while True:
                await ex.admit()
                now = clock()
                if deadline is not None and now >= deadline:
                    return
                taken = self._take(last)
                if taken is None:
                    return
                if await self._session(taken, now, warmup, None) == "cancelled":
                    return  # the run is stopping

        await join([asyncio.create_task(user()) for _ in range(slots)])

    async def open(self, planned_ns: Sequence[int], cap: int | None) -> None:
        """Start session k at ``planned_ns[k]`` whatever the server does, as the single-turn
        open loop sends its requests: a start that fell due while the server was away for over
        a second is skipped (and counted); with ``cap``, the planner takes the first turn's
        permit before the session starts, so that a full cap delays the starts (their
        schedule lag shows it) instead of piling up sessions; a later turn waits for a permit
        of its own."""
        ex, clock = self.execution, self.execution.clock
        sem = asyncio.Semaphore(cap) if cap else None
        tasks: set[asyncio.Task[str]] = set()
        try:
            for intended in planned_ns:
                delay = intended - clock()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                if not await ex.arrive(intended):
                    continue
                if sem is not None:
                    await sem.acquire()
                taken = self._take(None)
                assert taken is not None
                task = asyncio.create_task(
                    self._session(taken, intended, False, sem, holding=sem is not None)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            await cancel_all(list(tasks))
            raise
        await join(list(tasks))


def _cancelled(req: RequestSpec, now: int) -> RequestRecord:
    return RequestRecord(
        index=req.index,
        warmup=req.warmup,
        prompt_id=req.prompt_id,
        dataset=req.dataset,
        session=req.session,
        turn=req.turn,
        turns=req.turns,
        status="cancelled",
        intended_ns=req.intended_ns,
        end_ns=now,
        error="the run stopped while the request waited for a free slot",
    )


async def join(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for every task; when cancelled, cancel them all and still wait for them to record."""
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        await cancel_all(tasks)
        raise


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel requests in flight and wait until each has recorded itself as cancelled."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class LoopLag:
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


def merge_lag(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    """One loop-lag figure for several loops: the worst loop's mean, p99 and max."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {
        "mean": max(p["mean"] for p in parts),
        "p99": max(p["p99"] for p in parts),
        "max": max(p["max"] for p in parts),
        "samples": float(sum(p["samples"] for p in parts)),
    }


def tell(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Run ``callback`` on the coordinator's loop, from a reader thread; once the loop has
    closed (the run is over) there is no one left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
