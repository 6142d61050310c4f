"""Determinism under load: the same greedy prompts at several concurrency levels, each level's
outputs held against those of the concurrency-1 reference. The library face of
``perfbench perf --determinism`` (which sends the levels, :func:`level_loads`) and of
``perfbench report --determinism`` (which reads them back, :func:`determinism`).

At temperature 0 an engine decodes greedily, so that its output should be a function of the
prompt. Under load it often is not: the batch a sequence shares changes the order of its
kernels' float reductions, a near-tie between the top two logits flips, and the text goes on
differently from there. docs/determinism.md gives the definitions; in short, for each level:

* requests pair with the reference's by ``(prompt_id, k)``, ``k`` counting the prompt's
  earlier requests in the run (``--n`` sends a prompt k times), as compare-answers pairs them;
* **compared**: pairs whose two requests both succeeded; a request that failed at this level
  (``failed``), whose reference request failed (``no_reference``), that this level did not send
  (``not_sent``) or that has no reference to pair with (``extra``) is counted apart, never in
  the share;
* **differ**: compared pairs whose generated text (reasoning, then answer) is not identical;
  **share** = differ / compared, with Wilson's 95% interval (E. B. Wilson 1927, "Probable
  inference, the law of succession, and statistical inference", JASA 22), which stays honest
  at 0 of n where the normal interval collapses to a point;
* **first difference**: the number of leading tokens the two texts share, both tokenized with
  the run's tokenizer (``--tokenizer``); without one, the shared leading characters divided by 4
  (the ``estimate`` tokenizer's token), a position in estimated tokens;
* **prompt length**: buckets at the quartiles of the reference's prompt lengths in tokens (the
  server's usage, else the local count), so that each holds about a quarter of the prompts;
  equal edges merge, and under 8 prompts there is one bucket.

The reference is the first concurrency-1 run among those given; a later concurrency-1 run is
the reference *again*: its share is the engine's own run-to-run variance with no batch at all,
which tells whether the other levels' differences come with load or are there anyway.

>>> d = determinism("outputs/perfbench.db", ["4", "5", "6", "7"])  # doctest: +SKIP
>>> [(lv.label, lv.overall.differ, lv.overall.compared) for lv in d.levels]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from perfbench.compare.runs import wilson
from perfbench.config import DeterminismSpec, LoadSpec
from perfbench.errors import UsageError
from perfbench.metrics.percentiles import exact
from perfbench.store import Run, Store
from perfbench.store.runs import OutputText
from perfbench.tokens import CHARS_PER_TOKEN

if TYPE_CHECKING:
    from rich.console import RenderableType

    from perfbench.workload.tokenizers import Tokenizer

REFERENCE = 1
"""The concurrency whose outputs every level is held against: a sequence decoded alone."""
MIN_FOR_QUARTILES = 8
Role = Literal["reference", "level", "again"]


def level_loads(
    loads: Sequence[LoadSpec], spec: DeterminismSpec, prompts: int
) -> tuple[tuple[LoadSpec, ...], list[str]]:
    """The runs ``perf --determinism`` makes of ``loads`` (checked by ``PerfSpec``): concurrency
    1 first (added when not listed), each other level once in the order given, every one sending
    the same ``number`` requests (default: each of the ``prompts`` once), then the reference
    again with ``spec.rerun`` of them (default all; 0: no second pass). Returns the loads and the
    notes that say what was added."""
    base = loads[0]
    number = base.number if base.number is not None else prompts
    levels = list(dict.fromkeys(x.parallel or REFERENCE for x in loads))
    notes = []
    if REFERENCE not in levels:
        notes.append(
            f"concurrency {REFERENCE} was added as the reference (--parallel did not list it)"
        )
    order = [REFERENCE, *(p for p in levels if p != REFERENCE)]
    out = [dataclasses.replace(base, parallel=p, number=number) for p in order]
    again = number if spec.rerun is None else min(spec.rerun, number)
    if again:
        out.append(dataclasses.replace(base, parallel=REFERENCE, number=again))
    return tuple(out), notes


@dataclass(frozen=True, slots=True)
class Tally:
    """Compared pairs, those that differ, and where each difference starts (tokens)."""

    compared: int = 0
    differ: int = 0
    positions: tuple[int, ...] = ()

    @property
    def share(self) -> float | None:
        return self.differ / self.compared if self.compared else None

    def interval(self) -> tuple[float, float] | None:
        """Wilson's 95% score interval for the share (see the module docstring)."""
        return wilson(self.differ, self.compared, 1.959964) if self.compared else None

    def quantiles(self) -> dict[str, float] | None:
        """min, p10, p25, median, p75, p90 and max of the first-difference positions."""
        if not self.positions:
            return None
        qs = (0, 10, 25, 50, 75, 90, 100)
        values = exact(np.array(self.positions, dtype=np.float64), qs)
        names = ("min", "p10", "p25", "median", "p75", "p90", "max")
        return {k: float(v) for k, v in zip(names, values, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        ci = self.interval()
        return {
            "compared": self.compared,
            "differ": self.differ,
            "share": self.share,
            "share_ci95": list(ci) if ci else None,
            "first_difference": self.quantiles(),
            "positions": list(self.positions),
        }


@dataclass(frozen=True)
class Level:
    """One run held against the reference."""

    label: str  # "1 (reference)", "8", "1 (again)"
    run_id: int
    parallel: int | None
    role: Role
    overall: Tally
    buckets: tuple[Tally, ...]  # one per Determinism.buckets
    failed: int = 0  # this run's request failed where the reference's succeeded
    no_reference: int = 0  # the reference's request failed
    not_sent: int = 0  # reference requests this run has no pair for
    extra: int = 0  # this run's requests with no reference request to pair with
    output_tokens: float | None = None  # median output tokens of its successful requests
    accuracy: float | None = None  # with grades: the share graded correct
    graded: int = 0

    def to_dict(self, buckets: Sequence[str]) -> dict[str, Any]:
        return {
            "label": self.label,
            "run_id": self.run_id,
            "parallel": self.parallel,
            "role": self.role,
            **self.overall.to_dict(),
            "failed": self.failed,
            "no_reference": self.no_reference,
            "not_sent": self.not_sent,
            "extra": self.extra,
            "output_tokens_median": self.output_tokens,
            "accuracy": self.accuracy,
            "graded": self.graded,
            "by_prompt_length": [
                {"bucket": name, **t.to_dict()}
                for name, t in zip(buckets, self.buckets, strict=True)
            ],
        }


@dataclass(frozen=True)
class Determinism:
    """What :func:`determinism` returns: each run against the concurrency-1 reference."""

    reference: int  # the reference run's id
    tokenizer: str  # what the positions are counted in
    buckets: tuple[str, ...]  # prompt-length bucket labels (tokens)
    levels: tuple[Level, ...]
    notes: tuple[str, ...] = ()  # what a reader should know before trusting the figures
    edges: tuple[int, ...] = ()  # the buckets' upper edges (tokens); the last bucket has none

    def verdict(self) -> str | None:
        """One sentence on where the differences come from, when there is a re-run to tell."""
        again = [lv for lv in self.levels if lv.role == "again" and lv.overall.compared]
        loaded = [lv for lv in self.levels if lv.role == "level" and lv.overall.compared]
        if not again or not loaded:
            return None
        alone = sum(lv.overall.differ for lv in again)
        n_alone = sum(lv.overall.compared for lv in again)
        busy = sum(lv.overall.differ for lv in loaded)
        if alone:
            return (
                f"concurrency {REFERENCE} run again differs from the reference in {alone} of "
                f"{n_alone} outputs: the engine is not deterministic even alone, so part of the "
                "differences under load is run-to-run variance, not batching"
            )
        if busy:
            return (
                f"concurrency {REFERENCE} run again matches the reference ({n_alone} of "
                f"{n_alone}): the differences under load come with the batch, not from run to run"
            )
        return "every level matches the reference: greedy outputs did not depend on the load"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_run": self.reference,
            "tokenizer": self.tokenizer,
            "buckets": [
                {"label": name, "min_tokens": low, "max_tokens": high}
                for name, low, high in zip(
                    self.buckets, (None, *(e + 1 for e in self.edges)), (*self.edges, None)
                )
            ],
            "levels": [lv.to_dict(self.buckets) for lv in self.levels],
            "verdict": self.verdict(),
            "notes": list(self.notes),
        }

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per level and prompt-length bucket (bucket ``all`` first)."""
        out = []
        for lv in self.levels:
            head = {"label": lv.label, "run_id": lv.run_id, "parallel": lv.parallel}
            for name, t in (("all", lv.overall), *zip(self.buckets, lv.buckets, strict=True)):
                d = t.to_dict()
                q = d.pop("first_difference") or {}
                d.pop("positions")
                lo, hi = d.pop("share_ci95") or (None, None)
                out.append(
                    {
                        **head,
                        "bucket": name,
                        **d,
                        "share_ci95_low": lo,
                        "share_ci95_high": hi,
                        "first_difference_median": q.get("median"),
                        "first_difference_p25": q.get("p25"),
                        "first_difference_p75": q.get("p75"),
                        "failed": lv.failed if name == "all" else None,
                        "accuracy": lv.accuracy if name == "all" else None,
                    }
                )
        return out

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        from perfbench.report.tables import warnings_panel

        parts: list[RenderableType] = [self._table(), self._bucket_table()]
        verdict = self.verdict()
        if verdict:
            parts.append(Text(verdict))
        if self.notes and not quiet:
            parts.append(warnings_panel(self.notes))
        return Group(*parts)

    def _table(self) -> Any:
        from rich import box
        from rich.table import Table

        t = Table(
            title=f"Determinism under load: greedy outputs against concurrency {REFERENCE} "
            f"(run {self.reference}); positions in {self.tokenizer} tokens",
            box=box.SIMPLE_HEAVY,
            title_justify="left",
            collapse_padding=True,
        )
        graded = any(lv.graded for lv in self.levels)
        cols = ["Concurrency", "Run", "Compared", "Differ", "Share", "95% CI"]
        cols += ["1st diff p50 (IQR)", "Out p50", "Failed/no ref"]
        cols += ["Accuracy"] if graded else []
        for i, c in enumerate(cols):
            t.add_column(c, justify="left" if i == 0 else "right", no_wrap=True)
        for lv in self.levels:
            row = [
                lv.label,
                str(lv.run_id),
                str(lv.overall.compared),
                str(lv.overall.differ),
                *_share(lv.overall),
                _spread(lv.overall),
                _num(lv.output_tokens),
                f"{lv.failed}/{lv.no_reference}",
            ]
            if graded:
                row.append("-" if lv.accuracy is None else f"{lv.accuracy:.1%}")
            t.add_row(*row)
        return t

    def _bucket_table(self) -> Any:
        from rich import box
        from rich.table import Table

        t = Table(
            title="By prompt length (tokens): differ / compared, share, first difference p50",
            box=box.SIMPLE_HEAVY,
            title_justify="left",
        )
        t.add_column("Concurrency")
        for name in self.buckets:
            t.add_column(name, justify="right")
        for lv in self.levels:
            cells = []
            for b in lv.buckets:
                if not b.compared:
                    cells.append("-")
                    continue
                q = b.quantiles()
                at = f" @{_pos(q['median'])}" if q else ""
                cells.append(f"{b.differ}/{b.compared} {b.share:.0%}{at}")
            t.add_row(lv.label, *cells)
        return t


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _share(t: Tally) -> tuple[str, str]:
    ci = t.interval()
    if ci is None or t.share is None:
        return "-", "-"
    return f"{t.share:.1%}", f"{ci[0]:.1%}–{ci[1]:.1%}"


def _spread(t: Tally) -> str:
    q = t.quantiles()
    if q is None:
        return "-"
    return f"{_pos(q['median'])} ({_pos(q['p25'])}–{_pos(q['p75'])})"


def _pos(value: float) -> str:
    """A position quantile, to one decimal (an interpolated median of two tokens ends in .5)."""
    return f"{value:.1f}".removesuffix(".0")


def determinism(
    db_path: str | Path,
    runs: Sequence[str] = (),
    *,
    name: str | None = None,
    tokenizer: str | None = None,
    notes: Sequence[str] = (),
) -> Determinism:
    """Hold runs (by id or name; every run named ``name``; default the latest batch) against the
    first concurrency-1 run among them. ``tokenizer`` counts the positions (default: the one the
    reference run was made with, else 4 characters a token); ``notes`` are added to the
    result's own."""
    store = Store(db_path)
    try:
        found = sorted(store.find(runs, name), key=lambda r: r.id)
        reference = next((r for r in found if _is_reference(r)), None)
        if reference is None:
            listed = ", ".join(str(r.id) for r in found)
            raise UsageError(
                f"no concurrency-{REFERENCE} run among runs {listed}: the reference is a closed "
                f"loop at --parallel {REFERENCE}; name one (perfbench runs lists them)"
            )
        if len(found) < 2:
            raise UsageError(
                f"run {reference.id} alone: give the runs of several concurrency levels "
                "(perfbench perf --determinism makes them)"
            )
        tok = _tokenizer(
            tokenizer if tokenizer is not None else reference.workload.get("tokenizer")
        )
        texts = {r.id: store.outputs(r.id) for r in found}
        grades = {r.id: store.grade_totals(r.id) for r in found}
    finally:
        store.close()
    ref = _keyed(texts[reference.id])
    edges = _edges([o.prompt_tokens for o in ref.values() if o.status == "ok"])
    labels = _bucket_labels(edges)
    levels = []
    seen_reference = False
    for run in found:
        if run.id == reference.id:
            role: Role = "reference"
            seen_reference = True
        elif _is_reference(run) and seen_reference:
            role = "again"
        else:
            role = "level"
        graded, accuracy = grades[run.id]
        level = _level(run, role, ref, _keyed(texts[run.id]), edges, tok)
        levels.append(dataclasses.replace(level, accuracy=accuracy, graded=graded))
    source = "estimated (4 characters)" if tok.source == "estimate" else tok.name
    all_notes = [*notes, *_notes(found, levels)]
    return Determinism(reference.id, source, labels, tuple(levels), tuple(all_notes), edges)


def _is_reference(run: Run) -> bool:
    return not run.load.open_loop and run.load.parallel == REFERENCE


def _tokenizer(name: str | None) -> Tokenizer:
    from perfbench.workload.tokenizers import load_tokenizer

    return load_tokenizer(name)


def _keyed(outputs: Sequence[OutputText]) -> dict[tuple[str, int], OutputText]:
    """Each request under (prompt id, how many requests of that prompt came before it)."""
    seen: dict[str, int] = {}
    out = {}
    for o in outputs:
        pid = o.prompt_id or f"#{o.idx}"
        k = seen.get(pid, 0)
        seen[pid] = k + 1
        out[(pid, k)] = o
    return out


def _edges(lengths: Sequence[int | None]) -> tuple[int, ...]:
    """Upper edges of the prompt-length buckets: the quartiles, ascending, distinct."""
    known = sorted(x for x in lengths if x is not None)
    if len(known) < MIN_FOR_QUARTILES:
        return ()
    n = len(known)
    cuts = [known[math.ceil(n * q) - 1] for q in (0.25, 0.5, 0.75)]
    return tuple(sorted({c for c in cuts if c < known[-1]}))


def _bucket_labels(edges: Sequence[int]) -> tuple[str, ...]:
    if not edges:
        return ("all",)
    out, low = [], None
    for edge in edges:
        out.append(
            f"≤ {edge}" if low is None else str(edge) if low + 1 == edge else f"{low + 1}–{edge}"
        )
        low = edge
    return (*out, f"> {low}")


def _bucket(length: int | None, edges: Sequence[int]) -> int:
    if length is None:
        return len(edges)  # unknown lengths go with the longest (rare: no usage, no tokenizer)
    return next((i for i, e in enumerate(edges) if length <= e), len(edges))


def first_difference(a: str, b: str, tok: Tokenizer) -> int:
    """How many leading tokens two different texts share (see the module docstring)."""
    common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if tok.source == "estimate":
        return common // CHARS_PER_TOKEN
    ids_a, ids_b = tok.encode(a), tok.encode(b)
    same = next(
        (i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b))
    )
    return same


