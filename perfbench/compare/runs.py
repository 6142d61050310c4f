"""Two runs compared figure by figure: the change, its confidence interval, and a verdict.

Example::

    from perfbench.compare.runs import CompareSpec, compare, gate_exit_code
    result = compare("outputs/perfbench.db", "1", "2", CompareSpec(thresholds={"*": 0.10}))
    print(result.summary()); raise SystemExit(gate_exit_code(result))

docs/compare.md states every definition for users; in short:

* **Figures.** Output tok/s and req/s; TTFT, TPOT, ITL and E2E mean, p50, p90 and p99; error
  rate; accuracy when both runs were graded. Base and New are exactly ``perfbench report``'s
  figures (:func:`perfbench.metrics.summary.summarize`): successful, non-warm-up requests.
* **Change.** Relative, ``new / base − 1``, for throughput and latency; absolute, in percentage
  points, for error rate and accuracy (a relative change from a 0% error rate is undefined).
* **Interval.** For relative figures, the *normal bootstrap interval* on the log of the ratio,
  ``log(new/base) ± z·√(sd*²_base + sd*²_new)`` with sd* the bootstrap standard deviation of
  the log of each run's figure (the runs are independent samples), transformed back (Efron &
  Tibshirani 1993, *An Introduction to the Bootstrap*, §13.2). Normal rather than percentile
  intervals because the Bonferroni levels (below) sit far in the tails, where 2,000 resamples
  give a stable standard deviation but only a handful of order statistics.

  - TTFT, TPOT, E2E: a cluster bootstrap, as for ITL below: requests grouped by the time
    slice they were sent in, slices resampled whole, because one stall of the server or the
    client delays every request in flight (resampling requests one by one called two identical
    runs different on TTFT p99 in 2 of 6 pairs). A run too short for ten slices falls back to
    the bootstrap over requests, drawn exactly from order statistics
    (:func:`_order_bootstrap`), and for means the closed form σ̂/(√n·mean).
  - ITL: a cluster bootstrap. Gaps are grouped by the time slice their request was sent in
    (one slice per second of the run, 20 to 3,600) and slices are resampled with all their
    gaps, because one stall delays a gap of every stream in flight at once. At most
    ``itl_max_requests`` (5,000) whole requests and ``itl_max_gaps`` (50,000) gaps (every s-th
    gap of each request) enter it, drawn with ``seed``; the figure itself uses every gap.
  - Throughput is one ratio per run (tokens / window), not a mean over requests: the window is
    cut into the same slices, each request's tokens counted in the slice where it ended, and a
    moving-block bootstrap (Künsch 1989, *Ann. Statist.* 17:1217) with blocks of ``⌈K^(1/3)⌉``
    slices resamples them, keeping the autocorrelation of a closed loop's waves.
  - Error rate: Newcombe's hybrid score interval for the difference of two independent
    proportions (Newcombe 1998, *Stat. Med.* 17:873, method 10), sound at 0 errors where a
    bootstrap collapses to a point.
  - Accuracy: the answers both runs gave to the same (question, sample) are paired; the
    verdict is McNemar's test (:mod:`perfbench.compare.answers`, exact below 25 discordant pairs,
    so ``compare`` and ``compare-answers`` agree), the interval the paired normal interval.
* **Replicates** (``perf --repeat R``): a side may be several runs of one load. Each figure is
  then the geometric mean of the replicates' figures, and the interval Welch's t on the logs
  of their figures (:func:`_replicate_interval`): the variance between runs, floored by the mean
  within-run bootstrap variance, with the Welch–Satterthwaite degrees of freedom of the
  replicates' own variances. One run per side is compared as below, and a warning says its
  interval covers the noise within each run only.
* **Multiple comparisons.** ``confidence`` (0.95) is family-wise over the ``m`` figures
  compared: each interval is at ``1 − (1 − confidence)/m`` (Bonferroni; 99.74% for 19), so two
  runs of one configuration show no significant change on every figure at least 95% of the
  time, where 19 intervals at 95% each would flag something in up to 62% of such pairs.
* **Verdict.** *worse* (or *better*) when the whole interval lies on the worse (better) side of
  0 *and*, for relative figures, the change is at least ``min_change`` (5%). Intervals measure
  the noise within each run; two runs also differ by machine state (another process, a warm
  cache), which no within-run interval sees, and with many requests a 2% drift in a p99 is
  "significant" and means nothing (pyperf's ``compare_to --min-speed``). A gated figure's
  floor is its threshold when that is lower. Otherwise *unchanged* ("no significant change",
  or "within noise floor" when only the floor held it back); *n/a* when it cannot be compared.
* **Gate.** A figure is gated when it has a threshold (``thresholds["*"]`` gates every figure
  shown). It fails when it is *worse* and its change is beyond the threshold in the worse
  direction (relative, or points for rates). The point change and not the interval's near end:
  the interval already guards against noise, and a near-end rule would let a clearly measured
  15% regression pass a 10% gate whenever the runs are small.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from perfbench.config import WorkloadSpec
from perfbench.errors import ConfigError, UsageError
from perfbench.metrics.percentiles import min_samples
from perfbench.metrics.summary import Summary, summarize
from perfbench.store.runs import Run, Store
from perfbench.versioned import json_object

if TYPE_CHECKING:
    from rich.console import RenderableType

Verdict = Literal["better", "worse", "unchanged", "n/a"]
VERDICT_LABELS: dict[str, str] = {
    "better": "better",
    "worse": "worse",
    "unchanged": "no significant change",
    "n/a": "—",
}


@dataclass(frozen=True, slots=True)
class Figure:
    """One comparable figure: ``higher_is_better`` for throughput and accuracy only."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = False
    scale: Literal["relative", "absolute"] = "relative"


_LATENCIES = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "E2E"))
_STATS = ("mean", "p50", "p90", "p99")
FIGURES: dict[str, Figure] = {
    f.key: f
    for f in (
        Figure("output_tok_per_s", "Output throughput", "tok/s", higher_is_better=True),
        Figure("req_per_s", "Request throughput", "req/s", higher_is_better=True),
        *(Figure(f"{k}_{s}", f"{label} {s}", "ms") for k, label in _LATENCIES for s in _STATS),
        Figure("error_rate", "Error rate", "%", scale="absolute"),
        Figure("accuracy", "Accuracy", "%", higher_is_better=True, scale="absolute"),
    )
}
GROUPS: dict[str, tuple[str, ...]] = {
    "throughput": ("output_tok_per_s", "req_per_s"),
    **{k: tuple(f"{k}_{s}" for s in _STATS) for k, _ in _LATENCIES},
    "latency": tuple(f"{k}_{s}" for k, _ in _LATENCIES for s in _STATS),
}

