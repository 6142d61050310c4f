"""``perfbench plan``: how long an eval will take at each concurrency, and which one to use.

    >>> from perfbench.capacity.plan import PlanSpec, plan   # doctest: +SKIP
    >>> p = plan(PlanSpec(curve=("sweep-20250101-120000",), dataset="math_500", n=5,
    ...                   max_tokens=32000))
    >>> print(p.answer)

From a measured concurrency curve (a sweep's closed-loop runs, found by name or run id) and the
eval's workload (N = prompts × n requests, each with an expected output length L_i), predict
the eval's wall time at every measured concurrency c and recommend the one that finishes
soonest while meeting every SLO.

The model (also in docs/capacity.md)
------------------------------------
At concurrency c the server runs b(c) requests at once and queues the rest. Each running
request holds its slot for its *service time*

    S_i(c) = P(c) + (L_i − 1) · TPOT(c) + ε(c)

where TPOT(c) is the level's mean TPOT (the decode step time at that batch), ε(c) the mean time
from the last token to the end of the response, and P(c) the time to first token *without
queueing*. Up to the curve's knee (``perfbench.capacity.curve.find_knee``) nothing queues: P(c) is the
level's mean TTFT and b(c) = c. Beyond it, extra latency is queueing: P(c) is the knee's mean
TTFT, the queue wait W(c) = TTFT(c) − P(c), and by Little's law the slots in service are
b(c) = X(c) · (E2E(c) − W(c)), with X(c) the level's measured completions per second. The eval is then played out exactly as a closed loop runs
it: c workers, each sending its next request (in dataset order, each prompt n times in a row)
when its last one ends, and b(c) slots taking waiting requests first come first served. The wall
time is the last completion: Σ S_i / b plus the tail, the last wave, whose length is set by the
longest requests at the end (Graham's bound: at most Σ S_i / b + max S_i). The same play gives
each request's wait, so the predicted TTFT (wait + a draw from the measured TTFT distribution:
the level's below the knee, the knee's beyond it) and E2E (wait + S_i) distributions at the
eval's lengths are what TTFT and E2E SLOs are checked against, percentile for percentile; every other SLO (TPOT, ITL,
errors) is checked against the level as measured.

Where it errs: TPOT is taken not to grow with context length (on a real engine attention
makes long outputs decode slower, so long evals run longer than predicted); b(c) is what the
sweep's requests allowed, and longer requests may fit fewer at once in the KV cache (a warning
says when the eval's outputs are much longer than the sweep's); expected lengths come from an
earlier run, or are given, and a different model or temperature changes them. Against the
simulated engine (tests/test_plan.py) the prediction is within 15% of a real run.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.capacity.curve import find_knee
from perfbench.capacity.slo import SLO, SLOResult, check
from perfbench.config import DEFAULT_DB, WorkloadSpec
from perfbench.errors import ConfigError, StoreError
from perfbench.metrics.summary import Summary, summarize
from perfbench.store.runs import Run, Store
from perfbench.versioned import json_safe

LONG_OUTPUT_RATIO = 4.0  # warn when the eval's outputs are this many times the sweep's


@dataclass(frozen=True)
class PlanSpec:
    """What to plan. ``curve``: run ids or a sweep's name (empty: the latest run's name).

    Requests: ``prompts`` × ``n`` (``prompts`` None: the dataset's row count, from an earlier
    run of it in the store, else from loading it). Output lengths: ``output_len`` for every
    request, else the lengths an earlier run of ``dataset`` measured (per prompt, capped at
    ``max_tokens``), else ``max_tokens`` (an upper bound).
    """

    curve: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_path: str | None = None
    n: int = 1
    prompts: int | None = None
    max_tokens: int | None = None
    output_len: int | None = None
    slos: tuple[SLO, ...] = ()
    db_path: Path = DEFAULT_DB
    tie: float = 0.02  # a level within 2% of the fastest counts as as fast: prefer the lowest c

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError("--n must be at least 1")
        for flag, v in (
            ("--prompts", self.prompts),
            ("--max-tokens", self.max_tokens),
            ("--output-len", self.output_len),
        ):
            if v is not None and v < 1:
                raise ConfigError(f"{flag} must be at least 1")
        if not 0 <= self.tie < 1:
            raise ConfigError("the tie margin is a fraction in [0, 1)")


@dataclass(frozen=True)
class Workload:
    requests: int
    lengths: np.ndarray  # expected output tokens of each request, in sending order
    source: str  # where the lengths came from

    @property
    def mean_len(self) -> float:
        return float(self.lengths.mean())


@dataclass
class PlanLevel:
    concurrency: int
    run_id: int
    slots: float  # b(c): requests in service at once
    prefill_ms: float  # P(c)
    tpot_ms: float
    tail_ms: float  # ε(c)
    wall_s: float  # predicted
    ttft_ms: np.ndarray = field(repr=False)  # predicted, per request
    e2e_ms: np.ndarray = field(repr=False)
    slo: list[SLOResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.slo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "run_id": self.run_id,
            "slots": self.slots,
            "prefill_ms": self.prefill_ms,
            "tpot_ms": self.tpot_ms,
            "wall_s": self.wall_s,
            "mean_ttft_ms": float(self.ttft_ms.mean()),
            "p99_ttft_ms": float(np.percentile(self.ttft_ms, 99)),
            "mean_e2e_ms": float(self.e2e_ms.mean()),
            "p99_e2e_ms": float(np.percentile(self.e2e_ms, 99)),
            "passed": self.passed,
            "slo": [{"slo": str(r.slo), "value": r.value, "passed": r.passed} for r in self.slo],
        }


@dataclass
class Plan:
    workload: Workload
    levels: list[PlanLevel]
    knee: int | None
    slos: tuple[SLO, ...]
    tie: float
    warnings: list[str] = field(default_factory=list)

    @property
    def recommended(self) -> PlanLevel | None:
        """The lowest concurrency within ``tie`` of the fastest level that meets every SLO."""
        ok = [x for x in self.levels if x.passed]
        if not ok:
            return None
        best = min(x.wall_s for x in ok)
        return min(
            (x for x in ok if x.wall_s <= best * (1 + self.tie)), key=lambda x: x.concurrency
        )

    @property
    def answer(self) -> str:
        w = self.workload
        what = f"{w.requests:,} requests of about {w.mean_len:,.0f} output tokens"
        rec = self.recommended
        if rec is None:
            fastest = min(self.levels, key=lambda x: x.wall_s)
            return (
                f"No measured concurrency meets every SLO for {what}; the fastest, "
                f"{fastest.concurrency}, would take about {duration(fastest.wall_s)}."
            )
        faster = [x for x in self.levels if x.wall_s < rec.wall_s and not x.passed]
        note = f"; {faster[0].concurrency} would be faster but misses an SLO" if faster else ""
        return (
            f"Run the eval at concurrency {rec.concurrency}: {what} take about "
            f"{duration(rec.wall_s)} (predicted){note}."
        )

    def to_dict(self) -> dict[str, Any]:
        rec = self.recommended
        w = self.workload
        data = {
            "requests": w.requests,
            "mean_output_tokens": w.mean_len,
            "max_output_tokens": float(w.lengths.max()),
            "lengths_from": w.source,
            "knee": self.knee,
            "slos": [str(s) for s in self.slos],
            "levels": [x.to_dict() for x in self.levels],
            "recommended": rec.concurrency if rec else None,
            "predicted_wall_s": rec.wall_s if rec else None,
            "answer": self.answer,
            "warnings": self.warnings,
        }
        out: dict[str, Any] = json_safe(data)
        return out

    def to_json(self) -> str:
        from perfbench.report.output import to_json

        return to_json(self)

    def render(self, *, quiet: bool = False) -> Any:
        """The table, the answer in one sentence, and (unless ``quiet``) the warnings."""
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [self.table(), Text(self.answer)]
        if not quiet:
            parts += [Text(f"warning: {w}") for w in self.warnings]
        return Group(*parts)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per concurrency of the curve."""
        return [x.to_dict() for x in self.levels]

    def table(self) -> Any:
        from rich import box
        from rich.table import Table

        rec = self.recommended
        t = Table(
            title=f"Plan: {self.workload.requests:,} requests, {self.workload.source}",
            box=box.SIMPLE_HEAVY,
            title_justify="left",
        )
        for col in (
            "Concurrency",
            "Run",
            "In service",
            "Wall time",
            "TTFT mean ms",
            "TTFT p99 ms",
            "TPOT ms",
            "E2E p99 s",
            "SLO",
            "",
        ):
            t.add_column(col, justify="left" if col in ("SLO", "") else "right")
        for x in self.levels:
            notes = [
                n
                for n, on in (("recommended", x is rec), ("knee", x.concurrency == self.knee))
                if on
            ]
            t.add_row(
                str(x.concurrency),
                str(x.run_id),
                f"{x.slots:.1f}",
                duration(x.wall_s),
                f"{x.ttft_ms.mean():,.1f}",
                f"{np.percentile(x.ttft_ms, 99):,.1f}",
                f"{x.tpot_ms:.2f}",
                f"{np.percentile(x.e2e_ms, 99) / 1e3:,.2f}",
                ("✓" if x.passed else "✗ " + " ".join(str(r.slo) for r in x.slo if not r.passed))
                if self.slos
                else "—",
                ", ".join(notes),
            )
        return t