def _level(
    run: Run,
    role: Role,
    ref: dict[tuple[str, int], OutputText],
    mine: dict[tuple[str, int], OutputText],
    edges: Sequence[int],
    tok: Tokenizer,
) -> Level:
    overall: list[int] = [0, 0]
    per = [[0, 0] for _ in range(len(edges) + 1)]
    positions: list[int] = []
    per_positions: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    failed = no_reference = not_sent = 0
    for key, r in ref.items():
        o = mine.get(key)
        if o is None:
            not_sent += 1
            continue
        if r.status != "ok":
            no_reference += 1
            continue
        if o.status != "ok":
            failed += 1
            continue
        b = _bucket(r.prompt_tokens, edges)
        overall[0] += 1
        per[b][0] += 1
        a, other = r.text, o.text
        if a != other:
            at = first_difference(a, other, tok)
            overall[1] += 1
            per[b][1] += 1
            positions.append(at)
            per_positions[b].append(at)
    if role == "reference":  # held against itself: its own failures are what it lost
        failed, no_reference = no_reference, 0
    lengths = [o.completion_tokens for o in mine.values() if o.status == "ok"]
    known = [x for x in lengths if x is not None]
    level = run.load.parallel if not run.load.open_loop else None
    name = str(level) if level is not None else run.load.label
    label = {"reference": f"{name} (reference)", "again": f"{name} (again)"}.get(role, name)
    return Level(
        label,
        run.id,
        level,
        role,
        Tally(overall[0], overall[1], tuple(positions)),
        tuple(Tally(c, d, tuple(p)) for (c, d), p in zip(per, per_positions, strict=True)),
        failed=failed,
        no_reference=no_reference,
        not_sent=not_sent,
        extra=sum(1 for key in mine if key not in ref),
        output_tokens=float(np.median(known)) if known else None,
    )