ITL_MAX_REQUESTS = 5_000
ITL_MAX_GAPS = 50_000
_CELLS = 1_000_000  # resample-matrix cells per chunk (8 MB): measured fastest on 2 cores


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareSpec:
    """How to compare: which figures, their gate thresholds, and the statistics' knobs.

    ``metrics``: figure keys or group names (``ttft``, ``latency``, ``throughput``…); empty for
    all. ``thresholds``: figure key (or ``"*"`` for every figure shown) → tolerated worsening as
    a fraction (0.10 = 10%, in points for error rate and accuracy). The module docstring defines
    the rest.
    """

    metrics: tuple[str, ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    force: bool = False
    min_change: float = 0.05
    correction: Literal["bonferroni", "none"] = "bonferroni"
    itl_max_requests: int = ITL_MAX_REQUESTS
    itl_max_gaps: int = ITL_MAX_GAPS

    def __post_init__(self) -> None:
        known = ", ".join([*GROUPS, *FIGURES])
        for name in self.metrics:
            if name not in FIGURES and name not in GROUPS:
                raise ConfigError(f"--metric {name!r} is not a figure; choose from {known}")
        shown = set(self.figure_keys())
        for name, value in self.thresholds.items():
            if name != "*" and name not in FIGURES:
                raise ConfigError(
                    f"--threshold {name!r} is not a figure or group; choose from {known}"
                )
            if name != "*" and name not in shown:
                raise ConfigError(f"--threshold {name} gates a figure that --metric leaves out")
            if not (0 <= value < math.inf):
                raise ConfigError(f"--threshold {name}={value} must be 0% or more, e.g. 10%")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"--confidence {self.confidence} must be in [0.5, 1), e.g. 0.95")
        if self.resamples < 200:
            raise ConfigError(f"--resamples {self.resamples} is too few: give 200 or more")
        if not 0 <= self.min_change < 1:
            raise ConfigError(f"--min-change {self.min_change} must be in [0, 1), e.g. 0.01")
        if self.correction not in ("bonferroni", "none"):
            raise ConfigError("--correction must be bonferroni or none")
        if self.itl_max_requests < 100 or self.itl_max_gaps < 1000:
            raise ConfigError("the sample caps must be at least 100 requests and 1000 gaps")

    def figure_keys(self) -> tuple[str, ...]:
        """The figures shown, in table order."""
        if not self.metrics:
            return tuple(FIGURES)
        wanted = {k for name in self.metrics for k in GROUPS.get(name, (name,))}
        return tuple(k for k in FIGURES if k in wanted)

    def threshold(self, key: str) -> float | None:
        return self.thresholds.get(key, self.thresholds.get("*"))


def parse_threshold(text: str) -> tuple[str, float]:
    """``"10%"`` → ``("*", 0.10)``; ``"ttft_p99=5%"`` → ``("ttft_p99", 0.05)``; ``"0.05"`` too."""
    name, eq, amount = text.rpartition("=")
    name = name.strip() if eq else "*"
    amount = amount.strip()
    try:
        value = float(amount[:-1]) / 100 if amount.endswith("%") else float(amount)
    except ValueError:
        raise ConfigError(
            f"--threshold {text!r} is not [FIGURE=]AMOUNT, e.g. 10% or tpot_p99=5%"
        ) from None
    return name or "*", value


def parse_thresholds(texts: Sequence[str]) -> dict[str, float]:
    """Every ``--threshold``; a group (``latency=10%``) stands for each of its figures, and a
    figure named on its own wins over its group."""
    grouped: dict[str, float] = {}
    named: dict[str, float] = {}
    for text in texts:
        name, value = parse_threshold(text)
        if name in GROUPS:
            grouped.update(dict.fromkeys(GROUPS[name], value))
        else:
            named[name] = value
    return {**grouped, **named}


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FigureChange:
    """One row of the comparison. ``change`` and ``ci`` are fractions (0.1 = +10% or +10 pp)."""

    figure: Figure
    base: float
    new: float
    change: float
    ci: tuple[float, float] | None
    verdict: Verdict
    threshold: float | None
    gate_failed: bool
    n_base: int
    n_new: int
    method: str
    p_value: float | None = None
    note: str | None = None

    @property
    def key(self) -> str:
        return self.figure.key

    @property
    def label(self) -> str:
        """The verdict in words: a significant change inside the floor says so."""
        if self.verdict == "unchanged" and self.note and self.note.startswith("significant"):
            return "within noise floor"
        return VERDICT_LABELS[self.verdict]

    @property
    def worse_by(self) -> float:
        """The change in the worse direction (negative when the figure improved)."""
        return -self.change if self.figure.higher_is_better else self.change

    def to_dict(self) -> dict[str, Any]:
        f = self.figure
        return json_object(
            {
                "key": f.key,
                "label": f.label,
                "unit": f.unit,
                "better": "higher" if f.higher_is_better else "lower",
                "scale": f.scale,
                "base": self.base,
                "new": self.new,
                "change": self.change,
                "ci": list(self.ci) if self.ci else None,
                "verdict": self.verdict,
                "threshold": self.threshold,
                "gate": None
                if self.threshold is None
                else ("fail" if self.gate_failed else "pass"),
                "n_base": self.n_base,
                "n_new": self.n_new,
                "method": self.method,
                "p_value": self.p_value,
                "note": self.note,
            }
        )