def duration(seconds: float) -> str:
    """``3725`` → ``1 h 02 min``; ``42.5`` → ``42.5 s``."""
    if not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def plan(spec: PlanSpec) -> Plan:
    """Predict the eval's wall time at each measured concurrency; see the module docstring."""
    store = Store(spec.db_path)
    try:
        curve = _curve(store, spec.curve)
        summaries = [summarize(store, r) for r in curve]
        knee_i = find_knee(
            [(float(s.parallel or 0), s.output_tok_per_s, s.mean_e2e_ms) for s in summaries]
        )
        workload, warnings = _workload(store, spec, {r.id for r in curve})
        sweep_len = float(np.nanmean([s.mean_output_tokens for s in summaries]))
        if workload.mean_len > LONG_OUTPUT_RATIO * sweep_len:
            warnings.append(
                f"the eval's outputs (about {workload.mean_len:,.0f} tokens) are much longer than "
                f"the sweep's ({sweep_len:,.0f}): TPOT is taken not to grow with context and "
                "the KV cache may hold fewer of them at once, so the prediction is optimistic; "
                "sweep with --output-len near the eval's for a tighter plan"
            )
        knee = summaries[knee_i] if knee_i is not None else None
        levels = [
            _level(store, s, knee, workload, spec.slos)
            for s in summaries
            if s.ok > 0 and math.isfinite(s.mean_tpot_ms)
        ]
        if not levels:
            raise ConfigError("no run of the curve has a successful streamed request to plan from")
    finally:
        store.close()
    return Plan(
        workload,
        levels,
        int(knee.parallel or 0) if knee else None,
        spec.slos,
        spec.tie,
        warnings,
    )


