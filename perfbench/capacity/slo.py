"""Service-level objectives: ``ttft_p99<=2s``, their check against a run, and goodput.

An SLO bounds one figure of a run: a statistic (``mean``, ``pNN``, ``max``) of a per-request
distribution, or a run-level figure::

    ttft_p99<=2s   tpot_p50<=50ms   e2e_mean<10s   itl_p95<=30ms   ttft_intended_p99.9<=3s
    error_rate<=1%   output_tok_per_s>=1000   req_per_s>=5   output_tps_p10>=20

Distributions are the Summary's (``ttft``, ``tpot``, ``itl``, ``e2e``, ``ttft_intended``,
``e2e_intended``, ``schedule_lag`` in s or ms; ``output_tps``, one request's output tok/s, with
no unit), any percentile: one the Summary lacks (``p99.99``) is computed from the store's rows
with the same linear interpolation. ``error_rate`` is failed / measured requests (``%`` or a
fraction); the throughputs are the Summary's.

**Goodput** (DESIGN.md: requests per second that met every SLO given) is per request, as
DistServe and ``vllm bench serve --goodput`` define it: a measured request is *good* when it
succeeded and its own TTFT, TPOT, E2E (… every per-request figure an SLO names) meets every bound
given for that figure; a percentile or mean bound applies to each request as a plain bound
(``ttft_p99<=2s``: this request's TTFT ≤ 2 s). Goodput = good requests / the run's measured
window (first send to last completion, the window of every throughput). ITL has no single value
per request (a request has many gaps), so ITL bounds, like the run-level ones (``error_rate``,
throughputs), decide whether the run meets its SLOs but not which requests are good. A request
whose figure is undefined (the TPOT of a one-token output) meets that bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perfbench.errors import ConfigError
from perfbench.metrics.summary import Summary
from perfbench.store.runs import Store

# name in an SLO -> Summary distribution key; times are in ms in the Summary
TIME_METRICS = {
    "ttft": "ttft_ms",
    "tpot": "tpot_ms",
    "itl": "itl_ms",
    "e2e": "e2e_ms",
    "ttft_intended": "ttft_intended_ms",
    "e2e_intended": "e2e_intended_ms",
    "schedule_lag": "schedule_lag_ms",
}
COUNT_METRICS = {"output_tps": "output_tps"}  # per-request output tok/s, no unit
RUN_METRICS = ("error_rate", "req_per_s", "output_tok_per_s", "total_tok_per_s")
PER_REQUEST = frozenset(set(TIME_METRICS) - {"itl"} | set(COUNT_METRICS))

_EXAMPLE = "e.g. --slo ttft_p99<=2s, --slo tpot_p50<=50ms or --slo error_rate<=1%"
_SLO_RE = re.compile(
    r"^\s*([a-z][a-z0-9_]*?)(?:_(mean|max|p\d+(?:\.\d+)?))?\s*(<=|>=|<|>)\s*(\S+?)\s*$"
)
_VALUE_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)(ms|s|%)?$")


@dataclass(frozen=True)
class SLO:
    """One bound, in canonical units: ms for times, a fraction for ``error_rate``.

    >>> SLO.parse("ttft_p99<=2s")
    SLO(metric='ttft', stat='p99', op='<=', bound=2000.0, unit='s')
    """

    metric: str
    stat: str | None  # "mean", "max" or "p99.9"; None for run-level figures
    op: str  # <=, <, >=, >
    bound: float
    unit: str = ""  # how the user wrote it (s, ms, %), for display

    @classmethod
    def parse(cls, text: str) -> SLO:
        m = _SLO_RE.match(text.lower())
        if m is None:
            raise ConfigError(f"--slo {text!r} is not METRIC_STAT OP VALUE; {_EXAMPLE}")
        metric, stat, op, raw = m.groups()
        value = _VALUE_RE.match(raw)
        if value is None:
            raise ConfigError(f"--slo {text!r}: {raw!r} is not a number with a unit; {_EXAMPLE}")
        number, unit = float(value.group(1)), value.group(2) or ""
        if metric in TIME_METRICS or metric in COUNT_METRICS:
            if stat is None:
                raise ConfigError(
                    f"--slo {text!r}: say which statistic of {metric}, "
                    f"e.g. {metric}_p99 or {metric}_mean"
                )
            if stat.startswith("p") and not 0 <= float(stat[1:]) <= 100:
                raise ConfigError(f"--slo {text!r}: a percentile is between p0 and p100")
            if metric in TIME_METRICS:
                if unit not in ("s", "ms"):
                    raise ConfigError(
                        f"--slo {text!r}: give the time with a unit, e.g. {metric}_{stat}{op}2s "
                        f"or {metric}_{stat}{op}200ms"
                    )
                bound = number * 1000 if unit == "s" else number
            else:
                if unit:
                    raise ConfigError(f"--slo {text!r}: {metric} takes a plain number (tok/s)")
                bound = number
        elif metric in RUN_METRICS and stat is None:
            if metric == "error_rate":
                if unit not in ("", "%"):
                    raise ConfigError(f"--slo {text!r}: error_rate is a % or a fraction")
                bound = number / 100 if unit == "%" else number
            elif unit:
                raise ConfigError(f"--slo {text!r}: {metric} takes a plain number, e.g. >=1000")
            else:
                bound = number
        else:
            known = ", ".join([*TIME_METRICS, *COUNT_METRICS, *RUN_METRICS])
            raise ConfigError(
                f"--slo {text!r}: unknown metric {metric + (f'_{stat}' if stat else '')!r} "
                f"(known: {known}, the distributions with _mean, _max or _pNN); {_EXAMPLE}"
            )
        return cls(metric, stat, op, bound, unit)

    @property
    def upper(self) -> bool:
        """True for an upper bound (``<=``, ``<``)."""
        return self.op.startswith("<")

    def meets(self, value: float | np.ndarray) -> np.ndarray:
        """Whether ``value`` (canonical units) meets the bound; NaN meets nothing here."""
        v = np.asarray(value, dtype=np.float64)
        if self.op == "<=":
            return v <= self.bound
        if self.op == "<":
            return v < self.bound
        if self.op == ">=":
            return v >= self.bound
        return v > self.bound

    def show(self, value: float) -> str:
        """``value`` (canonical units) in the unit the SLO was written in."""
        if not math.isfinite(value):
            return "—"
        if self.unit == "s":
            return f"{value / 1000:.3g}s"
        if self.unit == "ms":
            return f"{value:.3g}ms"
        if self.unit == "%":
            return f"{value * 100:.3g}%"
        return f"{value:.4g}"

    def __str__(self) -> str:
        name = self.metric + (f"_{self.stat}" if self.stat else "")
        return f"{name}{self.op}{self.show(self.bound)}"


def parse_slos(texts: Sequence[str]) -> tuple[SLO, ...]:
    """Every ``--slo`` given; one text may hold several, separated by commas."""
    return tuple(SLO.parse(part) for text in texts for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class SLOResult:
    slo: SLO
    value: float  # canonical units; NaN when the run has no such figure (no request succeeded)
    passed: bool

    @property
    def ratio(self) -> float:
        """How far past the bound: value/bound for an upper bound, bound/value for a lower one
        (above 1 is a miss; 2 is "twice as bad as allowed"); inf when there is no value."""
        v, b = self.value, self.slo.bound
        if not math.isfinite(v):
            return math.inf
        num, den = (v, b) if self.slo.upper else (b, v)
        if den <= 0:
            return math.inf if num > 0 else 0.0
        return num / den

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.slo} (measured {self.slo.show(self.value)})"


def check(summary: Summary, slos: Sequence[SLO], store: Store | None = None) -> list[SLOResult]:
    """Each SLO against a run's figures; ``store`` supplies percentiles the Summary lacks."""
    return [
        SLOResult(slo, v, bool(slo.meets(v))) for slo in slos for v in [value(summary, slo, store)]
    ]


