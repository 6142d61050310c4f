"""``perfbench sweep``: one run per load level, the throughput/latency curve, its knee, its SLO limit.

    >>> from perfbench.capacity.sweep import SweepSpec, sweep   # doctest: +SKIP
    >>> from perfbench.capacity.slo import parse_slos
    >>> result = sweep(base_perf_spec, SweepSpec(slos=parse_slos(["ttft_p99<=2s"])))
    >>> print(result.answer)

Each level is a closed loop at a concurrency or an open loop at a rate, run by
:func:`perfbench.runner.run` on ``base.loads[0]`` with ``parallel``/``rate``, ``number`` and
``duration`` replaced, into the same database. Every run of a sweep carries the sweep's name
(``base.name``, or ``sweep-YYYYmmdd-HHMMSS``), which is how ``perfbench report --name`` and
``perfbench plan --from-sweep`` find them together. (``run`` opens a new batch per call, and
a sweep must look at each level before it picks the next, so levels are separate calls.)

Levels are given, or searched: start at ``start``, double until the curve saturates (see
*knee*) or a level misses an SLO, then bisect between the last good and first bad level to
``precision`` (relative: stop when hi − lo ≤ precision × lo; for concurrency also at a gap
of 1), once for the SLO limit and once for the knee. A level that misses an SLO *badly* (a
figure past ``stop_ratio`` × its bound, or goodput below ``stop_goodput`` × its request rate, or
nothing succeeded) stops the climb at once: higher loads would only fail worse, slowly.

Definitions (also in docs/capacity.md). *Throughput* is output tok/s; *latency* is mean E2E
(closed loop) or mean E2E from the plan (open loop: the queueing the client saw counts).

* **knee**: let T_max be the highest throughput measured. The knee is the lowest measured level
  whose throughput is within ``knee_gain`` (10%) of T_max, provided a higher measured level
  shows latency more than ``knee_latency`` (25%) above the knee's: beyond it, throughput grows
  by at most 1/(1 − 0.1) − 1 ≈ 11% while latency climbs, i.e. the extra load only queues. With
  no such higher level the curve has not (visibly) saturated and there is no knee. While
  doubling, level x saturates when, against the level before, throughput grew by less than 10%
  per doubling while latency grew by more than 25% per doubling; the climb stops there (or, while
  every SLO still holds, after a second such doubling). ``knee_fit`` is the roofline
  fit: T_max over the slope of T(x) = a·x fitted (least squares through 0) to the levels below
  the knee, the load at which the unloaded line meets the plateau (for a closed loop with a
  cap of B sequences and no batch slowdown, exactly B).
* **SLO limit**: the highest measured level that meets every SLO, with every measured level
  below it meeting them too.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from perfbench.capacity.curve import find_knee, roofline
from perfbench.capacity.slo import SLO, Goodput, SLOResult, check, goodput
from perfbench.config import LoadSpec, PerfSpec
from perfbench.errors import ConfigError
from perfbench.metrics.summary import Summary
from perfbench.runner import EXIT_SIGNALS, Observer, run
from perfbench.store.runs import Store
from perfbench.versioned import json_object

Mode = Literal["concurrency", "rate"]


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep. ``levels`` empty: search from ``start`` up to ``max_level``.

    Requests per level: ``number``, or ``duration`` seconds, or by default
    max(``min_number``, ``per_unit`` × level): 10 per worker, or 10 s of arrivals at a rate.
    """

    mode: Mode = "concurrency"
    levels: tuple[float, ...] = ()
    start: float = 1
    max_level: float = 1024
    precision: float = 0.1
    number: int | None = None
    duration: float | None = None
    per_unit: float = 10.0
    min_number: int = 20
    slos: tuple[SLO, ...] = ()
    stop_ratio: float = 2.0
    stop_goodput: float = 0.5
    knee_gain: float = 0.10
    knee_latency: float = 0.25

    def __post_init__(self) -> None:
        if self.mode not in ("concurrency", "rate"):
            raise ConfigError("a sweep is over concurrency (--parallel) or rate (--rate)")
        if any(not (x > 0) or math.isinf(x) for x in (*self.levels, self.start, self.max_level)):
            raise ConfigError("sweep levels must be positive, finite numbers")
        if self.mode == "concurrency":
            ints = (*self.levels, self.start, self.max_level)
            if any(x != int(x) for x in ints):
                raise ConfigError("concurrency levels are whole numbers, e.g. --parallel 1 2 4 8")
        if self.start > self.max_level:
            raise ConfigError("--start must not exceed --max-level")
        if not 0 < self.precision < 1:
            raise ConfigError("--precision is a fraction of the level, in (0, 1), e.g. 0.1")
        if self.number is not None and self.number < 1:
            raise ConfigError("--number must be at least 1")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError("--duration must be positive")
        if not self.per_unit > 0 or self.min_number < 1:
            raise ConfigError("requests per level must be positive")
        if not self.stop_ratio > 1:
            raise ConfigError("--stop-ratio must be above 1 (2: stop at twice a bound)")
        if not 0 <= self.stop_goodput <= 1:
            raise ConfigError("--stop-goodput is a share of the request rate, in [0, 1]")
        if not 0 < self.knee_gain < 1 or not self.knee_latency > 0:
            raise ConfigError("--knee-gain must be in (0, 1) and --knee-latency positive")

    @property
    def unit(self) -> str:
        return "concurrent requests" if self.mode == "concurrency" else "req/s"

    def load(self, template: LoadSpec, level: float) -> LoadSpec:
        """The load of one level, from the base spec's first load."""
        number = self.number
        if number is None and self.duration is None:
            number = max(self.min_number, math.ceil(self.per_unit * level))
        if self.mode == "concurrency":
            return dataclasses.replace(
                template,
                parallel=int(level),
                rate=None,
                ramp_from=None,
                ramp_to=None,
                number=number,
                duration=self.duration,
            )
        return dataclasses.replace(
            template, rate=float(level), trace=None, number=number, duration=self.duration
        )


