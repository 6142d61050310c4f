"""The server's own figures over a run's measured window, from the ``/metrics`` samples the
client's scraper stored (:mod:`perfbench.client.servermetrics` says what is scraped and how).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

GAUGES = ("running", "waiting", "kv_usage", "cache_hit_rate")
COUNTERS = ("preemptions", "prompt_tokens", "generation_tokens", "prefix_queries", "prefix_hits")
#: KV usage at or above this is a full cache
KV_FULL = 0.99
#: requests waiting while KV usage is at or above this were waiting for cache space
KV_TIGHT = 0.9
#: ... and so were requests waiting at this usage or above while fewer ran than the run's peak:
#: a slot-bound engine admits a waiting request as soon as a slot frees, so requests that wait
#: beside a free slot wait for cache space
KV_BUSY = 0.75


def _time_mean(t: np.ndarray, v: np.ndarray) -> float:
    """Time-weighted (trapezoidal) mean: the boundary samples, close together, do not count
    more than the periodic ones."""
    if v.size == 1 or t[-1] <= t[0]:
        return float(v.mean())
    dt = np.diff(t)
    return float(np.sum((v[1:] + v[:-1]) / 2 * dt) / (t[-1] - t[0]))


def _increases(v: np.ndarray) -> np.ndarray:
    """Per-interval increases of a counter; a drop is a restart from 0 (Prometheus' rule)."""
    d = np.diff(v)
    reset = d < 0
    d[reset] = v[1:][reset]
    return d


def summarize_samples(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    window_ns: Sequence[int] | None = None,
    interval: float = 1.0,
) -> dict[str, Any]:
    """Mean and peak of each gauge, and counter deltas and rates, over ``window_ns``.

    ``series`` maps a canonical key to (t_ns, values), sorted by time. Gauge means are
    time-weighted, over the samples between the two boundary ones (before the first request and
    after the last, when there are three or more); a counter's total is its increase over the window (restarts handled), its
    mean rate that total over the window, its peak rate the fastest interval between two
    samples at least half an ``interval`` apart (closer ones are the boundary samples, whose
    rate is noise), and never below the mean rate.
    """
    out: dict[str, Any] = {}
    lo, hi = (window_ns[0], window_ns[1]) if window_ns else (-(2**62), 2**62)
    span_ns = 0
    scrapes: set[int] = set()
    for key in (*GAUGES, *COUNTERS):
        if key not in series:
            continue
        t, v = series[key]
        keep = (t >= lo) & (t <= hi) & ~np.isnan(v)
        t, v = t[keep], v[keep]
        if not t.size:
            continue
        scrapes.update(t.tolist())
        span_ns = max(span_ns, int(t[-1] - t[0]))
        if key in GAUGES:
            scale = 100.0 if key == "kv_usage" else 1.0
            name = "kv_usage_pct" if key == "kv_usage" else key
            # the samples right before the first request and after the last show an idle
            # server: they bound the window but would drag a short run's mean to half
            inner = slice(1, -1) if t.size >= 3 else slice(None)
            out[name] = {
                "mean": _time_mean(t[inner], v[inner]) * scale,
                "peak": float(v.max()) * scale,
            }
            continue
        if t.size < 2:
            continue
        d = _increases(v)
        total = float(d.sum())
        if key in ("preemptions", "prefix_queries", "prefix_hits"):
            out[key] = total
            continue
        dt = np.diff(t) / 1e9
        span = (t[-1] - t[0]) / 1e9
        wide = dt >= interval / 2
        rates = d[wide] / dt[wide] if wide.any() else d[dt > 0] / dt[dt > 0]
        label = "prompt" if key == "prompt_tokens" else "generation"
        out[f"{label}_tokens"] = total
        mean = total / span if span > 0 else math.nan
        peak = float(rates.max()) if rates.size else math.nan
        out[f"{label}_tok_per_s"] = {"mean": mean, "peak": max(peak, mean)}
    queried, hits = out.pop("prefix_queries", None), out.pop("prefix_hits", None)
    if queried and hits is not None:  # vLLM: the window's hit tokens over its queried tokens
        out["prefix_cache_hit_pct"] = 100 * hits / queried
        out["prefix_cache_tokens"] = {"queried": queried, "hits": hits}
    elif "cache_hit_rate" in out:  # SGLang's gauge, a share
        out["prefix_cache_hit_pct"] = out.pop("cache_hit_rate")["mean"] * 100
    out.pop("cache_hit_rate", None)
    out["samples"] = len(scrapes)
    out["window_s"] = span_ns / 1e9
    if "kv_usage" in series and "waiting" in series:
        out["kv_tight_share"] = _tight_share(series, lo, hi)
    out["kv_bound"] = _kv_bound(out)
    return out


def _tight_share(series: Mapping[str, tuple[np.ndarray, np.ndarray]], lo: int, hi: int) -> float:
    """Of the samples in which requests waited, the share that waited for cache space: the KV
    cache ≥ KV_TIGHT, or ≥ KV_BUSY with fewer requests running than the run's peak."""
    (tw, w), (tk, k) = series["waiting"], series["kv_usage"]
    kv_at: dict[int, float] = dict(zip(tk.tolist(), k.tolist(), strict=True))
    running_at: dict[int, float] = {}
    peak = math.inf
    if "running" in series:
        tr, r = series["running"]
        inside = (tr >= lo) & (tr <= hi)
        running_at = dict(zip(tr.tolist(), r.tolist(), strict=True))
        peak = float(r[inside].max()) if inside.any() else math.inf
    queued: list[bool] = []
    for t, n in zip(tw.tolist(), w.tolist(), strict=True):
        kv = kv_at.get(t)
        if lo <= t <= hi and n > 0 and kv is not None:
            beside_a_slot = running_at.get(t, peak) < peak
            queued.append(kv >= KV_TIGHT or (kv >= KV_BUSY and beside_a_slot))
    if not queued:
        return 0.0
    return sum(queued) / len(queued)


def _kv_bound(figures: Mapping[str, Any]) -> bool:
    kv = figures.get("kv_usage_pct", {}).get("peak", 0.0)
    return bool(
        figures.get("preemptions", 0) > 0
        or kv >= KV_FULL * 100
        or figures.get("kv_tight_share", 0.0) >= 0.5
    )


def kv_bound(server: Mapping[str, Any]) -> bool:
    """Was the server's KV cache the limit in this run? ``server`` is ``Summary.server``.

    True when the server preempted (vLLM) or retracted (SGLang) requests, its KV usage peaked
    at ``KV_FULL`` or above, or in at least half of the samples in which requests waited its
    KV usage was ``KV_TIGHT`` or above (an engine that reserves a request's whole footprint on
    admission, as ``perfbench sim`` does, never quite reaches 100%: the next request does not
    fit). A sweep uses it to say that a knee is KV-bound: beyond it, latency is queueing for
    cache space, not compute. False when the run has no server metrics.
    """
    return bool(server.get("kv_bound", False))
