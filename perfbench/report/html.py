"""The report as one self-contained HTML page: charts to look at, and the requests to read.

``write_html(store, runs, path)`` writes a single file that needs no network to view: plotly.js
(MIT, shipped inside the ``plotly`` PyPI package as ``package_data/plotly.min.js``) is inlined
once, and the figures are plain plotly JSON built here with numpy, one small script drawing them.
The page shows, for every run on the same axes (one colour per run):

- the latency distributions (TTFT, TPOT, ITL, E2E) as CDFs and histograms;
- a sweep section (throughput and latency percentiles against the load level) when the runs
  differ in ``--parallel`` or ``--rate``;
- a timeline: requests completed/s, output tokens/s, requests in flight, errors/s, and the
  server's own metrics when the ``server_metrics`` table is there;
- each run's requests, with the captured answer (truncated) and its grade.

Why it stays small however long the run: a CDF is at most ``CDF_POINTS`` quantiles, a histogram is
binned here (``HIST_BINS`` shared bins per metric), the timeline has at most ``TIMELINE_BINS``
bins, a server metric series at most ``SERIES_POINTS`` points, and the request table at most
``max_rows`` rows per run with answers cut at ``ANSWER_CHARS`` characters (the page says so).
Inter-token gaps are read back in batches (``Store.iter_gaps``); beyond
``percentiles.EXACT_LIMIT`` they are counted into the error-bounded log histogram the percentile
table uses, and a second pass bins them.

Why it is safe to open: every string from the database (model text, errors, run names) is
HTML-escaped where it becomes markup, and the figures' JSON sits in a
``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as ``\\u00XX``, so no
text can close the script. Plotly itself decodes a few HTML entities and tags in labels, so
labels it draws are escaped too (it shows ``&lt;`` as ``<``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.metrics.percentiles import EXACT_LIMIT, LogHistogram
from perfbench.metrics.server import COUNTERS  # drawn as a rate per second
from perfbench.metrics.summary import Summary, summarize
from perfbench.store.runs import Run, Store

CDF_POINTS = 1000
HIST_BINS = 60
HIST_TOP = 99.5  # histograms' x axis ends at the largest run's p99.5: outliers do not squash it
TIMELINE_BINS = 150
SERIES_POINTS = 2000
DEFAULT_MAX_ROWS = 1000  # per run
ANSWER_CHARS = 1000
PALETTE = (
    "#4269d0",
    "#efb118",
    "#ff725c",
    "#6cc5b0",
    "#3ca951",
    "#ff8ab7",
    "#a463f2",
    "#97bbf5",
    "#9c6b4e",
    "#9498a0",
)
_NICE_WIDTHS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
_LATENCY = (
    ("ttft_ms", "TTFT", "time to first token"),
    ("tpot_ms", "TPOT", "time per output token"),
    ("itl_ms", "ITL", "inter-token latency (gaps between chunks)"),
    ("e2e_ms", "E2E", "end-to-end latency"),
)
_TIME_COLUMNS = ("status", "sent_ns", "first_token_ns", "last_token_ns", "end_ns")


def write_html(
    store: Store, runs: Sequence[Run], path: str | Path, *, max_rows: int = DEFAULT_MAX_ROWS
) -> None:
    """Write the HTML report of ``runs`` to ``path`` (one file; nothing else is needed to view it).

    >>> store = Store("outputs/perfbench.db")
    >>> write_html(store, store.find(["3", "4"]), "report.html")
    """
    Path(path).write_text(render_html(store, runs, max_rows=max_rows), encoding="utf-8")


def render_html(store: Store, runs: Sequence[Run], *, max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """The page as a string (``write_html`` writes it)."""
    if not runs:
        raise ValueError("no runs to report")
    views = [_RunView.load(store, run, PALETTE[i % len(PALETTE)]) for i, run in enumerate(runs)]
    charts: list[dict[str, Any]] = []
    charts += _latency_charts(store, views)
    charts += _sweep_charts(views)
    charts += _timeline_charts(views)
    charts += _server_metric_charts(store, views)
    tables = [_request_table(store, v, max(1, max_rows)) for v in views]
    return _page(views, _overview(views, store), charts, tables, max(1, max_rows))


# -- data ------------------------------------------------------------------------------------


@dataclass
class _RunView:
    run: Run
    summary: Summary
    color: str
    label: str  # plain text; escape it where it becomes markup
    cols: dict[str, np.ndarray]

    @classmethod
    def load(cls, store: Store, run: Run, color: str) -> _RunView:
        summary = summarize(store, run)
        names = ("ttft_ms", "tpot_ms", "e2e_ms", *_TIME_COLUMNS, "completion_tokens")
        cols = store.columns(run.id, names, where="AND warmup = 0")
        bits = [f"#{run.id}", run.name or "", run.model or "", run.load.label]
        return cls(run, summary, color, " · ".join(b for b in bits if b), cols)

    def ok_values(self, key: str) -> np.ndarray:
        values: np.ndarray = self.cols[key][self.cols["status"] == "ok"]
        finite: np.ndarray = values[~np.isnan(values)]
        return finite


def _nums(values: Any, digits: int = 4) -> list[float | None]:
    """JSON-ready floats, rounded (the charts need no more) with NaN as null."""
    out: list[float | None] = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        out.append(round(v, digits) if math.isfinite(v) else None)
    return out


def _label(text: str) -> str:
    """A string plotly draws: escaped, because plotly reads some HTML in labels."""
    return html.escape(text, quote=False)


# -- latency ---------------------------------------------------------------------------------


@dataclass
class _Dist:
    """One run's distribution of one metric: CDF points, and what the histogram needs."""

    n: int
    xs: np.ndarray  # CDF x (values)
    ps: np.ndarray  # CDF y (fraction at or below)
    step: bool  # every sample drawn (a step function) rather than quantiles
    values: np.ndarray | None  # all values, when they were in memory
    hist: LogHistogram | None  # else their log histogram