@dataclass
class Level:
    """One measured level of the curve."""

    level: float
    run_id: int
    phase: str  # given | double | bisect-slo | bisect-knee
    summary: Summary
    slo: list[SLOResult]
    goodput: Goodput
    kv_bound: bool | None = None  # from the server's metrics, when it has them

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.slo) and self.summary.ok > 0

    @property
    def throughput(self) -> float:
        return self.summary.output_tok_per_s

    @property
    def latency(self) -> float:
        s = self.summary
        if s.mode == "open" and "e2e_intended_ms" in s.distributions:
            return s.distributions["e2e_intended_ms"].mean
        return s.mean_e2e_ms

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        d = s.distributions

        def pct(key: str, p: str) -> float | None:
            v = d[key].values.get(p) if key in d else None
            return v if v is not None and math.isfinite(v) else None

        return json_object(
            {
                "level": self.level,
                "run_id": self.run_id,
                "phase": self.phase,
                "req_per_s": s.req_per_s,
                "output_tok_per_s": s.output_tok_per_s,
                "goodput_req_per_s": self.goodput.per_s,
                "good": self.goodput.good,
                "measured": s.measured,
                "failed": s.failed,
                "ttft_ms": {"p50": pct("ttft_ms", "p50"), "p99": pct("ttft_ms", "p99")},
                "tpot_ms": {"p50": pct("tpot_ms", "p50"), "p99": pct("tpot_ms", "p99")},
                "e2e_ms": {"p50": pct("e2e_ms", "p50"), "mean": s.mean_e2e_ms},
                "latency_ms": self.latency,
                "passed": self.passed,
                "slo": [
                    {"slo": str(r.slo), "value": r.value, "passed": r.passed} for r in self.slo
                ],
                "kv_bound": self.kv_bound,
            }
        )