def value(summary: Summary, slo: SLO, store: Store | None = None) -> float:
    """The figure an SLO bounds, in canonical units (NaN when the run has none)."""
    if slo.stat is None:
        if slo.metric == "error_rate":
            return summary.failed / summary.measured if summary.measured else math.nan
        return float(getattr(summary, slo.metric))
    key = TIME_METRICS.get(slo.metric) or COUNT_METRICS[slo.metric]
    dist = summary.distributions.get(key)
    if dist is not None and slo.stat == "mean":
        return dist.mean
    if dist is not None and slo.stat in dist.values:
        return dist.values[slo.stat]
    if store is None:
        raise ConfigError(f"--slo {slo}: run {summary.run_id} has no {slo.stat} of {slo.metric}")
    values = _values(store, summary.run_id, slo.metric)
    if values.size == 0:
        return math.nan
    q = 100.0 if slo.stat == "max" else float(slo.stat[1:])
    return float(np.percentile(values, q))


def _values(store: Store, run_id: int, metric: str) -> np.ndarray:
    """One figure of every measured, successful request of a run (ITL: every gap), in ms."""
    if metric == "itl":
        gaps = list(store.iter_gaps(run_id))
        out: np.ndarray = np.concatenate(gaps) / 1e6 if gaps else np.empty(0)
        return out
    values = _per_request(store, run_id, [metric])[metric]
    kept: np.ndarray = values[~np.isnan(values)]
    return kept


def _per_request(store: Store, run_id: int, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-request figures of the measured, successful requests (NaN where undefined)."""
    cols = store.columns(
        run_id,
        ("e2e_ms", "completion_tokens", *(TIME_METRICS[m] for m in metrics if m in TIME_METRICS)),
        where="AND warmup = 0 AND status = 'ok'",
    )
    out: dict[str, np.ndarray] = {"": cols["e2e_ms"]}  # "" keys the row count
    for m in metrics:
        if m == "output_tps":
            with np.errstate(divide="ignore", invalid="ignore"):
                out[m] = cols["completion_tokens"] / (cols["e2e_ms"] / 1e3)
        else:
            out[m] = cols[TIME_METRICS[m]]
    return out


@dataclass(frozen=True)
class Goodput:
    good: int  # measured requests that succeeded and met every per-request bound
    measured: int
    per_s: float  # good / the run's measured window

    @property
    def share(self) -> float:
        return self.good / self.measured if self.measured else math.nan


def goodput(store: Store, summary: Summary, slos: Sequence[SLO]) -> Goodput:
    """Requests per second that met every per-request SLO (see the module docstring)."""
    window = summary.duration_s
    per_request = [s for s in slos if s.metric in PER_REQUEST]
    figures = _per_request(store, summary.run_id, sorted({s.metric for s in per_request}))
    good = np.ones(figures[""].size, dtype=bool)
    for slo in per_request:
        v = figures[slo.metric]
        good &= np.isnan(v) | slo.meets(v)
    n = int(good.sum())
    per_s = n / window if window and math.isfinite(window) and window > 0 else math.nan
    return Goodput(n, summary.measured, per_s)