def _curve(store: Store, selectors: tuple[str, ...]) -> list[Run]:
    """The closed-loop runs of the curve, one per concurrency (the latest), by concurrency."""
    if selectors:
        runs = store.find(selectors)
    else:
        latest = store.runs()
        if not latest or latest[-1].name is None:
            raise StoreError("give the sweep to plan from: --from-sweep NAME (or run ids)")
        runs = store.find(name=latest[-1].name)
    by_c: dict[int, Run] = {}
    for r in runs:
        if not r.open_loop and r.load.parallel and r.status == "completed":
            by_c[r.load.parallel] = r  # later runs replace earlier ones
    if not by_c:
        raise ConfigError(
            "plan needs completed closed-loop runs at several concurrencies: "
            "`perfbench sweep --parallel 1 2 4 8 16` (or an automatic sweep) makes them"
        )
    return [by_c[c] for c in sorted(by_c)]


def _workload(store: Store, spec: PlanSpec, curve_ids: set[int]) -> tuple[Workload, list[str]]:
    warnings: list[str] = []
    earlier = _earlier_run(store, spec.dataset, curve_ids) if spec.dataset else None
    prompts = spec.prompts
    if prompts is None and earlier is not None:
        prompts = int(earlier.workload.get("prompts", 0)) // int(earlier.workload.get("n") or 1)
    if prompts is None or prompts < 1:
        if spec.dataset is None:
            raise ConfigError("say how big the eval is: --dataset NAME or --prompts N")
        from perfbench.workload import load_prompts

        prompts = len(
            load_prompts(WorkloadSpec(dataset=spec.dataset, dataset_path=spec.dataset_path))
        )
    n_requests = prompts * spec.n
    cap = spec.max_tokens
    if spec.output_len is not None:
        length = min(spec.output_len, cap) if cap else spec.output_len
        return Workload(n_requests, np.full(n_requests, float(length)), "given"), warnings
    if earlier is not None:
        per_prompt, hit_cap = _lengths(store, earlier)
        if per_prompt.size:
            if hit_cap and (cap is None or cap > (earlier.client.get("max_tokens") or 0)):
                warnings.append(
                    f"{hit_cap} of run {earlier.id}'s outputs stopped at its max_tokens "
                    f"({earlier.client.get('max_tokens')}): with a higher cap they would run "
                    "longer, so the plan is optimistic"
                )
            if cap:
                per_prompt = np.minimum(per_prompt, cap)
            order = (np.arange(n_requests) // spec.n) % per_prompt.size
            source = f"lengths measured in run {earlier.id}"
            return Workload(n_requests, per_prompt[order], source), warnings
    if cap is None:
        raise ConfigError(
            f"no measured output lengths for {spec.dataset or 'the eval'}: give --output-len "
            "or --max-tokens"
        )
    warnings.append(
        f"no earlier run of {spec.dataset or 'the eval'} to take output lengths from: every "
        f"request is assumed to use its full --max-tokens ({cap}), an upper bound"
    )
    return Workload(n_requests, np.full(n_requests, float(cap)), "max_tokens"), warnings


def _earlier_run(store: Store, dataset: str | None, exclude: set[int]) -> Run | None:
    """The latest completed run of ``dataset`` outside the curve."""
    for r in reversed(store.runs()):
        if r.id not in exclude and r.workload.get("dataset") == dataset and r.status == "completed":
            return r
    return None


def _lengths(store: Store, run: Run) -> tuple[np.ndarray, int]:
    """Mean output tokens per prompt of an earlier run (at least 1), and how many stopped at
    its max_tokens."""
    lengths, capped = store.output_lengths(run.id)
    return np.maximum(lengths, 1.0), capped


def _level(
    store: Store, s: Summary, knee: Summary | None, w: Workload, slos: tuple[SLO, ...]
) -> PlanLevel:
    c = int(s.parallel or 1)
    cols = store.columns(
        s.run_id, ("end_ns", "last_token_ns"), where="AND warmup = 0 AND status = 'ok'"
    )
    tail = float(np.nanmean(cols["end_ns"] - cols["last_token_ns"]) / 1e6) if s.ok else 0.0
    if not math.isfinite(tail):
        tail = 0.0
    beyond = knee is not None and c > (knee.parallel or 0)
    if beyond:
        assert knee is not None
        prefill = knee.mean_ttft_ms
        wait = max(0.0, s.mean_ttft_ms - prefill)
        # Little's law on what was measured: completions/s × the time each held its slot
        # (c · (E2E − W) / E2E would count the level's start-up transient as service)
        slots = min(float(c), max(s.req_per_s * (s.mean_e2e_ms - wait) / 1e3, 1.0))
    else:
        prefill, slots = s.mean_ttft_ms, float(c)
    service = prefill + (w.lengths - 1) * s.mean_tpot_ms + tail
    waits, wall_ms = closed_loop(service, c, max(1, min(c, round(slots))))
    # each request's own time to first token without queueing, drawn from the measured
    # distribution (the knee's beyond it), so that TTFT percentiles are predicted as
    # percentiles, not as the mean
    unqueued = _spread(store, (knee if beyond and knee is not None else s).run_id, waits.size)
    level = PlanLevel(
        concurrency=c,
        run_id=s.run_id,
        slots=slots,
        prefill_ms=prefill,
        tpot_ms=s.mean_tpot_ms,
        tail_ms=tail,
        wall_s=wall_ms / 1e3,
        ttft_ms=waits + (unqueued if unqueued is not None else prefill),
        e2e_ms=waits + service,
    )
    level.slo = [_predicted(r, level, w) for r in check(s, slos, store)]
    return level


def _spread(store: Store, run_id: int, n: int) -> np.ndarray | None:
    """``n`` values with the run's measured TTFT distribution (its quantiles at (k + ½)/n, in
    a fixed random order so that they do not follow the queue waits); None without samples."""
    measured = store.columns(run_id, ("ttft_ms",), where="AND warmup = 0 AND status = 'ok'")
    values = measured["ttft_ms"][~np.isnan(measured["ttft_ms"])]
    if not values.size or not n:
        return None
    spread = np.quantile(values, (np.arange(n) + 0.5) / n)
    return np.random.default_rng(0).permutation(spread)


def _predicted(r: SLOResult, x: PlanLevel, w: Workload) -> SLOResult:
    """An SLO against the predicted figures where the eval's lengths change them."""
    slo = r.slo
    values = {
        "ttft": x.ttft_ms,
        "ttft_intended": x.ttft_ms,
        "e2e": x.e2e_ms,
        "e2e_intended": x.e2e_ms,
    }
    if slo.metric in values and slo.stat is not None:
        v = values[slo.metric]
        q = slo.stat
        figure = (
            float(v.mean())
            if q == "mean"
            else float(np.percentile(v, 100 if q == "max" else float(q[1:])))
        )
    elif slo.metric == "req_per_s":
        figure = w.requests / x.wall_s
    elif slo.metric == "output_tok_per_s":
        figure = float(w.lengths.sum()) / x.wall_s
    else:
        return r
    return SLOResult(slo, figure, bool(slo.meets(figure)))


def closed_loop(service_ms: np.ndarray, workers: int, slots: int) -> tuple[np.ndarray, float]:
    """Play a closed loop: ``workers`` clients, ``slots`` served at once, FIFO queue.

    Request k is sent at t = 0 (k < workers) or when the worker of the next completion is
    free; it starts when a slot is free; it holds the slot ``service_ms[k]``. Returns each
    request's queue wait and the time of the last completion (ms).
    """
    free = [0.0] * slots  # when each slot is next free
    done: list[float] = []  # completions whose worker has not sent again yet
    waits = np.empty(service_ms.size)
    end = 0.0
    for k, s in enumerate(service_ms.tolist()):
        arrive = 0.0 if k < workers else heapq.heappop(done)
        start = max(arrive, heapq.heappop(free))
        finish = start + s
        heapq.heappush(free, finish)
        heapq.heappush(done, finish)
        waits[k] = start - arrive
        end = max(end, finish)
    return waits, end
