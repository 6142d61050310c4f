"""The simulated engine: continuous batching and its timing model. Pure asyncio, no HTTP.

The model
=========

A request becomes a :class:`Sequence` of ``n`` choices that are decoded in lockstep (one token
per choice per step). It waits in a FIFO queue until it can be *admitted*: the running sequences
plus its ``n`` stay within ``max_num_seqs``, and the KV tokens reserved by running requests plus
its footprint (prompt + all its output tokens, known up front) stay within ``kv_tokens``. The
whole footprint is reserved on admission, so there is no preemption (``/metrics`` reports
``vllm:num_preemptions_total`` 0), and the KV usage it reports is the share reserved: what admission
is limited by, as vLLM's is by its allocated blocks (the tokens held so far, prompt + tokens
generated, are ``kv_used``). Prompt tokens count as processed on admission (the prefill starts),
generated tokens as each step is written. The queue is strict FIFO: a request that does not fit
blocks the ones behind it, as vLLM's FCFS scheduler does.

Timing semantics (all times from ``time.perf_counter_ns()``, i.e. CLOCK_MONOTONIC)
-------------------------------------------------------------------------------

* A request is admitted at ``admit = max(recv, free)``, where ``recv`` is when its HTTP handler
  started and ``free`` is the *due time* of the step that freed the capacity it waited for (so a
  queued request's start does not depend on event-loop jitter either).
* Its first token (step 0) is due at ``admit + ttft_ms + prefill_us_per_token * (prompt_tokens
  - cached_tokens)``: the prompt tokens its prefix cache (:mod:`.prefix`) did not hold.
* Step ``k + 1`` is due at ``due(k) + itl``, with ``itl = itl_ms + itl_ms_per_seq * (running - 1)``
  evaluated when step ``k`` is written, ``running`` counting every admitted sequence (so the batch
  slows down as it fills, and speeds up as it drains). A stall fault adds ``stall_ms`` once.
* Deadlines are absolute and computed from the previous *deadline*, never from the time a token
  was actually written, so lateness never accumulates: with a constant batch, token ``k`` is due
  at ``first + k * itl``, and a late write is followed by on-time ones. With
  ``itl_ms_per_seq = 0`` and nothing queued, TTFT and ITL are exact up to event-loop jitter: a
  write happens between 0.5 ms before its deadline (``SLACK_NS``) and whenever the loop is next
  free after it. The sim's actual lateness per request is in the ``--timing-log``.

The implementation is one scheduler, not one coroutine per stream: a heap of (deadline, sequence)
and a single timer armed for the earliest deadline. When it fires, every step that is due is
handed to its sequence's sink (which writes pre-encoded bytes straight to the transport), the
next deadline is pushed, and the timer is re-armed. Request handlers also call :meth:`Engine.poll`
so that a burst of arrivals cannot hold due tokens back until the loop gets to the timer. The
per-token cost is a heap push and pop plus the write, which lets one core keep 256 streams at
10 ms per token (25,600 writes/s) on time, about half of it being the kernel's cost of the writes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Protocol

from .config import SimConfig
from .variance import mix, threshold

log = logging.getLogger(__name__)

#: A step due within this much of now is written now rather than after another timer round.
#: Event-loop timers are millisecond-grained (uvloop rounds delays to the nearest ms on a cached
#: ms clock; asyncio's epoll rounds timeouts up to the next ms), so waking exactly on time is
#: impossible. Writing what is due within half a millisecond, and arming the timer for the next
#: deadline itself, keeps writes within about +-0.5 ms of their deadlines with about one wake-up per
#: millisecond, instead of spinning through zero-delay callbacks until each deadline.
SLACK_NS = 500_000

#: The most steps handled in one timer callback before yielding to I/O (matters only when many
#: steps are due at once, e.g. with the ``instant`` preset).
MAX_STEPS_PER_TICK = 512


class Sink(Protocol):
    """Where a sequence's steps go. The server's stream writer is the only real one."""

    def emit(self, step: int) -> bool:
        """Write step ``step`` (0 is the first token); return False to end the sequence now."""
        ...


class Sequence:
    """One request in the engine: its shape, its fate and its timestamps."""

    __slots__ = (
        "uid",
        "sink",
        "n",
        "lengths",
        "steps",
        "prompt_tokens",
        "cached_tokens",
        "footprint",
        "held",
        "finish_reason",
        "stall_at",
        "stall_ns",
        "recv_ns",
        "admit_ns",
        "first_due_ns",
        "first_ns",
        "last_ns",
        "late_max_ns",
        "late_sum_ns",
        "step",
        "done",
        "vary",
        "on_diverge",
    )

    def __init__(
        self,
        *,
        lengths: list[int],
        prompt_tokens: int,
        recv_ns: int,
        sink: Sink | None = None,
        finish_reason: str = "stop",
        stall_at: int = -1,
        stall_ns: int = 0,
        cached_tokens: int = 0,
        vary: int = 0,
        on_diverge: Callable[[int, int], None] | None = None,
    ) -> None:
        self.uid = 0
        # --batch-variance: the greedy prompt's digest while its tokens may still flip (0: never);
        # ``on_diverge(step, batch)`` changes its text from ``step`` on (perfbench/sim/variance.py)
        self.vary = vary
        self.on_diverge = on_diverge
        self.cached_tokens = cached_tokens  # prompt tokens the prefix cache spares the prefill
        self.sink = sink
        self.n = len(lengths)
        self.lengths = lengths
        self.steps = max(lengths)
        self.prompt_tokens = prompt_tokens
        self.footprint = prompt_tokens + sum(lengths)
        self.held = 0
        self.finish_reason = finish_reason
        self.stall_at = stall_at
        self.stall_ns = stall_ns
        self.recv_ns = recv_ns
        self.admit_ns = 0
        self.first_due_ns = 0
        self.first_ns = 0
        self.last_ns = 0
        self.late_max_ns = 0
        self.late_sum_ns = 0
        self.step = 0
        # Resolves to True when every step was written, False when the sequence ended early.
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def active(self, step: int) -> int:
        """How many choices produce a token at ``step``."""
        if self.n == 1:
            return 1
        return sum(1 for length in self.lengths if length > step)


# Prometheus-style histogram buckets (seconds), the ones vLLM uses for these two metrics.
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def cumulative(self) -> list[int]:
        return list(itertools.accumulate(self.counts))


@dataclass
class Stats:
    """Counters behind ``/metrics``."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    prefix_queries: int = 0  # prompt tokens looked up in the prefix cache
    prefix_hits: int = 0  # ... and found there
    finished: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0, "abort": 0})
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))