@dataclass
class SweepResult:
    name: str
    db_path: str
    spec: SweepSpec
    levels: list[Level] = field(default_factory=list)  # sorted by level
    stopped_early: str | None = None  # why the climb stopped before max_level, if it did
    stopped_by: int | None = None  # a signal

    # -- the answers ------------------------------------------------------------------------
    @property
    def knee(self) -> Level | None:
        i = find_knee(
            [(x.level, x.throughput, x.latency) for x in self.levels],
            self.spec.knee_gain,
            self.spec.knee_latency,
        )
        return None if i is None else self.levels[i]

    @property
    def knee_fit(self) -> float | None:
        knee = self.knee
        if knee is None:
            return None
        return roofline([(x.level, x.throughput) for x in self.levels], knee.level)

    @property
    def slo_limit(self) -> Level | None:
        if not self.spec.slos:
            return None
        best = None
        for x in self.levels:
            if not x.passed:
                break
            best = x
        return best

    @property
    def answer(self) -> str:
        """The sweep's answer in one or two sentences."""
        unit, spec = self.spec.unit, self.spec
        parts: list[str] = []
        if spec.slos:
            limit = self.slo_limit
            if limit is None:
                first = self.levels[0] if self.levels else None
                missed = ", ".join(str(r) for r in first.slo if not r.passed) if first else ""
                parts.append(
                    f"Misses its SLOs even at {_num(first.level)} {unit} ({missed})"
                    if first
                    else "No level was measured"
                )
            else:
                top = limit is self.levels[-1]
                parts.append(
                    f"Meets every SLO up to {_num(limit.level)} {unit} "
                    + f"(goodput {limit.goodput.per_s:.3g} req/s"
                    + ("; the highest level tried)" if top else ")")
                )
        knee = self.knee
        if knee is not None:
            # at the knee itself the cache may just fit; the levels past it show who queues
            beyond = [x for x in self.levels if x.level >= knee.level]
            kv = (
                " for space in the KV cache, which is full there"
                if any(x.kv_bound for x in beyond)
                else ""
            )
            parts.append(
                f"throughput saturates at about {_num(knee.level)} {'' if spec.slos else unit + ' '}"
                f"(the knee, {knee.throughput:,.0f} output tok/s), beyond which latency is "
                f"queueing{kv}"
            )
        elif self.levels:
            parts.append(
                f"throughput still grows at the highest level measured "
                f"({_num(self.levels[-1].level)} {unit}): no knee found"
            )
        text = "; ".join(parts)
        text = text[:1].upper() + text[1:] + "."
        if self.stopped_early:
            text += f" Stopped climbing: {self.stopped_early}."
        return text

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return EXIT_SIGNALS.get(signal.Signals(self.stopped_by), 130)
        if self.spec.slos and self.slo_limit is None:
            return 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        knee, limit = self.knee, self.slo_limit
        return json_object(
            {
                "name": self.name,
                "db_path": self.db_path,
                "mode": self.spec.mode,
                "slos": [str(s) for s in self.spec.slos],
                "levels": [x.to_dict() for x in self.levels],
                "knee": knee.level if knee else None,
                "knee_fit": self.knee_fit,
                "slo_limit": limit.level if limit else None,
                "stopped_early": self.stopped_early,
                "answer": self.answer,
            }
        )

    def to_json(self) -> str:
        from perfbench.report.output import to_json

        return to_json(self)

    def render(self, *, quiet: bool = False) -> Any:
        """The table and the answer in one sentence."""
        from rich.console import Group
        from rich.text import Text

        return Group(self.table(), Text(self.answer))

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per level."""
        return [x.to_dict() for x in self.levels]

    def table(self) -> Any:
        """The curve as a rich Table (one row per level)."""
        from rich import box
        from rich.table import Table

        knee, limit = self.knee, self.slo_limit
        head = "Concurrency" if self.spec.mode == "concurrency" else "Rate (req/s)"
        t = Table(
            title=f"Sweep {self.name}", box=box.SIMPLE_HEAVY, title_justify="left", show_lines=False
        )
        for col in (
            head,
            "Run",
            "req/s",
            "Output tok/s",
            "Goodput req/s",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "TPOT p50 ms",
            "TPOT p99 ms",
            "E2E p50 ms",
            "Errors",
            "SLO",
            "",
        ):
            t.add_column(col, justify="left" if col in ("SLO", "") else "right")
        for x in self.levels:
            s, d = x.summary, x.summary.distributions
            notes = [n for n, on in (("knee", x is knee), ("SLO limit", x is limit)) if on]
            if x.kv_bound:
                notes.append("KV full")
            t.add_row(
                _num(x.level),
                str(x.run_id),
                _fmt(s.req_per_s, 3),
                _fmt(s.output_tok_per_s, 1),
                _fmt(x.goodput.per_s, 3) if self.spec.slos else "—",
                _fmt(_p(d, "ttft_ms", "p50")),
                _fmt(_p(d, "ttft_ms", "p99")),
                _fmt(_p(d, "tpot_ms", "p50")),
                _fmt(_p(d, "tpot_ms", "p99")),
                _fmt(_p(d, "e2e_ms", "p50")),
                str(s.failed),
                ("✓" if x.passed else "✗ " + " ".join(str(r.slo) for r in x.slo if not r.passed))
                if self.spec.slos
                else "—",
                ", ".join(notes),
            )
        return t


def saturated(prev: Level, cur: Level, gain: float, latency: float) -> bool:
    """Whether going from ``prev`` to ``cur`` bought < ``gain`` throughput per doubling while
    latency grew > ``latency`` per doubling."""
    doublings = math.log2(cur.level / prev.level)
    if doublings <= 0 or not (prev.throughput > 0 and prev.latency > 0):
        return False
    t_growth = (cur.throughput / prev.throughput) ** (1 / doublings) - 1
    d_growth = (cur.latency / prev.latency) ** (1 / doublings) - 1
    return bool(t_growth < gain and d_growth > latency)


def sweep(base: PerfSpec, spec: SweepSpec, *, observer: Observer | None = None) -> SweepResult:
    """Run the levels of ``spec`` on ``base`` (its first load is each level's template)."""
    name = base.name or time.strftime("sweep-%Y%m%d-%H%M%S")
    with _one_server(dataclasses.replace(base, name=name)) as server:
        return _Sweeper(server, spec, observer).go()


@contextmanager
def _one_server(base: PerfSpec) -> Iterator[PerfSpec]:
    """The embedded simulator, started once for the whole sweep rather than once per level."""
    if base.client.url is not None:
        yield base
        return
    from perfbench.sim.embedded import EmbeddedSim

    with EmbeddedSim(base.embedded_args) as sim:
        yield dataclasses.replace(base, client=dataclasses.replace(base.client, url=sim.url))


class _Sweeper:
    def __init__(self, base: PerfSpec, spec: SweepSpec, observer: Observer | None) -> None:
        self.base, self.spec, self.observer = base, spec, observer
        if base.repeat != 1 or base.resume is not None:
            raise ConfigError(
                "a sweep measures each level once: repeat and resume are `perfbench perf`'s"
            )
        assert base.name is not None
        self.result = SweepResult(base.name, str(base.db_path), spec)
        self._seen: dict[float, Level] = {}

    def go(self) -> SweepResult:
        if self.spec.levels:
            for x in sorted(set(self.spec.levels)):
                if self._measure(x, "given") is None or self._stop(self._seen[x]):
                    break
        else:
            self._search()
        self.result.levels = sorted(self._seen.values(), key=lambda lv: lv.level)
        return self.result

    def _measure(self, x: float, phase: str) -> Level | None:
        """Run one level (once: a level already measured is reused); None when interrupted."""
        if x in self._seen:
            return self._seen[x]
        if self.result.stopped_by is not None:
            return None
        load = self.spec.load(self.base.loads[0], x)
        batch = run(dataclasses.replace(self.base, loads=(load,)), observer=self.observer)
        if batch.stopped_by is not None:
            self.result.stopped_by = batch.stopped_by
        if not batch.runs:
            return None
        (r,) = batch.runs
        store = Store(self.base.db_path)
        try:
            level = Level(
                level=x,
                run_id=r.run_id,
                phase=phase,
                summary=r.summary,
                slo=check(r.summary, self.spec.slos, store),
                goodput=goodput(store, r.summary, self.spec.slos),
                kv_bound=_kv_bound(r.summary),
            )
        finally:
            store.close()
        self._seen[x] = level
        return None if batch.stopped_by is not None else level

    def _stop(self, level: Level) -> bool:
        """Whether ``level`` failed so badly that higher ones need not be tried."""
        spec, s = self.spec, level.summary
        why = None
        if s.measured and s.ok == 0:
            why = f"no request succeeded at {_num(level.level)}"
        else:
            worst = max(level.slo, key=lambda r: r.ratio, default=None)
            if worst is not None and worst.ratio >= spec.stop_ratio:
                why = (
                    f"{worst.slo.metric}{'_' + worst.slo.stat if worst.slo.stat else ''} was "
                    f"{worst.slo.show(worst.value)} at {_num(level.level)}, past "
                    f"{spec.stop_ratio:g}× its bound ({worst.slo})"
                )
            elif (
                spec.slos
                and s.req_per_s > 0
                and level.goodput.per_s < spec.stop_goodput * s.req_per_s
            ):
                why = (
                    f"goodput at {_num(level.level)} was {level.goodput.per_s:.3g} req/s, under "
                    f"{spec.stop_goodput:.0%} of the {s.req_per_s:.3g} req/s served"
                )
        if why is not None:
            self.result.stopped_early = why
        return why is not None

    def _search(self) -> None:
        spec = self.spec
        x, prev, flat = spec.start, None, 0
        while True:
            level = self._measure(x, "double")
            if level is None or self._stop(level):
                break
            if prev is not None and saturated(prev, level, spec.knee_gain, spec.knee_latency):
                flat += 1
            # saturated: stop, unless SLOs still hold (then one more doubling looks for the limit)
            if flat and (not spec.slos or not level.passed or flat >= 2):
                break
            if x >= spec.max_level:
                break
            prev, x = level, min(2 * x, spec.max_level)
        if self.result.stopped_by is None and spec.slos:
            self._bisect_slo()
        if self.result.stopped_by is None:
            self._bisect_knee()

    def _bisect_slo(self) -> None:
        while True:
            levels = sorted(self._seen.values(), key=lambda lv: lv.level)
            bad = next((i for i, lv in enumerate(levels) if not lv.passed), None)
            if bad is None or bad == 0:
                return  # every level passed, or even the lowest failed
            mid = self._mid(levels[bad - 1].level, levels[bad].level)
            if mid is None or self._measure(mid, "bisect-slo") is None:
                return

    def _bisect_knee(self) -> None:
        spec = self.spec
        while True:
            levels = sorted(self._seen.values(), key=lambda lv: lv.level)
            points = [(lv.level, lv.throughput, lv.latency) for lv in levels]
            k = find_knee(points, spec.knee_gain, spec.knee_latency)
            if not k:
                return  # no knee, or it is the lowest level measured
            mid = self._mid(levels[k - 1].level, levels[k].level)
            if mid is None or self._measure(mid, "bisect-knee") is None:
                return

    def _mid(self, lo: float, hi: float) -> float | None:
        """The level halfway, or None when lo and hi are within the precision."""
        if hi - lo <= self.spec.precision * lo:
            return None
        if self.spec.mode == "concurrency":
            mid = float(round((lo + hi) / 2))
            return None if mid in (lo, hi) else mid
        return (lo + hi) / 2


def _kv_bound(summary: Summary) -> bool | None:
    """Was the KV cache the limit at this level? None when the run has no server metrics."""
    from perfbench.metrics.server import kv_bound

    if not summary.server.get("available"):
        return None
    return kv_bound(summary.server)


def _p(d: dict[str, Any], key: str, p: str) -> float:
    return float(d[key].values.get(p, math.nan)) if key in d else math.nan


def _fmt(value: float, digits: int = 2) -> str:
    from perfbench.report.tables import fmt

    return fmt(value, digits)


def _num(x: float) -> str:
    return f"{x:g}"