def _dist_of(values: np.ndarray) -> _Dist:
    values = np.sort(values)
    n = values.size
    if n <= CDF_POINTS:
        ps = np.arange(1, n + 1) / n if n else np.empty(0)
        return _Dist(n, values, ps, True, values, None)
    ps = np.linspace(0, 1, CDF_POINTS + 1)
    return _Dist(n, np.quantile(values, ps), ps, False, values, None)


def _itl_dist(store: Store, run: Run) -> _Dist:
    n = store.gap_count(run.id)
    if n <= EXACT_LIMIT:
        parts = list(store.iter_gaps(run.id))
        gaps = np.concatenate(parts).astype(np.float64) / 1e6 if parts else np.empty(0)
        return _dist_of(gaps)
    hist = LogHistogram()
    for batch in store.iter_gaps(run.id):
        hist.add(batch)
    ps = np.linspace(0, 1, CDF_POINTS + 1)
    xs = np.array(hist.percentiles(ps * 100)) / 1e6
    return _Dist(hist.n, xs, ps, False, None, hist)


def _histogram(store: Store, view: _RunView, key: str, d: _Dist, edges: np.ndarray) -> np.ndarray:
    if d.values is not None:
        counts, _ = np.histogram(d.values, bins=edges)
        return counts
    counts = np.zeros(edges.size - 1, dtype=np.int64)  # ITL beyond EXACT_LIMIT: a second pass
    for batch in store.iter_gaps(view.run.id):
        counts += np.histogram(batch / 1e6, bins=edges)[0]
    return counts