class Engine:
    """Admission, deadlines and the scheduler loop. See the module docstring for the model."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.max_num_seqs = config.max_num_seqs
        self.kv_tokens = config.kv_tokens
        self._ttft_ns = round(config.ttft_ms * 1e6)
        self._prefill_ns = config.prefill_us_per_token * 1e3
        self._itl_ns = round(config.itl_ms * 1e6)
        self._itl_per_seq_ns = config.itl_ms_per_seq * 1e6
        self.waiting: deque[Sequence] = deque()
        self.running = 0  # sequences (choices) admitted, for max_num_seqs and the ITL model
        self.running_requests = 0
        self.kv_reserved = 0
        self.kv_used = 0
        self.stats = Stats()
        self._heap: list[tuple[int, int, Sequence]] = []
        self._uids = itertools.count(1)
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_due = 0
        self._live: dict[int, Sequence] = {}
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running_due = False
        self._budget_spent = False
        self._flip_below = threshold(config.batch_variance)

    # -- public -----------------------------------------------------------------------------

    def check(self, n: int, footprint: int) -> str | None:
        """Why a request of this shape could never run, or None if it can."""
        if n > self.max_num_seqs:
            return f"n={n} is more than the engine's --max-num-seqs ({self.max_num_seqs})."
        if footprint > self.kv_tokens:
            return f"The request needs {footprint} KV tokens, more than --kv-tokens ({self.kv_tokens})."
        return None

    def submit(self, seq: Sequence) -> None:
        """Queue a sequence; it is admitted as soon as it fits (see the module docstring)."""
        if self._closed:
            seq.done.set_result(False)
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        seq.uid = next(self._uids)
        self._live[seq.uid] = seq
        self.waiting.append(seq)
        if len(self.waiting) == 1:
            self._admit(seq.recv_ns)
            self._arm()

    def cancel(self, seq: Sequence) -> None:
        """Drop a sequence whose client went away (waiting or running)."""
        if seq.uid not in self._live or seq.done.done():
            return
        if seq.admit_ns:
            self._finish(seq, perf_counter_ns(), completed=False)
            # Its heap entry stays and is skipped when it comes up.
        else:
            self.waiting.remove(seq)
            del self._live[seq.uid]
            self.stats.finished["abort"] += 1
            seq.done.set_result(False)
        self._arm()

    def close(self) -> None:
        """End every sequence now (server shutdown)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for seq in list(self._live.values()):
            if not seq.done.done():
                seq.done.set_result(False)
        self._live.clear()
        self.waiting.clear()
        self._heap.clear()

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    # -- the model --------------------------------------------------------------------------

    def _itl(self) -> int:
        return self._itl_ns + round(self._itl_per_seq_ns * (self.running - 1))

    def _admit(self, free_ns: int) -> None:
        waiting = self.waiting
        while waiting:
            seq = waiting[0]
            if (
                self.running + seq.n > self.max_num_seqs
                or self.kv_reserved + seq.footprint > self.kv_tokens
            ):
                return
            waiting.popleft()
            self.running += seq.n
            self.running_requests += 1
            self.kv_reserved += seq.footprint
            self.stats.prompt_tokens += seq.prompt_tokens  # prefilled now, as vLLM counts them
            if not self.config.no_prefix_caching:
                self.stats.prefix_queries += seq.prompt_tokens
                self.stats.prefix_hits += seq.cached_tokens
            seq.held = seq.prompt_tokens
            self.kv_used += seq.held
            admit = seq.recv_ns if seq.recv_ns > free_ns else free_ns
            seq.admit_ns = admit
            due = (
                admit
                + self._ttft_ns
                + round(self._prefill_ns * (seq.prompt_tokens - seq.cached_tokens))
            )
            if seq.stall_at == 0:
                due += seq.stall_ns
            seq.first_due_ns = due
            heapq.heappush(self._heap, (due, seq.uid, seq))

    def _vary(self, seq: Sequence, step: int) -> None:
        """--batch-variance: flip the greedy token at ``step`` when this batch's numerics do (the
        caller has seen the batch hold more than this sequence)."""
        if mix(seq.vary, step, self.running) < self._flip_below:
            seq.vary = 0  # a sequence diverges once; after that its text is another one anyway
            if seq.on_diverge is not None:
                seq.on_diverge(step, self.running)

    def _finish(self, seq: Sequence, due: int, *, completed: bool) -> None:
        self.running -= seq.n
        self.running_requests -= 1
        self.kv_reserved -= seq.footprint
        self.kv_used -= seq.held
        self._live.pop(seq.uid, None)
        stats = self.stats
        stats.finished[seq.finish_reason if completed else "abort"] += 1
        if seq.first_ns:
            stats.ttft.observe((seq.first_ns - seq.recv_ns) / 1e9)
            stats.e2e.observe((seq.last_ns - seq.recv_ns) / 1e9)
        if not seq.done.done():
            seq.done.set_result(completed)
        self._admit(due)

    # -- the scheduler loop -----------------------------------------------------------------

    def _arm(self) -> None:
        heap = self._heap
        if not heap or self._closed:
            return
        due = heap[0][0]
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        delay = (due - perf_counter_ns()) / 1e9
        if delay > 0:
            self._timer = loop.call_later(delay, self._tick)
        else:
            self._timer = loop.call_soon(self._tick)

    def poll(self) -> None:
        """Write whatever is due now. Cheap; request handlers call it as they run.

        A burst of arrivals or completions can keep the event loop busy with handler callbacks
        for many milliseconds inside one loop iteration, and the timer callback only runs after
        them. Polling from those callbacks keeps the tokens of other streams on time anyway.
        """
        heap = self._heap
        if heap and heap[0][0] <= perf_counter_ns() + SLACK_NS and not self._running_due:
            self._run_due()
            self._arm()

    def _tick(self) -> None:
        self._timer = None
        try:
            self._run_due()
        finally:
            self._arm()

    def _run_due(self) -> None:
        self._running_due = True
        try:
            self._run_due_steps()
        finally:
            self._running_due = False
        if self._heap and self._budget_spent:
            # Let I/O run, then carry on where this left off.
            if self._timer is not None:
                self._timer.cancel()
            self._timer_due = 0
            assert self._loop is not None
            self._timer = self._loop.call_soon(self._tick)

    def _run_due_steps(self) -> None:
        heap = self._heap
        live = self._live
        stats = self.stats
        pop, push = heapq.heappop, heapq.heappush
        budget = MAX_STEPS_PER_TICK
        while heap and budget:
            now = perf_counter_ns()
            due, uid, seq = heap[0]
            if due > now + SLACK_NS:
                break
            pop(heap)
            if uid not in live:  # cancelled while it waited for this step
                continue
            budget -= 1
            step = seq.step
            late = now - due
            if step == 0:
                seq.first_ns = now
            if late > seq.late_max_ns:
                seq.late_max_ns = late
            seq.late_sum_ns += late
            seq.last_ns = now
            produced = 1 if seq.n == 1 else seq.active(step)
            stats.generation_tokens += produced
            seq.held += produced
            self.kv_used += produced
            if seq.vary and self.running > 1:
                self._vary(seq, step)
            sink = seq.sink
            if sink is None:
                alive = True
            else:
                try:
                    alive = sink.emit(step)
                except Exception:  # a bug in a sink must not stop every other stream
                    log.exception("sink failed; ending its sequence")
                    alive = False
            step += 1
            seq.step = step
            if step >= seq.steps or not alive:
                self._finish(seq, due, completed=alive)
                continue
            nxt = due + self._itl()
            if step == seq.stall_at:
                nxt += seq.stall_ns
            push(heap, (nxt, uid, seq))
        self._budget_spent = budget == 0