@dataclass(frozen=True, slots=True)
class RunSide:
    id: int
    name: str | None
    model: str | None
    endpoint: str | None
    status: str
    measured: int
    ok: int
    replicates: tuple[int, ...] = ()  # --repeat: every replicate's run id (``id`` is the first)

    @property
    def label(self) -> str:
        who = (
            f"runs {', '.join(map(str, self.replicates))}"
            if len(self.replicates) > 1
            else f"run {self.id}"
        )
        return who + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: one :class:`FigureChange` per figure shown, and the context."""

    base: RunSide
    new: RunSide
    spec: CompareSpec
    figures: tuple[FigureChange, ...]
    level: float  # each interval's confidence level (after the correction)
    compared: int  # m, the figures with a verdict
    differences: tuple[str, ...]  # how the runs' configurations differ (shown, or forced)
    forced: bool
    warnings: tuple[str, ...]
    elapsed_s: float = field(default=0.0, compare=False)

    def figure(self, key: str) -> FigureChange:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

    @property
    def gate_failures(self) -> tuple[FigureChange, ...]:
        return tuple(f for f in self.figures if f.gate_failed)

    def summary(self) -> str:
        """One sentence: what got worse or better, and the gate's outcome."""
        worse = [f for f in self.figures if f.verdict == "worse"]
        better = [f for f in self.figures if f.verdict == "better"]
        same = sum(f.verdict == "unchanged" for f in self.figures)
        level = f"family-wise {self.spec.confidence:.0%} confidence"
        head = f"{self.new.label} against {self.base.label}: "
        if not worse and not better:
            text = f"no significant change in any of the {self.compared} figures ({level})"
        else:
            parts = []
            if worse:
                parts.append(f"{len(worse)} worse ({_listed(worse, _brief)})")
            if better:
                parts.append(f"{len(better)} better ({_listed(better, _brief)})")
            parts.append(f"{same} without significant change ({level})")
            text = ", ".join(parts)
        failed = self.gate_failures
        if failed:
            text += "; the gate fails on " + _listed(
                failed, lambda f: f"{f.figure.label} {_change(f)} > {_amount(f, f.threshold)}"
            )
        elif any(f.threshold is not None for f in self.figures):
            text += "; the gate passes"
        return head + text + "."

    def to_dict(self) -> dict[str, Any]:
        def side(s: RunSide) -> dict[str, Any]:
            return {
                "run_id": s.id,
                "name": s.name,
                "model": s.model,
                "endpoint": s.endpoint,
                "status": s.status,
                "measured": s.measured,
                "ok": s.ok,
                "replicates": list(s.replicates) or [s.id],
            }

        spec = self.spec
        return json_object(
            {
                "base": side(self.base),
                "new": side(self.new),
                "confidence": spec.confidence,
                "correction": spec.correction,
                "compared": self.compared,
                "interval_level": self.level,
                "min_change": spec.min_change,
                "resamples": spec.resamples,
                "seed": spec.seed,
                "forced": self.forced,
                "differences": list(self.differences),
                "figures": [f.to_dict() for f in self.figures],
                "gate_failed": bool(self.gate_failures),
                "summary": self.summary(),
                "warnings": list(self.warnings),
            }
        )

    def to_json(self) -> str:
        from perfbench.versioned import versioned

        return json.dumps(versioned(self.to_dict()), indent=2)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per figure."""
        return [f.to_dict() for f in self.figures]

    def render(self, *, quiet: bool = False) -> RenderableType:
        return render(self, quiet=quiet)

    def to_markdown(self) -> str:
        """A GitHub-flavoured table and the summary, for a pull-request comment."""
        gated = any(f.threshold is not None for f in self.figures)
        head = ["Figure", "Base", "New", "Change", f"{_pct_level(self.level)} CI", "Verdict"]
        if gated:
            head.append("Gate")
        lines = [
            f"### perfbench compare: {self.new.label} vs {self.base.label}",
            "",
            f"Base: {_who(self.base)} · New: {_who(self.new)}",
            "",
            "| " + " | ".join(head) + " |",
            "| "
            + " | ".join(["---", "--:", "--:", "--:", "--:", "---", "---"][: len(head)])
            + " |",
        ]
        for f in self.figures:
            verdict = f.label
            if f.verdict == "worse":
                verdict = f"**{verdict}**"
            cells = [
                _label(f.figure),
                _value(f.figure, f.base),
                _value(f.figure, f.new),
                _change(f),
                _ci(f),
                verdict,
            ]
            if gated:
                cells.append(_gate(f))
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += ["", self.summary()]
        if self.differences:
            lines += ["", "Configuration differences: " + "; ".join(self.differences) + "."]
        if self.warnings:
            lines += ["", "> [!WARNING]"]
            lines += [f"> - {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def gate_exit_code(result: Comparison) -> int:
    """The command's exit code: 1 when a gated figure failed (see the module docstring), else 0."""
    return 1 if result.gate_failures else 0


# -- the comparison --------------------------------------------------------------------------


def compare(
    db_path: str | Path, base: str, new: str, spec: CompareSpec | None = None
) -> Comparison:
    """Compare two runs of the database at ``db_path``, each named by id or name. A run made
    with ``--repeat`` stands for all the replicates of its load."""
    store = Store(db_path)
    try:
        return compare_stored(store, store.group(base), store.group(new), spec)
    finally:
        store.close()


def compare_stored(
    store: Store,
    base: Run | Sequence[Run],
    new: Run | Sequence[Run],
    spec: CompareSpec | None = None,
) -> Comparison:
    """Compare ``new`` against ``base`` (in ``store``), each a run or the replicates of one
    load (``--repeat``); see the module docstring.

    Raises UsageError when the runs' workloads or load shapes differ, unless ``spec.force``.
    """
    spec = spec or CompareSpec()
    bases = (base,) if isinstance(base, Run) else tuple(base)
    news = (new,) if isinstance(new, Run) else tuple(new)
    refused, shown = workload_differences(bases[0], news[0])
    if refused and not spec.force:
        listed = "; ".join(refused[:4]) + (f"; and {len(refused) - 4} more" if refused[4:] else "")
        raise UsageError(
            f"runs {bases[0].id} and {news[0].id} ran different workloads ({listed}), so their "
            "figures are not comparable: pass --force to compare them anyway"
        )
    started = time.perf_counter()
    keys = spec.figure_keys()
    sides = (_Group.read(store, bases, spec), _Group.read(store, news, spec))
    accuracy = _accuracy(store, bases, news) if "accuracy" in keys else None
    available = [k for k in keys if k != "accuracy" or accuracy is not None]
    m = max(1, len(available)) if spec.correction == "bonferroni" else 1
    level = 1 - (1 - spec.confidence) / m
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    rng = np.random.default_rng([spec.seed, bases[0].id, news[0].id])
    spreads = [[run.spread(rng, spec.resamples, keys) for run in side.runs] for side in sides]
    figures = []
    for key in keys:
        fig = FIGURES[key]
        if key == "accuracy":
            if accuracy is None:
                continue
            change = accuracy.change(fig, z, level, spec)
        elif key == "error_rate":
            change = _error_rate(fig, sides, z, spec)
        else:
            change = _relative(fig, sides, spreads, level, spec)
        figures.append(change)
    warnings = _warnings(sides, spec, figures, accuracy is None and "accuracy" in keys, refused)
    return Comparison(
        base=sides[0].side,
        new=sides[1].side,
        spec=spec,
        figures=tuple(figures),
        level=level,
        compared=len(available),
        differences=tuple(refused + shown),
        forced=bool(refused),
        warnings=tuple(warnings),
        elapsed_s=time.perf_counter() - started,
    )


# -- what must match ---------------------------------------------------------------------------