def _latency_charts(store: Store, views: Sequence[_RunView]) -> list[dict[str, Any]]:
    charts = []
    for key, short, long in _LATENCY:
        dists = [
            _itl_dist(store, v.run) if key == "itl_ms" else _dist_of(v.ok_values(key))
            for v in views
        ]
        cdf = []
        for v, d in zip(views, dists):
            cdf.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": _label(v.label),
                    "legendgroup": str(v.run.id),
                    "x": _nums(d.xs),
                    "y": _nums(d.ps, 5),
                    "line": {"color": v.color, "shape": "hv" if d.step else "linear"},
                    "hovertemplate": "%{x:.3f} ms: %{y:.1%} at or below<extra></extra>",
                }
            )
        charts.append(
            _chart(
                "latency",
                f"{short} CDF",
                cdf,
                xaxis=f"{short} (ms)",
                yaxis="fraction of requests" if key != "itl_ms" else "fraction of gaps",
                note=f"{long}; {_counts_note(dists)}",
                yformat=".0%",
            )
        )
        tops = [float(np.interp(HIST_TOP / 100, d.ps, d.xs)) for d in dists if d.n]
        lows = [float(d.xs[0]) for d in dists if d.n]
        bars = []
        if tops:
            lo, hi = min(lows), max(tops)
            if hi <= lo:
                hi = lo + max(abs(lo) * 0.01, 1e-3)
            edges = np.linspace(lo, hi, HIST_BINS + 1)
            for v, d in zip(views, dists):
                if not d.n:
                    continue
                counts = _histogram(store, v, key, d, edges)
                bars.append(
                    {
                        "type": "bar",
                        "name": _label(v.label),
                        "legendgroup": str(v.run.id),
                        "showlegend": False,
                        "x": _nums((edges[:-1] + edges[1:]) / 2),
                        "y": _nums(counts / d.n, 5),
                        "width": float(edges[1] - edges[0]),
                        "marker": {"color": v.color},
                        "opacity": 0.6 if len(views) > 1 else 0.85,
                        "hovertemplate": "%{x:.3f} ms: %{y:.2%}<extra></extra>",
                    }
                )
        charts.append(
            _chart(
                "latency",
                f"{short} histogram",
                bars,
                xaxis=f"{short} (ms)",
                yaxis="share per bin",
                note=f"{HIST_BINS} bins; the axis ends at the largest p{HIST_TOP:g}, so the "
                "tail beyond it is left out (the CDF has it)",
                yformat=".1%",
                barmode="overlay",
            )
        )
    return charts


def _counts_note(dists: Sequence[_Dist]) -> str:
    total = sum(d.n for d in dists)
    drawn = "every sample" if all(d.step for d in dists) else f"{CDF_POINTS} quantiles per run"
    return f"{total:,} samples, {drawn}"


# -- sweep -----------------------------------------------------------------------------------


def _sweep_charts(views: Sequence[_RunView]) -> list[dict[str, Any]]:
    """Throughput and latency against the load level, one line per sweep (its runs' name, else
    their batch)."""
    levels = [v.run.load.level for v in views]
    if len({lv for lv in levels if lv is not None}) < 2:
        return []
    open_loop = {v.run.load.rate is not None for v in views}
    if len(open_loop) > 1 or any(lv is None for lv in levels):
        xs = [v.summary.achieved_concurrency for v in views]
        xtitle = "achieved concurrency (mean requests in flight)"
    elif open_loop == {True}:
        xs, xtitle = [float(lv or 0) for lv in levels], "rate (requests/s)"
    else:
        xs, xtitle = [float(lv or 0) for lv in levels], "parallel (requests in flight)"
    # one line per sweep: `perfbench sweep` gives every level its own batch and the sweep's
    # name; `perf --parallel 1 8 32` gives one batch. A level measured twice in one group
    # splits it by batch.
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(views):
        key = f"name {v.run.name}" if v.run.name else f"batch {v.run.batch or v.run.id}"
        groups.setdefault(key, []).append(i)
    for key in list(groups):
        members = groups[key]
        if len({levels[i] for i in members}) < len(members):
            for i in groups.pop(key):
                groups.setdefault(f"batch {views[i].run.batch or views[i].run.id}", []).append(i)
    finite = [x for x in xs if math.isfinite(x) and x > 0]
    log_x = bool(finite) and max(finite) / min(finite) >= 8
    through: list[dict[str, Any]] = []
    ttft: list[dict[str, Any]] = []
    tpot: list[dict[str, Any]] = []
    e2e: list[dict[str, Any]] = []
    for members in groups.values():
        members.sort(key=lambda i: xs[i] if math.isfinite(xs[i]) else math.inf)
        line = _SweepLine(
            [views[i] for i in members], [xs[i] for i in members], views[members[0]].color
        )
        sums = line.summaries
        through.append(line.trace([s.output_tok_per_s for s in sums], "output tok/s"))
        through.append({**line.trace([s.req_per_s for s in sums], "req/s", "dot"), "yaxis": "y2"})
        for out, key, label, dashes in (
            (ttft, "ttft_ms", "TTFT", ("solid", "dot")),
            (e2e, "e2e_ms", "E2E", ("solid", "dot")),
            (tpot, "tpot_ms", "TPOT", ("solid", "dot")),
            (tpot, "itl_ms", "ITL", ("dash", "dashdot")),
        ):
            for pct, dash in zip(("p50", "p99"), dashes):
                out.append(line.trace([_pct(s, key, pct) for s in sums], f"{label} {pct}", dash))
    xtype = "log" if log_x else "linear"
    note = "p50 and p99 of each run, successful requests"
    return [
        _chart(
            "sweep",
            "Throughput against load",
            through,
            xaxis=xtitle,
            yaxis="output tokens/s",
            note="solid: output tokens/s (left axis); dotted: requests/s (right axis)",
            xtype=xtype,
            y2="requests/s",
        ),
        *(
            _chart("sweep", title, traces, xaxis=xtitle, yaxis="ms", note=note, xtype=xtype)
            for title, traces in (
                ("TTFT against load", ttft),
                ("TPOT and ITL against load", tpot),
                ("E2E against load", e2e),
            )
        ),
    ]