def _notes(runs: Sequence[Run], levels: Sequence[Level]) -> list[str]:
    out = []
    for run in runs:
        temperature = run.client.get("temperature")
        if temperature != 0:
            said = "no temperature (the server's default)" if temperature is None else temperature
            out.append(
                f"run {run.id} was sent with {said}, not 0: sampling alone makes its outputs "
                "differ; perfbench perf --determinism sends temperature 0"
            )
    for lv in levels:
        lost = lv.failed + lv.no_reference
        if lost:
            out.append(
                f"run {lv.run_id}: {lost} prompts are not compared ({lv.failed} failed here, "
                f"{lv.no_reference} failed in the reference); `perfbench report --errors` says why"
            )
        if lv.extra:
            out.append(
                f"run {lv.run_id}: {lv.extra} requests have no reference request to pair with "
                "(other prompts, or sent more often): they are left out"
            )
        if lv.role == "level" and lv.not_sent:
            out.append(f"run {lv.run_id} did not send {lv.not_sent} of the reference's prompts")
        if lv.role != "reference" and lv.overall.compared and not lv.overall.differ:
            ci = lv.overall.interval()
            if ci is not None and ci[1] > 0.05:
                out.append(
                    f"run {lv.run_id}: 0 of {lv.overall.compared} differ, which bounds the share "
                    f"only below {ci[1]:.0%} (95%); more prompts narrow it"
                )
    return out