# (where, field, flag): a difference refuses the comparison
#: settings added after runs were recorded: a run without one had the default
_WORKLOAD_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(WorkloadSpec)
    if f.name in ("multi_turn", "turns", "think_time")
}
_MUST_MATCH = (
    ("workload", "dataset", "--dataset"),
    ("workload", "dataset_path", "--dataset-path"),
    ("workload", "prompt", "--prompt"),
    ("workload", "mix", "--mix"),
    ("workload", "input_len", "--input-len"),
    ("workload", "output_len", "--output-len"),
    ("workload", "range_ratio", "--range-ratio"),
    ("workload", "prefix_len", "--prefix-len"),
    ("workload", "prompt_template", "--prompt-template"),
    ("workload", "shuffle", "--shuffle"),
    ("workload", "n", "--n"),
    ("client", "stream", "--stream"),
    ("client", "max_tokens", "--max-tokens"),
    ("client", "min_tokens", "--min-tokens"),
    ("client", "temperature", "--temperature"),
    ("client", "top_p", "--top-p"),
    ("client", "top_k", "--top-k"),
    ("client", "extra_body", "--extra-body"),
    ("load", "parallel", "--parallel"),
    ("load", "rate", "--rate"),
    ("load", "burstiness", "--burstiness"),
    ("load", "arrival", "--arrival"),
    ("load", "max_concurrency", "--max-concurrency"),
    ("load", "ramp_from", "--ramp-from"),
    ("load", "ramp_to", "--ramp-to"),
    ("load", "trace", "--trace"),
    ("load", "trace_speed", "--trace-speed"),
    ("load", "trace_block_size", "--trace-block-size"),
    ("workload", "multi_turn", "--multi-turn"),
    ("workload", "turns", "--turns"),
    ("workload", "think_time", "--think-time"),
)
# shown when they differ; comparing models, servers and sample sizes is the point
_MAY_DIFFER = (
    ("run", "model", "model"),
    ("run", "endpoint", "endpoint"),
    ("client", "api", "--api"),
    ("server", "sim_args", "--sim-args"),
    ("workload", "tokenizer", "--tokenizer"),
    ("workload", "seed", "workload --seed"),
    ("load", "number", "--number"),
    ("load", "duration", "--duration"),
    ("load", "warmup", "--warmup"),
    ("load", "seed", "--seed"),
)


def workload_differences(base: Run, new: Run) -> tuple[list[str], list[str]]:
    """(differences that make the runs incomparable, differences that are only shown)."""

    def get(run: Run, where: str, name: str) -> Any:
        if where == "run":
            return getattr(run, name)
        if where == "load":
            return getattr(run.load, name)
        section: dict[str, Any] = getattr(run, where)
        if where == "workload":  # a run older than a setting had its default
            return section.get(name, _WORKLOAD_DEFAULTS.get(name))
        return section.get(name)

    def mode(run: Run) -> str:
        return "open" if run.open_loop else "closed"

    refused: list[str] = []
    shown: list[str] = []
    if mode(base) != mode(new):
        refused.append(f"load {mode(base)} loop ≠ {mode(new)} loop")
    unknown = 0
    for group, out in ((_MUST_MATCH, refused), (_MAY_DIFFER, shown)):
        for where, name, flag in group:
            a, b = get(base, where, name), get(new, where, name)
            if a == b:
                continue
            if where != "run" and ((a is None and base.source) or (b is None and new.source)):
                unknown += 1  # an imported run's settings are its tool's, kept in runs.source
            else:
                out.append(_differ(flag, a, b))
    for run in (base, new):
        if run.source and unknown:
            shown.append(
                f"run {run.id} was imported from {run.source.get('tool')}: its workload and "
                "settings are that tool's own (runs.source), not compared flag by flag"
            )
    return refused, shown


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _differ(flag: str, a: Any, b: Any) -> str:
    """``flag a ≠ b``; of two argument lists, only the stretch where they differ."""
    if isinstance(a, list) and isinstance(b, list):
        head = 0
        while head < min(len(a), len(b)) and a[head] == b[head]:
            head += 1
        tail = 0
        while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
            tail += 1
        a = ["…"] * (head > 0) + a[head : len(a) - tail] + ["…"] * (tail > 0)
        b = ["…"] * (head > 0) + b[head : len(b) - tail] + ["…"] * (tail > 0)
    return f"{flag} {_show(a)} ≠ {_show(b)}"


# -- one run's data ----------------------------------------------------------------------------


@dataclass
class _Clusters:
    """Resampling units: ``n`` time slices, and the values (ITL gaps, or TTFT/TPOT/E2E of
    requests) sorted, with each value's slice in ``owner``."""

    n: int
    values: np.ndarray
    owner: np.ndarray


@dataclass
class _RunData:
    run: Run
    summary: Summary
    side: RunSide
    sorted: dict[str, np.ndarray]  # TTFT, TPOT, E2E of every successful request, sorted
    clusters: dict[str, _Clusters]  # the same, grouped by the time slice of their send
    gaps: _Clusters
    bins: dict[str, np.ndarray]  # throughput per time bin (per second)
    capped: str | None

    @classmethod
    def read(cls, store: Store, run: Run, spec: CompareSpec) -> _RunData:
        summary = summarize(store, run)
        names = ("status", "sent_ns", "end_ns", "ttft_ms", "tpot_ms", "e2e_ms")
        cols = store.columns(run.id, (*names, "completion_tokens"), where="AND warmup = 0")
        ok = cols["status"] == "ok"
        values = {}
        clusters = {}
        for name in ("ttft", "tpot", "e2e"):
            v = cols[f"{name}_ms"][ok]
            finite = np.isfinite(v)
            values[name] = np.sort(v[finite])
            clusters[name] = _slice_clusters(v[finite], cols["sent_ns"][ok][finite], spec)
        rng = np.random.default_rng([spec.seed, run.id, 1])
        gaps, capped = _read_gaps(store, run, spec, rng)
        side = RunSide(
            id=run.id,
            name=run.name,
            model=run.model,
            endpoint=run.endpoint,
            status=run.status,
            measured=summary.measured,
            ok=summary.ok,
        )
        return cls(run, summary, side, values, clusters, gaps, _bins(cols, ok), capped)

    def point(self, key: str) -> tuple[float, int]:
        """The report's figure for ``key``, and its sample count."""
        s = self.summary
        if key == "output_tok_per_s":
            return s.output_tok_per_s, s.ok
        if key == "req_per_s":
            return s.req_per_s, s.ok
        prefix, stat = key.rsplit("_", 1)
        dist = s.distributions[f"{prefix}_ms"]
        value = dist.mean if stat == "mean" else dist.values.get(stat, math.nan)
        return value, dist.n

    def spread(
        self, rng: np.random.Generator, resamples: int, keys: Sequence[str]
    ) -> dict[str, float]:
        """The bootstrap standard deviation of the log of each figure (NaN when undefined)."""
        out: dict[str, float] = {}
        for name, vs in self.sorted.items():
            if not any(k.startswith(name + "_") for k in keys):
                continue
            if self.clusters[name].n >= _MIN_SLICES:
                for key, reps in _cluster_bootstrap(
                    self.clusters[name], rng, resamples, prefix=name
                ).items():
                    out[key] = _log_sd(reps)
                continue
            if vs.size:  # too short a run to cut into slices: requests as independent draws
                mean = float(vs.mean())
                out[f"{name}_mean"] = (
                    float(vs.std()) / math.sqrt(vs.size) / mean if mean > 0 else math.nan
                )
            for stat in _STATS[1:]:
                out[f"{name}_{stat}"] = _log_sd(
                    _order_bootstrap(vs, float(stat[1:]), rng, resamples)
                )
        if any(k.startswith("itl_") for k in keys) and self.gaps.n:
            for key, reps in _cluster_bootstrap(self.gaps, rng, resamples).items():
                out[key] = _log_sd(reps)
        if set(keys) & set(GROUPS["throughput"]):
            for key, reps in _block_bootstrap(self.bins, rng, resamples).items():
                out[key] = _log_sd(reps)
        return out