class _SweepLine:
    """The runs of one sweep, in load order: makes its traces."""

    def __init__(self, views: Sequence[_RunView], xs: Sequence[float], color: str) -> None:
        first = views[0].run
        name = " · ".join(b for b in (first.name or "", first.model or "") if b)
        self.name = _label(name or f"#{first.id}")
        self.x = _nums(xs)
        self.ids = [f"run {v.run.id}" for v in views]
        self.color = color
        self.summaries = [v.summary for v in views]

    def trace(self, ys: Sequence[float], label: str, dash: str = "solid") -> dict[str, Any]:
        return {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"{self.name} {label}",
            "x": self.x,
            "y": _nums(ys),
            "text": self.ids,
            "line": {"color": self.color, "dash": dash},
            "hovertemplate": "%{text}: %{y:.2f}<extra>" + label + "</extra>",
        }


def _pct(s: Summary, key: str, label: str) -> float:
    d = s.distributions.get(key)
    value = d.values.get(label) if d else None
    return math.nan if value is None else float(value)


# -- timeline --------------------------------------------------------------------------------


def _bin_width(duration_s: float) -> float:
    for w in _NICE_WIDTHS:
        if duration_s / w <= TIMELINE_BINS:
            return float(w)
    return math.ceil(duration_s / TIMELINE_BINS / 3600) * 3600.0