@dataclass
class _Group:
    """One side of a comparison: one run, or the replicates of one load (``--repeat``)."""

    runs: tuple[_RunData, ...]
    side: RunSide

    @classmethod
    def read(cls, store: Store, runs: Sequence[Run], spec: CompareSpec) -> _Group:
        data = tuple(_RunData.read(store, run, spec) for run in runs)
        first = data[0].side
        side = RunSide(
            id=first.id,
            name=first.name,
            model=first.model,
            endpoint=first.endpoint,
            status=next((d.side.status for d in data if d.side.status != "completed"), "completed"),
            measured=sum(d.side.measured for d in data),
            ok=sum(d.side.ok for d in data),
            replicates=tuple(d.side.id for d in data) if len(data) > 1 else (),
        )
        return cls(data, side)

    @property
    def size(self) -> int:
        return len(self.runs)

    @property
    def ok(self) -> int:
        return self.side.ok

    def point(self, key: str) -> tuple[float, int]:
        """The figure (of replicates: the geometric mean of theirs, since changes are compared
        on the log scale) and the samples behind it."""
        points = [run.point(key) for run in self.runs]
        n = sum(count for _, count in points)
        if len(points) == 1:
            return points[0]
        values = np.array([v for v, _ in points])
        if not np.all(np.isfinite(values)):
            return math.nan, n
        if np.any(values <= 0):
            return float(values.mean()), n  # a zero figure: no ratio, so no interval either
        return float(np.exp(np.log(values).mean())), n

    def log_variance(self, key: str, spreads: Sequence[Mapping[str, float]]) -> tuple[float, float]:
        """The variance of the log of one run's figure, and its estimate from the replicates
        alone. Of replicates: their variance, floored by the mean within-run bootstrap variance
        (three replicates can fall below it by chance). Of a single run: its bootstrap variance,
        twice. NaN when there is no estimate."""
        within = np.array([s.get(key, math.nan) for s in spreads]) ** 2
        if self.size == 1:
            return float(within[0]), float(within[0])
        values = np.array([run.point(key)[0] for run in self.runs])
        if not (np.all(np.isfinite(values)) and np.all(values > 0)):
            return math.nan, math.nan
        between = float(np.var(np.log(values), ddof=1))
        floor = float(np.nanmean(within)) if np.isfinite(within).any() else 0.0
        return max(between, floor), between


def _replicate_interval(
    sides: tuple[_Group, _Group],
    key: str,
    spreads: Sequence[Sequence[Mapping[str, float]]],
    level: float,
) -> tuple[float, float]:
    """(standard error of the log ratio, the critical value at ``level``) for one figure.

    One run per side: the two bootstrap standard deviations and a normal quantile. With
    replicates: each side's variance of one run's log figure (floored, see
    :meth:`_Group.log_variance`) over its number of runs; a side of one run takes the other
    side's per-run variance when that is larger (the run-to-run variation it cannot measure
    itself). The critical value is Student's t with the Welch–Satterthwaite degrees of freedom
    of the replicates' own variances, so the interval is never narrower than Welch's t interval
    on the logs of the replicates' figures (three replicates estimate a variance with two
    degrees of freedom: the t quantile, not the floor, pays for that).
    """
    estimates = [side.log_variance(key, sp) for side, sp in zip(sides, spreads, strict=True)]
    used, raw = [e[0] for e in estimates], [e[1] for e in estimates]
    if all(side.size == 1 for side in sides):
        return math.sqrt(used[0] + used[1]), NormalDist().inv_cdf(1 - (1 - level) / 2)
    dfs = [float(side.size - 1) for side in sides]
    for i, j in ((0, 1), (1, 0)):
        if sides[i].size == 1:
            used[i] = max(used[i], used[j]) if math.isfinite(used[i]) else used[j]
            raw[i], dfs[i] = raw[j], dfs[j]
    var = [v / side.size for v, side in zip(used, sides, strict=True)]
    total = var[0] + var[1]
    if not math.isfinite(total):
        return math.nan, math.nan
    if total == 0:
        return 0.0, math.inf
    own = [v / side.size for v, side in zip(raw, sides, strict=True)]
    if sum(own) > 0:
        df = sum(own) ** 2 / sum(v * v / d for v, d in zip(own, dfs, strict=True) if v > 0)
    else:  # identical replicates: the floor alone, with the replicates' degrees of freedom
        df = sum(dfs) if sides[0].size > 1 and sides[1].size > 1 else max(dfs)
    from scipy.stats import t as student

    return math.sqrt(total), float(student.ppf(1 - (1 - level) / 2, df))


def _log_sd(replicates: np.ndarray) -> float:
    if replicates.size < 2 or not np.all(replicates > 0):  # also NaN
        return math.nan
    return float(np.std(np.log(replicates), ddof=1))


#: Fewest time slices a cluster bootstrap needs; a run cut into fewer falls back to requests.
_MIN_SLICES = 10


def _slice_clusters(values: np.ndarray, sent: np.ndarray, spec: CompareSpec) -> _Clusters:
    """Per-request values grouped by the time slice of their send (as ITL's gaps are), at most
    ``itl_max_gaps`` of them (every s-th request in time order beyond that)."""
    if values.size == 0:
        return _Clusters(0, np.empty(0), np.empty(0, dtype=np.int64))
    slices, owner = _slices(sent)
    stride = max(1, math.ceil(values.size / spec.itl_max_gaps))
    by_time = np.argsort(sent, kind="stable")[::stride]
    values, owner = values[by_time], owner[by_time]
    order = np.argsort(values, kind="stable")
    return _Clusters(slices, values[order], owner[order])


def _read_gaps(
    store: Store, run: Run, spec: CompareSpec, rng: np.random.Generator
) -> tuple[_Clusters, str | None]:
    """The ITL sample, its gaps grouped into clusters by the time slice their request was sent in.

    At most ``itl_max_requests`` whole requests, drawn at random, and when their gaps number
    more than ``itl_max_gaps``, every s-th gap of each (one stride s for all). A cluster is a
    time slice (as many as the run lasted seconds, 20 to 3,600), not a request: one stall of the
    server or of the client delays a gap of every stream in flight at once, so requests that
    overlap are not independent, and resampling them one by one gives too narrow an interval.
    """
    idx, per, sent = store.streamed_requests(run.id)
    if not idx.size:
        return _Clusters(0, np.empty(0), np.empty(0, dtype=np.int64)), None
    slices, slice_of = _slices(sent)
    total = int(per.sum())
    notes = []
    if idx.size > spec.itl_max_requests:
        keep = np.sort(rng.choice(idx.size, spec.itl_max_requests, replace=False))
        notes.append(f"{spec.itl_max_requests:,} of {idx.size:,} requests")
        idx, per, slice_of = idx[keep], per[keep], slice_of[keep]
    stride = max(1, math.ceil(int(per.sum()) / spec.itl_max_gaps))
    if stride > 1:
        notes.append(f"every {stride}th gap")
    parts = [gaps[::stride] for gaps in store.gaps_of(run.id, idx.tolist())]
    gaps = np.concatenate(parts).astype(np.float64) / 1e6
    owner = np.repeat(slice_of, [p.size for p in parts])
    order = np.argsort(gaps, kind="stable")
    note = None
    if notes:
        note = f"ITL from {' and '.join(notes)} ({gaps.size:,} of {total:,} gaps)"
    return _Clusters(slices, gaps[order], owner[order]), note


def _bins(cols: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, np.ndarray]:
    """Tokens and completions per second in each time bin of the run's window (module doc)."""
    sent, end = cols["sent_ns"], cols["end_ns"]
    finished = np.isfinite(sent) & np.isfinite(end)
    if not finished.any():
        return {}
    t0, t1 = float(np.min(sent[finished])), float(np.max(end[finished]))
    window = (t1 - t0) / 1e9
    if not window > 0:
        return {}
    done = ok & np.isfinite(end)
    k, where = time_slices(end[done], t0, t1)
    tokens = np.bincount(where, weights=np.nan_to_num(cols["completion_tokens"][done]), minlength=k)
    reqs = np.bincount(where, minlength=k).astype(np.float64)
    width = window / k
    return {"output_tok_per_s": tokens / width, "req_per_s": reqs / width}


def _slices(sent: np.ndarray) -> tuple[int, np.ndarray]:
    """:func:`time_slices` of the sends; each request a unit of its own when the sends are not
    known (a run imported from a file without them)."""
    if np.isfinite(sent).all():
        return time_slices(sent, float(sent.min()), float(sent.max()))
    return sent.size, np.arange(sent.size, dtype=np.int64)


def time_slices(t: np.ndarray, lo: float, hi: float) -> tuple[int, np.ndarray]:
    """Cut the window [lo, hi] (ns) into one slice per second, 20 to 3,600 of them, and give the
    slice each stamp of ``t`` falls in: the resampling unit of the cluster and block bootstraps
    (requests in flight together share a slice, as they share the server's stalls)."""
    span = hi - lo
    k = int(min(max(round(span / 1e9), 20), 3600))
    return k, np.clip(((t - lo) / max(span, 1.0) * k).astype(np.int64), 0, k - 1)


# -- bootstrap --------------------------------------------------------------------------------