def _spread(
    starts: np.ndarray, ends: np.ndarray, amounts: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Amount per bin when each item's amount is spread evenly over [start, end].

    Exact for that assumption in O(n log n + bins): the amount delivered by time t is
    Σ r·(t − s) over items started minus Σ r·(t − e) over items ended, with r = amount / (e − s),
    two prefix sums over the sorted starts and ends. Items with e = s land in their bin whole.
    """
    point = ends <= starts
    out = np.histogram(starts[point], bins=edges, weights=amounts[point])[0].astype(np.float64)
    s, e, a = starts[~point], ends[~point], amounts[~point]
    if s.size == 0:
        return out
    r = a / (e - s)

    def delivered(t: np.ndarray, at: np.ndarray) -> np.ndarray:
        order = np.argsort(at)
        at_sorted = at[order]
        cum_r = np.concatenate(([0.0], np.cumsum(r[order])))
        cum_ra = np.concatenate(([0.0], np.cumsum(r[order] * at_sorted)))
        k = np.searchsorted(at_sorted, t, side="left")
        return np.asarray(t * cum_r[k] - cum_ra[k], dtype=np.float64)

    total = delivered(edges, s) - delivered(edges, e)
    spread: np.ndarray = out + np.diff(total)
    return spread


def _timeline_charts(views: Sequence[_RunView]) -> list[dict[str, Any]]:
    durations = [
        float(np.nanmax(v.cols["end_ns"])) / 1e9
        for v in views
        if np.isfinite(v.cols["end_ns"]).any()
    ]
    width = _bin_width(max(durations, default=1.0))
    charts: dict[str, list[dict[str, Any]]] = {
        "done": [],
        "tokens": [],
        "inflight": [],
        "errors": [],
    }
    for v in views:
        c = v.cols
        ended = np.isfinite(c["end_ns"])
        if not ended.any():
            continue
        end_s = c["end_ns"] / 1e9
        top = float(np.nanmax(end_s))
        edges = np.arange(0, top + width, width)
        if edges.size < 2:
            edges = np.array([0.0, width])
        mids = _nums((edges[:-1] + edges[1:]) / 2)
        ok = (c["status"] == "ok") & ended
        bad = (c["status"] != "ok") & ended
        done = np.histogram(end_s[ok], bins=edges)[0] / width
        errors = np.histogram(end_s[bad], bins=edges)[0] / width
        tok = ok & np.isfinite(c["first_token_ns"]) & np.isfinite(c["completion_tokens"])
        first = c["first_token_ns"][tok] / 1e9
        last = (
            np.where(
                np.isfinite(c["last_token_ns"][tok]), c["last_token_ns"][tok], c["end_ns"][tok]
            )
            / 1e9
        )
        tokens = _spread(first, last, c["completion_tokens"][tok], edges) / width
        sent = np.isfinite(c["sent_ns"]) & ended
        s0, s1 = c["sent_ns"][sent] / 1e9, end_s[sent]
        inflight = _spread(s0, s1, s1 - s0, edges) / width
        for key, ys in (
            ("done", done),
            ("tokens", tokens),
            ("inflight", inflight),
            ("errors", errors),
        ):
            charts[key].append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": _label(v.label),
                    "legendgroup": str(v.run.id),
                    "x": mids,
                    "y": _nums(ys, 3),
                    "line": {"color": v.color, "shape": "hvh", "width": 1.5},
                    "hovertemplate": "%{x:.2f} s: %{y:.2f}<extra></extra>",
                }
            )
    per = f"{width:g} s bins, from each run's start"
    return [
        _chart(
            "timeline",
            "Requests completed per second",
            charts["done"],
            xaxis="time (s)",
            yaxis="requests/s",
            note=f"successful requests by the time they ended; {per}",
        ),
        _chart(
            "timeline",
            "Output tokens per second",
            charts["tokens"],
            xaxis="time (s)",
            yaxis="tokens/s",
            note=f"each request's tokens spread evenly from its first to its last token; {per}",
        ),
        _chart(
            "timeline",
            "Requests in flight",
            charts["inflight"],
            xaxis="time (s)",
            yaxis="requests",
            note=f"mean over each bin, from send to end; {per}",
        ),
        _chart(
            "timeline",
            "Errors per second",
            charts["errors"],
            xaxis="time (s)",
            yaxis="errors/s",
            note=f"failed requests by the time the failure was seen; {per}",
        ),
    ]


def _server_metric_charts(store: Store, views: Sequence[_RunView]) -> list[dict[str, Any]]:
    """The server's own metrics over each run, when the ``server_metrics`` table exists.

    Samples are ``(t_ns since the run's t0, name, value)`` (:mod:`perfbench.client.servermetrics`); gauges
    are drawn as sampled, counters as their increase per second (a drop is a restart from 0,
    Prometheus' rule), ``kv_usage`` (0..1) as a percentage.
    """
    series: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        for name, (t_ns, values) in store.server_points(v.run.id).items():
            t, y = t_ns.astype(np.float64) / 1e9, values
            counter = name in COUNTERS or name.endswith("_total")
            if counter:
                if t.size < 2:
                    continue
                rise = np.diff(y)
                rise = np.where(rise < 0, y[1:], rise)
                dt = np.diff(t)
                y = np.divide(rise, dt, out=np.full(dt.size, np.nan), where=dt > 0)
                t = t[1:]
            elif name == "kv_usage":
                y = y * 100
            if t.size > SERIES_POINTS:  # bounded: means over equal runs of samples
                k = math.ceil(t.size / SERIES_POINTS)
                cut = t.size // k * k
                t = t[:cut].reshape(-1, k).mean(axis=1)
                y = y[:cut].reshape(-1, k).mean(axis=1)
            series.setdefault(name, []).append(
                {
                    "type": "scatter",
                    "mode": "lines+markers" if t.size < 50 else "lines",
                    "name": _label(v.label),
                    "legendgroup": str(v.run.id),
                    "x": _nums(t, 3),
                    "y": _nums(y),
                    "line": {"color": v.color, "width": 1.5},
                    "marker": {"size": 4},
                    "hovertemplate": "%{x:.2f} s: %{y:.3g}<extra></extra>",
                }
            )
    order = {name: i for i, name in enumerate(_SERVER_METRICS)}
    charts = []
    for name in sorted(series, key=lambda n: (order.get(n, len(order)), n)):
        title, unit = _SERVER_METRICS.get(name, (name, name))
        counter = name in COUNTERS or name.endswith("_total")
        charts.append(
            _chart(
                "server",
                _label(title),
                series[name],
                xaxis="time (s)",
                yaxis=_label(unit),
                note="sampled from the server's /metrics during the run"
                + ("; a counter, drawn as its increase per second" if counter else ""),
            )
        )
    return charts


_SERVER_METRICS = {  # canonical key -> (title, axis)
    "running": ("Requests running on the server", "requests"),
    "waiting": ("Requests waiting on the server", "requests"),
    "kv_usage": ("KV cache usage", "%"),
    "preemptions": ("Preemptions per second", "preemptions/s"),
    "prompt_tokens": ("Prompt tokens per second (server)", "tokens/s"),
    "generation_tokens": ("Generation tokens per second (server)", "tokens/s"),
}


# -- charts ----------------------------------------------------------------------------------


def _chart(
    section: str,
    title: str,
    traces: list[dict[str, Any]],
    *,
    xaxis: str,
    yaxis: str,
    note: str = "",
    yformat: str = "",
    xtype: str = "linear",
    barmode: str = "",
    y2: str = "",
) -> dict[str, Any]:
    """A plotly figure as plain JSON (``title`` and ``note`` are ours, or already escaped)."""
    layout: dict[str, Any] = {
        "margin": {"l": 60, "r": 70 if y2 else 40, "t": 10, "b": 45},
        "modebar": {"orientation": "v"},
        "xaxis": {"title": {"text": xaxis}, "type": xtype, "zeroline": False},
        "yaxis": {"title": {"text": yaxis}, "rangemode": "tozero", "tickformat": yformat},
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.02,
            "yanchor": "bottom",
            "font": {"size": 11},
        },
        "hovermode": "closest",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "plot_bgcolor": "#fafafa",
    }
    if barmode:
        layout["barmode"] = barmode
    if y2:
        layout["yaxis2"] = {
            "title": {"text": y2},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        }
    return {"section": section, "title": title, "note": note, "data": traces, "layout": layout}


# -- the request table -----------------------------------------------------------------------


def _request_table(store: Store, view: _RunView, limit: int) -> str:
    run_id = view.run.id
    total = store.request_count(run_id)
    rows = store.answer_page(run_id, limit, ANSWER_CHARS)
    graded = any(r.grades for r in rows)
    e = html.escape
    head = ["idx", "status", "TTFT (ms)", "E2E (ms)", "in tok", "out tok", "answer"]
    if graded:
        head += ["grade", "gold"]
    out = [
        '<table class="requests sortable"><thead><tr>'
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    for row in rows:
        idx, status, http_status, error = row.idx, row.status, row.http_status, row.error
        ttft, e2e, p_tok, c_tok, r_tok = (
            row.ttft_ms,
            row.e2e_ms,
            row.prompt_tokens,
            row.completion_tokens,
            row.reasoning_tokens,
        )
        text, length, answer = row.answer, row.answer_chars, row.gold
        st = e(str(status)) + (f" {e(str(http_status))}" if http_status and status != "ok" else "")
        if error:
            st += f'<div class="err">{e(str(error))}</div>'
        body = e(text or "")
        if length and length > ANSWER_CHARS:
            body += f'<span class="cut">… ({length:,} characters in all)</span>'
        tok = "" if c_tok is None else f"{int(c_tok)}"
        if r_tok:
            tok += f' <span class="dim">({int(r_tok)} reasoning)</span>'
        cells = [
            f'<td class="num">{idx}</td>',
            f'<td class="st-{"ok" if status == "ok" else "bad"}">{st}</td>',
            _num_cell(ttft),
            _num_cell(e2e),
            _num_cell(p_tok, 0),
            f'<td class="num" data-v="{"" if c_tok is None else int(c_tok)}">{tok}</td>',
            f'<td><div class="answer">{body}</div></td>',
        ]
        if graded:
            marks = []
            for grader, pred, correct in row.grades:
                mark = '<span class="yes">✓</span>' if correct else '<span class="no">✗</span>'
                marks.append(
                    f"{mark} {e(pred) if pred is not None else '<i>no answer</i>'}"
                    f' <span class="dim">{e(grader)}</span>'
                )
            cells.append(f"<td>{'<br>'.join(marks)}</td>")
            cells.append(f"<td>{e(str(answer)) if answer is not None else ''}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    note = f"{len(rows):,} of {total:,} measured requests"
    if len(rows) < total:
        note += (
            f" (the first {limit:,}: the page shows at most {limit:,} per run; all are in the "
            f"database: <code>SELECT * FROM requests WHERE run_id = {run_id}</code>)"
        )
    note += f"; answers cut at {ANSWER_CHARS:,} characters; warm-up requests left out."
    return f'<p class="note">{note}</p>' + "".join(out)


def _num_cell(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(float(value)):
        return '<td class="num" data-v="">—</td>'
    return f'<td class="num" data-v="{float(value):.6g}">{float(value):,.{digits}f}</td>'


# -- the page --------------------------------------------------------------------------------


def _plotly_js() -> str:
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(
        encoding="utf-8"
    )


def _script_json(data: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end it or open a comment."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}"


def _overview(views: Sequence[_RunView], store: Store) -> str:
    e = html.escape
    head = (
        "Run",
        "Name",
        "Model",
        "Load",
        "Status",
        "OK / failed",
        "Duration (s)",
        "Req/s",
        "Out tok/s",
        "TTFT p50 / p99",
        "TPOT p50 / p99",
        "ITL p50 / p99",
        "E2E p50 / p99",
        "Accuracy",
    )
    rows = []
    for v in views:
        s = v.summary
        acc = "—"
        graded, mean = store.grade_totals(v.run.id)
        if graded and mean is not None:
            acc = f"{100 * mean:.1f}% of {graded}"

        def pp(key: str, digits: int = 1, s: Summary = s) -> str:
            return f"{_fmt(_pct(s, key, 'p50'), digits)} / {_fmt(_pct(s, key, 'p99'), digits)}"

        cells = [
            f'<span class="swatch" style="background:{v.color}"></span>{v.run.id}',
            e(v.run.name or ""),
            e(v.run.model or ""),
            e(v.run.load.label),
            e(s.status),
            f"{s.ok} / {s.failed}",
            _fmt(s.duration_s, 2),
            _fmt(s.req_per_s, 2),
            _fmt(s.output_tok_per_s, 0),
            pp("ttft_ms"),
            pp("tpot_ms", 2),
            pp("itl_ms", 2),
            pp("e2e_ms", 0),
            acc,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = (
        '<table class="overview"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + '</tbody></table><p class="note">Latencies in ms over successful, measured requests.'
        " <code>perfbench report RUN</code> prints every percentile.</p>"
    )
    warns = []
    for v in views:
        for w in v.summary.warnings:
            warns.append(f"<li><b>run {v.run.id}</b>: {e(w)}</li>")
    if warns:
        table += (
            '<div class="warn"><b>Read these figures with care</b><ul>'
            + "".join(warns)
            + "</ul></div>"
        )
    return table


_SECTIONS = (
    ("latency", "Latency distributions", "Every successful, measured request of each run."),
    (
        "sweep",
        "Against load",
        "One point per run; one line per sweep (runs started by one command).",
    ),
    ("timeline", "Over the run", "Seconds since each run's start."),
    ("server", "Server metrics", "Sampled from the server during the run."),
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1500px;padding:0 24px 40px;color:#222}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 4px;border-bottom:1px solid #ddd}
.note,.sub{color:#666;font-size:12.5px;margin:4px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:14px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:4px 6px 2px}
.chart{height:340px}.card h3{font-size:14px;margin:6px 6px 0}.card .note{margin:0 6px 4px}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;
vertical-align:top;text-align:left}th{background:#f4f4f4;position:sticky;top:0;cursor:pointer}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.answer{white-space:pre-wrap;max-height:7.5em;overflow:auto;max-width:680px;font-family:ui-monospace,monospace;font-size:12px}
.cut,.dim{color:#888}.err{color:#b00;font-size:12px;max-width:320px}.st-bad{color:#b00}
.yes{color:#1a7f37;font-weight:bold}.no{color:#b00;font-weight:bold}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.warn{background:#fff8e1;border:1px solid #f0c36d;border-radius:6px;padding:6px 14px;margin:10px 0;font-size:13px}
details{margin:8px 0}summary{font-weight:bold;cursor:pointer;margin:6px 0}
"""

_JS = """
(function () {
  var spec = JSON.parse(document.getElementById('perfbench-data').textContent);
  var config = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ['select2d', 'lasso2d']};
  spec.charts.forEach(function (c, i) {
    Plotly.newPlot('chart-' + i, c.data, c.layout, config);
  });
  document.querySelectorAll('table.sortable th').forEach(function (th, col) {
    th.title = 'sort';
    th.addEventListener('click', function () {
      var body = th.closest('table').tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === 'asc' ? -1 : 1;
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      function key(r) {
        var cell = r.cells[th.cellIndex];
        var v = cell && cell.dataset.v;
        if (v !== undefined) { return v === '' ? Infinity : parseFloat(v); }
        var t = cell ? cell.textContent : '';
        var n = parseFloat(t);
        return isNaN(n) ? t : n;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def _page(
    views: Sequence[_RunView],
    overview: str,
    charts: list[dict[str, Any]],
    tables: list[str],
    per_run: int,
) -> str:
    from perfbench.version import __version__

    e = html.escape
    ids = ", ".join(str(v.run.id) for v in views)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>perfbench report: run{'s' if len(views) > 1 else ''} {e(ids)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>perfbench report: run{'s' if len(views) > 1 else ''} {e(ids)}</h1>",
        f'<p class="sub">perfbench {e(__version__)}, '
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        "charts: drag to zoom, double-click to reset, click a legend entry to hide a run.</p>",
        overview,
    ]
    n = 0
    for section, title, sub in _SECTIONS:
        mine = [(i, c) for i, c in enumerate(charts) if c["section"] == section]
        if not mine:
            continue
        parts.append(f'<h2 id="{section}">{title}</h2><p class="sub">{sub}</p><div class="grid">')
        for i, c in mine:
            parts.append(
                f'<div class="card"><h3>{c["title"]}</h3><div class="chart" id="chart-{i}"></div>'
                f'<p class="note">{c["note"]}</p></div>'
            )
            n += 1
        parts.append("</div>")
    parts.append('<h2 id="requests">Requests</h2>')
    parts.append(
        f'<p class="sub">At most {per_run:,} requests per run; click a column header to sort.</p>'
    )
    for v, table in zip(views, tables):
        parts.append(
            f'<details open><summary><span class="swatch" style="background:{v.color}"></span>'
            f"{e(v.label)}</summary>{table}</details>"
        )
    spec = {"charts": [{"data": c["data"], "layout": c["layout"]} for c in charts]}
    parts += [
        f'<script type="application/json" id="perfbench-data">{_script_json(spec)}</script>',
        f"<script>{_plotly_js()}</script>",
        f"<script>{_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)