def _order_bootstrap(
    vs: np.ndarray, p: float, rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """Bootstrap replicates of percentile ``p`` of the sorted sample ``vs``, in O(resamples).

    Resampling n values with replacement is drawing positions floor(n·U) with U uniform, and
    floor is monotone, so the (k+1)-th smallest position of a resample is floor(n·U₍ₖ₊₁₎), where
    U₍ₖ₊₁₎ ~ Beta(k+1, n−k) is the order statistic of n uniforms; the next one up is the least
    of the n−k−1 uniforms above it, U₍ₖ₊₂₎ = U₍ₖ₊₁₎ + (1 − U₍ₖ₊₁₎)·Beta(1, n−k−1). numpy's
    linear percentile interpolates between those two positions at the fixed rank p/100·(n−1).
    The replicates have exactly the distribution that resampling the requests gives, without
    drawing n values per resample: no cap on n is needed.
    """
    n = vs.size
    if n == 0:
        return np.full(resamples, math.nan)
    h = p / 100 * (n - 1)
    k = math.floor(h)
    frac = h - k
    u = rng.beta(k + 1, n - k, size=resamples)
    lo = vs[np.minimum((n * u).astype(np.int64), n - 1)]
    if frac == 0 or k + 1 > n - 1:
        return lo
    u2 = u + (1 - u) * rng.beta(1, n - k - 1, size=resamples)
    hi = vs[np.minimum((n * u2).astype(np.int64), n - 1)]
    return np.asarray(lo + frac * (hi - lo))


def _cluster_bootstrap(
    pop: _Clusters, rng: np.random.Generator, resamples: int, prefix: str = "itl"
) -> dict[str, np.ndarray]:
    """Replicates of the mean, p50, p90 and p99 of ``pop`` (keys ``{prefix}_{stat}``),
    resampling whole clusters (time slices) with their values.

    A resample is a vector of counts (how often each request was drawn): the mean is a ratio of
    the requests' gap sums, and each percentile numpy's linear interpolation over the expanded
    sample, found by searching the cumulative counts of the sorted gaps.
    """
    n, vs, owner = pop.n, pop.values, pop.owner
    m = vs.size
    rows = max(1, _CELLS // max(n, m))
    pcts = np.array([float(s[1:]) for s in _STATS[1:]])
    out = {f"{prefix}_{s}": np.full(resamples, math.nan) for s in _STATS}
    gap_sum = np.bincount(owner, weights=vs, minlength=n)
    gap_count = np.bincount(owner, minlength=n).astype(np.float64)
    for start in range(0, resamples, rows):
        r = min(rows, resamples - start)
        draws = rng.integers(0, n, size=(r, n))
        weights = np.empty((r, n))
        for i in range(r):  # row by row: the counts stay in cache, ten times faster than at once
            weights[i] = np.bincount(draws[i], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{prefix}_mean"][start : start + r] = (weights @ gap_sum) / (weights @ gap_count)
        # One 1-D float cumsum over all rows (numpy's fast path, exact for integer counts): row
        # i's cumulative counts are flat[i·m : (i+1)·m] − base[i], so a search for base[i] + rank
        # in the whole array lands inside row i.
        flat = np.cumsum(np.take(weights, owner, axis=1).ravel())
        ends = flat[m - 1 :: m]
        base = np.concatenate([[0.0], ends[:-1]])
        total = ends - base
        h = pcts[None, :] / 100 * (total[:, None] - 1)
        lo = np.floor(h)
        hi = np.minimum(lo + 1, total[:, None] - 1)
        targets = np.concatenate([lo, hi], axis=1) + base[:, None]
        j = np.searchsorted(flat, targets, side="right") - (np.arange(r) * m)[:, None]
        np.clip(j, 0, m - 1, out=j)
        k = pcts.size
        value = vs[j[:, :k]] + (h - lo) * (vs[j[:, k:]] - vs[j[:, :k]])
        value[total == 0] = math.nan
        for col, stat in enumerate(_STATS[1:]):
            out[f"{prefix}_{stat}"][start : start + r] = value[:, col]
    return out


def _block_bootstrap(
    bins: dict[str, np.ndarray], rng: np.random.Generator, resamples: int
) -> dict[str, np.ndarray]:
    """Moving-block bootstrap of the mean per-bin rate (Künsch 1989; blocks of K^(1/3) bins)."""
    if not bins:
        return {}
    k = next(iter(bins.values())).size
    length = math.ceil(k ** (1 / 3))
    blocks = math.ceil(k / length)
    starts = rng.integers(0, k - length + 1, size=(resamples, blocks))
    out = {}
    for key, series in bins.items():
        cs = np.concatenate([[0.0], np.cumsum(series)])
        sums = (cs[starts + length] - cs[starts]).sum(axis=1)
        out[key] = sums / (blocks * length)
    return out


def _verdict(
    fig: Figure, change: float, ci: tuple[float, float] | None, spec: CompareSpec, significant: bool
) -> tuple[Verdict, float | None, bool, str | None]:
    """(verdict, threshold, gate failed?, note) of one figure; the module docstring defines them."""
    threshold = spec.threshold(fig.key)
    if ci is None or not math.isfinite(change):
        return "n/a", threshold, False, None
    if not significant:
        return "unchanged", threshold, False, None
    floor = 0.0 if fig.scale == "absolute" else spec.min_change
    if threshold is not None:
        floor = min(floor, threshold)
    if abs(change) < floor:
        return "unchanged", threshold, False, f"significant, but within the {floor:.0%} floor"
    worse_by = -change if fig.higher_is_better else change
    failed = worse_by > 0 and threshold is not None and worse_by > threshold
    return ("worse" if worse_by > 0 else "better"), threshold, failed, None


def _relative(
    fig: Figure,
    sides: tuple[_Group, _Group],
    spreads: Sequence[Sequence[Mapping[str, float]]],
    level: float,
    spec: CompareSpec,
) -> FigureChange:
    (base, n_base), (new, n_new) = sides[0].point(fig.key), sides[1].point(fig.key)
    if sides[0].size > 1 or sides[1].size > 1:
        method = f"Welch t over replicates ({sides[0].size} and {sides[1].size} runs)"
    elif fig.key in GROUPS["throughput"]:
        method = "moving-block bootstrap over time bins"
    elif fig.key.startswith("itl_") or all(
        run.clusters[fig.key.split("_")[0]].n >= _MIN_SLICES for side in sides for run in side.runs
    ):
        method = "cluster bootstrap over time slices"
    elif fig.key.endswith("_mean"):
        method = "bootstrap over requests (closed-form variance)"
    else:
        method = "bootstrap over requests (order statistics)"
    ok = math.isfinite(base) and math.isfinite(new) and base > 0 and new > 0
    change = new / base - 1 if ok else math.nan
    sd, z = _replicate_interval(sides, fig.key, spreads, level)
    ci = None
    note = None
    if not (n_base and n_new):
        note = "no samples"
    elif not ok:
        note = "a zero figure has no relative change"
    elif not math.isfinite(sd):
        note = "no interval: a resample had no samples or a zero figure"
    else:
        centre = math.log(new / base)
        ci = (math.expm1(centre - z * sd), math.expm1(centre + z * sd))
    significant = ci is not None and (ci[0] > 0 or ci[1] < 0)
    verdict, threshold, failed, why = _verdict(fig, change, ci, spec, significant)
    if base > 0 and n_base and not sides[1].ok:
        # nothing succeeded in the new run: every figure is as bad as it gets, and a gate on
        # any of them fails (a figure that cannot be computed must never read as a pass)
        verdict, failed = "worse", threshold is not None
        note = why = "no request of the new run succeeded"
        if fig.key in GROUPS["throughput"]:
            change = -1.0
    return FigureChange(
        fig,
        base,
        new,
        change,
        ci,
        verdict,
        threshold,
        failed,
        n_base,
        n_new,
        method,
        note=note or why,
    )


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval for the share k / n at normal quantile ``z`` ((0, 1) for n 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _error_rate(
    fig: Figure, sides: tuple[_Group, _Group], z: float, spec: CompareSpec
) -> FigureChange:
    """Newcombe's hybrid score interval (method 10) for p_new − p_base, in fractions; the
    requests of replicates pooled."""
    (kb, nb), (kn, nn) = (
        (sum(r.summary.failed for r in s.runs), sum(r.summary.measured for r in s.runs))
        for s in sides
    )
    method = "Newcombe hybrid score interval"
    if not (nb and nn):
        threshold = spec.threshold(fig.key)
        nan = math.nan
        return FigureChange(
            fig, nan, nan, nan, None, "n/a", threshold, False, nb, nn, method, note="no requests"
        )
    pb, pn = kb / nb, kn / nn
    lb, ub = wilson(kb, nb, z)
    ln, un = wilson(kn, nn, z)
    d = pn - pb
    ci = (d - math.hypot(pn - ln, ub - pb), d + math.hypot(un - pn, pb - lb))
    significant = ci[0] > 0 or ci[1] < 0
    verdict, threshold, failed, why = _verdict(fig, d, ci, spec, significant)
    return FigureChange(fig, pb, pn, d, ci, verdict, threshold, failed, nb, nn, method, note=why)


@dataclass
class _Accuracy:
    correct_base: np.ndarray  # per paired question: 0/1, or the share right over replicates
    correct_new: np.ndarray
    unpaired: int
    replicated: bool = False

    def change(self, fig: Figure, z: float, level: float, spec: CompareSpec) -> FigureChange:
        from perfbench.compare.answers import mcnemar

        a, b = self.correct_base, self.correct_new
        n = int(a.size)
        threshold = spec.threshold(fig.key)
        if n == 0:
            nan = math.nan
            note = "no question answered by both runs"
            return FigureChange(
                fig, nan, nan, nan, None, "n/a", threshold, False, 0, 0, "McNemar", note=note
            )
        d = b - a
        mean = float(d.mean())
        se = float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
        ci = (mean - z * se, mean + z * se)
        p_value = None
        if self.replicated:  # shares, not 0/1: the paired interval decides
            method = "paired normal interval over questions (replicates averaged)"
            significant = ci[0] > 0 or ci[1] < 0
        else:
            test = mcnemar(int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum()))
            method, p_value = f"McNemar ({test.method}); paired normal interval", test.p_value
            significant = test.p_value < 1 - level
        verdict, threshold, failed, why = _verdict(fig, mean, ci, spec, significant)
        return FigureChange(
            fig,
            float(a.mean()),
            float(b.mean()),
            mean,
            ci,
            verdict,
            threshold,
            failed,
            n,
            n,
            method,
            p_value=p_value,
            note=why or (f"{self.unpaired} unpaired answers left out" if self.unpaired else None),
        )


def _accuracy(store: Store, bases: Sequence[Run], news: Sequence[Run]) -> _Accuracy | None:
    """The paired grades of two graded sides, or None when a run was not graded. With
    replicates, each (question, sample) counts once, as the share of its replicates that got it
    right: the questions are the independent units, not the replicates' answers."""
    if any(store.grade_totals(run.id)[0] == 0 for run in (*bases, *news)):
        return None
    from perfbench.compare.answers import answer_rows, pair_answers

    if len(bases) == 1 and len(news) == 1:
        cmp = pair_answers(answer_rows(store, bases[0]), answer_rows(store, news[0]))
        a = np.array([p.correct_a for p in cmp.pairs], dtype=np.float64)
        b = np.array([p.correct_b for p in cmp.pairs], dtype=np.float64)
        return _Accuracy(a, b, cmp.unpaired_a + cmp.unpaired_b)

    def shares(runs: Sequence[Run]) -> dict[tuple[str, int], float]:
        right: dict[tuple[str, int], list[bool]] = {}
        for run in runs:
            for row in answer_rows(store, run):
                right.setdefault((row.prompt_id, row.sample), []).append(row.correct)
        return {key: sum(v) / len(v) for key, v in right.items()}

    base, new = shares(bases), shares(news)
    keys = [k for k in base if k in new]
    a = np.array([base[k] for k in keys], dtype=np.float64)
    b = np.array([new[k] for k in keys], dtype=np.float64)
    return _Accuracy(a, b, len(base) + len(new) - 2 * len(keys), replicated=True)


# -- warnings ----------------------------------------------------------------------------------


def _warnings(
    sides: tuple[_Group, _Group],
    spec: CompareSpec,
    figures: Sequence[FigureChange],
    ungraded: bool,
    forced: Sequence[str],
) -> list[str]:
    out: list[str] = []
    if forced:
        out.append(
            "compared with --force although the workloads differ ("
            + "; ".join(forced)
            + "): a change may come from the workload, not the server"
        )
    if all(side.size == 1 for side in sides):
        out.append(
            "one run per side: the intervals cover the noise within each run, not the "
            "variation from run to run (the machine's state, the server's warm-up); repeat "
            "each side (`perfbench perf --repeat 3`) for intervals that do"
        )
    elif any(side.size == 1 for side in sides):
        one = "base" if sides[0].size == 1 else "new"
        out.append(
            f"the {one} side is one run: its run-to-run variation is taken to be the other "
            "side's; repeat it too (`--repeat`) to measure its own"
        )
    shown = [s for s in _STATS if s != "mean" and any(f.key.endswith(s) for f in figures)]
    for which, side in ((w, run) for w, g in zip(("base", "new"), sides) for run in g.runs):
        s, who = side.summary, f"{which} run {side.run.id}"
        if s.status != "completed":
            out.append(f"{who} is {s.status}: its figures cover only what was recorded")
        source = side.run.source
        if source and not s.measured:
            out.append(
                f"{who} was imported from {source.get('tool')}'s summary alone: its figures "
                "have no requests behind them, so no interval and no verdict"
            )
        elif source and not source.get("timed"):
            out.append(
                f"{who} was imported from a {source.get('tool')} file without send times: its "
                "intervals resample requests, not time slices, and may be too narrow"
            )
        if s.failed:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))
            out.append(
                f"{who}: {s.failed} of {s.measured} requests failed ({detail}); latency figures "
                "cover the successful ones only, which a change in errors can flatter"
            )
        thin = [p for p in shown if 0 < s.ok < min_samples(float(p[1:]))]
        if thin:
            worst = max(thin, key=lambda p: float(p[1:]))
            out.append(
                f"{who} has {s.ok} successful requests, fewer than the "
                f"{min_samples(float(worst[1:]))} that {worst} needs: its {worst} is about its "
                "maximum, and the interval is wide. Send more requests (--number)"
            )
        lag = side.run.health.get("loop_lag_ms", {})
        if lag and (lag.get("p99", 0) > 5 or lag.get("max", 0) > 50):
            out.append(
                f"{who}: the client's event loop lagged (p99 {lag.get('p99', 0):.1f} ms): its "
                "timings include the client's own delay"
            )
        if side.capped:
            out.append(
                f"{who}: {side.capped}, drawn at random for the interval (wider than with all "
                "of them; the figure itself uses all)"
            )
    if ungraded:
        out.append("accuracy is not compared: grade both runs first (`perfbench grade RUN`)")
    for f in figures:
        if f.threshold is not None and f.verdict == "n/a":
            out.append(f"gated figure {f.figure.label} could not be compared ({f.note or 'n/a'})")
    return out


# -- output ------------------------------------------------------------------------------------


def _pct_level(level: float) -> str:
    text = f"{level * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _label(fig: Figure) -> str:
    return f"{fig.label} ({fig.unit})"


def _value(fig: Figure, value: float) -> str:
    if not math.isfinite(value):
        return "—"
    if fig.scale == "absolute":
        return f"{value * 100:.2f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _signed(x: float, fig: Figure) -> str:
    if not math.isfinite(x):
        return "—"
    return f"{x * 100:+.2f} pp" if fig.scale == "absolute" else f"{x * 100:+.1f}%"


def _change(f: FigureChange) -> str:
    return _signed(f.change, f.figure)


def _ci(f: FigureChange) -> str:
    if f.ci is None:
        return "—"
    return f"{_signed(f.ci[0], f.figure)} … {_signed(f.ci[1], f.figure)}"


def _amount(f: FigureChange, x: float | None) -> str:
    if x is None:
        return ""
    return f"{x * 100:g} pp" if f.figure.scale == "absolute" else f"{x * 100:g}%"


def _gate(f: FigureChange) -> str:
    if f.threshold is None:
        return ""
    return (
        f"fail (> {_amount(f, f.threshold)})"
        if f.gate_failed
        else f"pass (≤ {_amount(f, f.threshold)})"
    )


def _listed(figures: Sequence[FigureChange], show: Any, most: int = 4) -> str:
    text = ", ".join(show(f) for f in figures[:most])
    return text + (f" and {len(figures) - most} more" if len(figures) > most else "")


def _brief(f: FigureChange) -> str:
    return f"{f.figure.label} {_change(f)}"


def _who(s: RunSide) -> str:
    return f"{s.label}, {s.model or '?'} at {s.endpoint or '?'}, {s.ok}/{s.measured} ok"


def render(result: Comparison, *, quiet: bool = False) -> RenderableType:
    """The rich table, the summary sentence, differences, and the warnings block."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from perfbench.report.tables import warnings_panel

    gated = any(f.threshold is not None for f in result.figures)
    t = Table(
        title=f"{result.new.label} vs {result.base.label}",
        caption=f"Base: {_who(result.base)}\nNew: {_who(result.new)}",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
        caption_justify="left",
    )
    t.add_column("Figure", style="bold", no_wrap=True)
    for name in ("Base", "New", "Change", f"{_pct_level(result.level)} CI"):
        t.add_column(name, justify="right", no_wrap=True)
    t.add_column("Verdict", no_wrap=True)
    if gated:
        t.add_column("Gate", no_wrap=True)
    styles = {"worse": "bold red", "better": "green", "unchanged": "", "n/a": "dim"}
    for f in result.figures:
        cells: list[str | Text] = [
            _label(f.figure),
            _value(f.figure, f.base),
            _value(f.figure, f.new),
            _change(f),
            _ci(f),
            Text(f.label, style=styles[f.verdict]),
        ]
        if gated:
            cells.append(Text(_gate(f), style="bold red" if f.gate_failed else ""))
        t.add_row(*cells)
    parts: list[RenderableType] = [t, Text(result.summary())]
    if result.differences:
        parts.append(Text("Differences: " + "; ".join(result.differences), style="dim"))
    if result.warnings and not quiet:
        parts.append(warnings_panel(result.warnings))
    return Group(*parts)
