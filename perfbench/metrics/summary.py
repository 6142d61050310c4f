"""A run's figures, computed from its rows in the store (never from memory of the run).

Definitions are DESIGN.md's and docs/metrics.md's; this module is their one implementation.
``Summary.warnings`` lists every reason its numbers should not be taken at face value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.metrics.percentiles import PERCENTILES, exact, min_samples, streamed
from perfbench.metrics.server import KV_TIGHT, summarize_samples
from perfbench.metrics.sessions import session_figures, turn_figures
from perfbench.store.runs import Run, Store
from perfbench.versioned import SCHEMA_VERSION, json_safe

# (key, label, unit) of the percentile table's columns, in order
DISTRIBUTIONS = (
    ("ttft_ms", "TTFT", "ms"),
    ("itl_ms", "ITL", "ms"),
    ("tpot_ms", "TPOT", "ms"),
    ("e2e_ms", "E2E", "ms"),
    ("prompt_tokens", "Input tok", ""),
    ("completion_tokens", "Output tok", ""),
    ("output_tps", "Output tok/s", "per request"),
)
OPEN_LOOP_DISTRIBUTIONS = (
    ("ttft_intended_ms", "TTFT from plan", "ms"),
    ("e2e_intended_ms", "E2E from plan", "ms"),
    ("schedule_lag_ms", "Schedule lag", "ms"),
)

_COLUMNS = (
    "status",
    "worker",
    "sent_ns",
    "end_ns",
    "intended_ns",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "ttft_intended_ms",
    "e2e_intended_ms",
    "schedule_lag_ms",
    "n_chunks",
    "prompt_tokens",
    "completion_tokens",
    "token_source",
    "streamed",
    "dataset",
    "expected_tokens",
    "cached_tokens",
    "prompt_id",
)


@dataclass
class Distribution:
    n: int
    mean: float
    values: dict[str, float]  # percentile label ("p50") -> value
    exact: bool = True


@dataclass
class Summary:
    schema_version: int
    run_id: int
    name: str | None
    status: str
    model: str | None
    endpoint: str | None
    mode: str  # "closed" or "open"
    parallel: int | None
    rate: float | None
    shape: str  # how arrivals were planned: closed, poisson, gamma, constant, ramp, trace
    max_concurrency: int | None
    scheduled: int
    measured: int
    warmup: int
    ok: int
    failed: int
    errors: dict[str, int]
    duration_s: float
    req_per_s: float
    output_tok_per_s: float
    total_tok_per_s: float
    achieved_concurrency: float
    planned_rate: float | None
    achieved_send_rate: float | None
    mean_ttft_ms: float
    mean_tpot_ms: float
    mean_itl_ms: float
    mean_e2e_ms: float
    mean_input_tokens: float
    mean_output_tokens: float
    tokens_per_chunk: float
    chunks_per_s: float
    token_sources: dict[str, int]
    loop_lag_ms: dict[str, float]
    distributions: dict[str, Distribution] = field(default_factory=dict)
    by_dataset: dict[str, dict[str, float]] = field(default_factory=dict)  # when several
    exact_output: dict[str, int] = field(default_factory=dict)  # asked / honoured, when asked
    token_check: dict[str, Any] = field(default_factory=dict)  # server usage vs local tokenizer
    server: dict[str, Any] = field(default_factory=dict)  # the server's /metrics (metrics.server)
    workers: list[dict[str, Any]] = field(default_factory=list)  # scale-out: each worker's part
    prefix_cache: dict[str, Any] = field(default_factory=dict)  # usage's cached tokens, if given
    resent: dict[str, int] = field(default_factory=dict)  # requests re-sending a sent prompt
    shared_prefix: dict[str, Any] = field(default_factory=dict)  # random: the shared share
    trace_reuse: dict[str, Any] = field(default_factory=dict)  # a trace's blocks sent before
    sessions: dict[str, Any] = field(default_factory=dict)  # conversations: metrics.sessions
    turns: list[dict[str, Any]] = field(default_factory=list)  # ... and their figures per turn
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json_safe(asdict(self))
        return data


def _pct_label(p: float) -> str:
    return f"p{p:g}"


_OPEN_LOOP_ONLY = ("intended_ns", "ttft_intended_ms", "e2e_intended_ms", "schedule_lag_ms")


def _mean(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def _dist(values: np.ndarray) -> Distribution:
    values = values[~np.isnan(values)]
    pct = exact(values)
    return Distribution(
        n=int(values.size),
        mean=float(values.mean()) if values.size else math.nan,
        values={_pct_label(p): v for p, v in zip(PERCENTILES, pct, strict=False)},
    )


def _window(sent: np.ndarray, end: np.ndarray, cuts: list[int]) -> float:
    """Seconds from the first send to the last end; of a resumed run, the sum of that over
    its segments (cut at each resume), so the time it lay stopped counts for nothing."""
    if not sent.size:
        return math.nan
    segment = np.searchsorted(np.sort(np.asarray(cuts, dtype=np.float64)), sent, side="right")
    total = 0.0
    for k in np.unique(segment):
        mine = segment == k
        total += float(end[mine].max() - sent[mine].min())
    return total / 1e9


def _rate(times: np.ndarray, cuts: list[int]) -> float | None:
    """Arrivals per second: (n − 1) over the span from the first to the last; of a resumed
    run, summed over its segments, so the stop counts for nothing. None with too few."""
    times = np.sort(times[~np.isnan(times)])
    segment = np.searchsorted(np.sort(np.asarray(cuts, dtype=np.float64)), times, side="right")
    gaps = span = 0.0
    for k in np.unique(segment):
        mine = times[segment == k]
        gaps += mine.size - 1
        span += float(mine[-1] - mine[0])
    return gaps / (span / 1e9) if gaps > 0 and span > 0 else None


def summarize(store: Store, run: Run) -> Summary:
    """All figures of one run, read back from the store."""
    # an in-process closed loop has no plan to lag and no workers: a million rows read 40 MB
    # less without those columns
    names = [
        c
        for c in _COLUMNS
        if (run.open_loop or c not in _OPEN_LOOP_ONLY or (run.workers and c == "schedule_lag_ms"))
        and (run.workers or c != "worker")
    ]
    conversations = bool(run.workload.get("multi_turn") or run.workload.get("turns"))
    if conversations:
        names += ["session", "turn", "turns"]
    cols = store.columns(run.id, names, where="AND warmup = 0")
    load = run.load
    status = cols["status"]
    ok = status == "ok"
    measured = int(status.size)
    n_ok = int(ok.sum())
    errors: dict[str, int] = {}
    for s in status[~ok]:
        errors[str(s)] = errors.get(str(s), 0) + 1

    sent, end = cols["sent_ns"], cols["end_ns"]
    finished = ~np.isnan(end) & ~np.isnan(sent)
    resumes = [r["at_ns"] for r in run.health.get("resumes") or []]
    window = _window(sent[finished], end[finished], resumes)
    prompt = np.where(ok, cols["prompt_tokens"], np.nan)
    completion = np.where(ok, cols["completion_tokens"], np.nan)
    out_tokens = float(np.nansum(completion))
    in_tokens = float(np.nansum(prompt))
    e2e_ok = np.where(ok, cols["e2e_ms"], np.nan)

    def per_s(x: float) -> float:
        return x / window if window and window > 0 else math.nan

    dists: dict[str, Distribution] = {}
    for key, _, _ in DISTRIBUTIONS:
        if key == "itl_ms":
            continue
        if key == "output_tps":
            values = completion / (e2e_ok / 1e3)
        else:
            values = np.where(ok, cols[key], np.nan)
        dists[key] = _dist(values)
    itl_n = store.gap_count(run.id)
    pcts, itl_mean, itl_exact = streamed(store.iter_gaps(run.id), itl_n)  # integer ns in
    dists["itl_ms"] = Distribution(
        n=itl_n,
        mean=itl_mean / 1e6,
        values={_pct_label(p): v / 1e6 for p, v in zip(PERCENTILES, pcts)},
        exact=itl_exact,
    )
    open_loop = run.open_loop
    planned_rate = achieved_rate = None
    if open_loop:
        for key, _, _ in OPEN_LOOP_DISTRIBUTIONS:
            dists[key] = _dist(
                np.where(ok, cols[key], np.nan) if key != "schedule_lag_ms" else cols[key]
            )
        # conversations: the plan is when sessions start (their first turns)
        first = cols["turn"] == 1 if conversations else np.ones(sent.size, dtype=bool)
        planned_rate = _rate(cols["intended_ns"][first], resumes)
        achieved_rate = _rate(sent[first & ~np.isnan(sent)], resumes)

    chunks = np.where(ok, cols["n_chunks"], np.nan)
    streamed_ok = ok & (cols["streamed"] == 1)
    tok_per_chunk = (
        float(np.nansum(completion[streamed_ok]) / np.nansum(chunks[streamed_ok]))
        if streamed_ok.any() and np.nansum(chunks[streamed_ok]) > 0
        else math.nan
    )
    sources: dict[str, int] = {}
    for s in cols["token_source"][ok]:
        sources[str(s)] = sources.get(str(s), 0) + 1

    e2e_all = cols["e2e_ms"][finished]
    summary = Summary(
        schema_version=SCHEMA_VERSION,
        run_id=run.id,
        name=run.name,
        status=run.status,
        model=run.model,
        endpoint=run.endpoint,
        mode="open" if open_loop else "closed",
        parallel=load.parallel,
        rate=load.rate,
        shape=load.shape,
        max_concurrency=load.max_concurrency,
        scheduled=int(run.scheduled or 0),
        measured=measured,
        warmup=load.warmup,
        ok=n_ok,
        failed=measured - n_ok,
        errors=errors,
        duration_s=float(window),
        req_per_s=per_s(n_ok),
        output_tok_per_s=per_s(out_tokens),
        total_tok_per_s=per_s(out_tokens + in_tokens),
        achieved_concurrency=per_s(float(np.nansum(e2e_all)) / 1e3),
        planned_rate=planned_rate,
        achieved_send_rate=achieved_rate,
        mean_ttft_ms=dists["ttft_ms"].mean,
        mean_tpot_ms=dists["tpot_ms"].mean,
        mean_itl_ms=itl_mean / 1e6,
        mean_e2e_ms=dists["e2e_ms"].mean,
        mean_input_tokens=_mean(prompt),
        mean_output_tokens=_mean(completion),
        tokens_per_chunk=tok_per_chunk,
        chunks_per_s=per_s(float(np.nansum(chunks[streamed_ok])))
        if streamed_ok.any()
        else math.nan,
        token_sources=sources,
        loop_lag_ms=dict(run.health.get("loop_lag_ms", {})),
        distributions=dists,
    )
    summary.by_dataset = _by_dataset(cols, ok)
    summary.prefix_cache = _prefix_cache(cols, ok)
    summary.resent = _resent(cols, run)
    summary.shared_prefix = _shared_prefix(run)
    summary.trace_reuse = _trace_reuse(run)
    if conversations:
        summary.sessions = session_figures(cols, ok, float(run.workload.get("think_time") or 0))
        summary.turns = turn_figures(cols, ok)
    summary.token_check = _token_check(store, run)
    summary.server = _server(store, run)
    summary.workers = _workers(run, cols)
    asked = ok & ~np.isnan(cols["expected_tokens"]) & (cols["token_source"] == "usage")
    if asked.any():
        honoured = asked & (cols["completion_tokens"] == cols["expected_tokens"])
        summary.exact_output = {"asked": int(asked.sum()), "honoured": int(honoured.sum())}
    summary.warnings = _warnings(
        summary, run, bool(np.all(cols["streamed"][ok] == 1)) if n_ok else True
    )
    if run.source:
        summary.warnings.insert(0, _imported(summary, run.source))
    return summary


_FILE_FIGURES = ("duration_s", "req_per_s", "output_tok_per_s", "total_tok_per_s")


def _imported(s: Summary, source: dict[str, Any]) -> str:
    """A run imported from another tool's file (``perfbench import``): what its requests do not
    give (a window, when they have no send times; everything, when the file is a summary) is
    the file's own figure, under perfbench's name where the two define it alike. Returns the
    line that says which."""
    figures = source.get("figures") or {}
    had_rows = s.measured > 0
    taken: list[str] = []
    for key in _FILE_FIGURES:
        theirs = figures.get(key)
        if not math.isfinite(getattr(s, key)) and isinstance(theirs, int | float):
            setattr(s, key, float(theirs))
            taken.append(key)
    for key in list(s.distributions):
        theirs = figures.get(key)
        if not had_rows and isinstance(theirs, dict) and theirs:
            values = {k: float(v) for k, v in theirs.items() if k.startswith("p") and v is not None}
            s.distributions[key] = Distribution(
                n=int(theirs.get("n") or 0), mean=float(theirs.get("mean", math.nan)), values=values
            )
            taken.append(key)
    d = s.distributions
    s.mean_ttft_ms, s.mean_tpot_ms = d["ttft_ms"].mean, d["tpot_ms"].mean
    s.mean_itl_ms, s.mean_e2e_ms = d["itl_ms"].mean, d["e2e_ms"].mean
    if not s.measured and isinstance(figures.get("ok"), int):
        s.ok, s.failed = figures["ok"], int(figures.get("failed") or 0)
        s.measured = s.scheduled = s.ok + s.failed
    tool = f"{source.get('tool')} {source.get('version') or ''}".strip()
    where = f"imported from {tool} ({Path(str(source.get('file'))).name}, {source.get('part')})"
    if not taken:
        how = "every figure recomputed from its requests under perfbench's definitions"
    elif had_rows:
        how = (
            "figures recomputed from its requests under perfbench's definitions, but the file "
            "gives no send times, so the window and the throughputs are its own"
        )
    else:
        how = (
            "the file holds no per-request data: these are its own summary figures, under "
            "perfbench's names where the two tools define them alike (docs/drop-in.md)"
        )
    notes = "; ".join(source.get("notes") or [])
    return f"{where}: {how}" + (f"; {notes}" if notes else "")


def _prefix_cache(cols: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, Any]:
    """The share of prompt tokens the server says it took from its prefix cache (its usage's
    ``prompt_tokens_details.cached_tokens``), over the successful requests that say; {} when
    none does (vLLM says only with ``--enable-prompt-tokens-details``)."""
    told = ok & ~np.isnan(cols["cached_tokens"]) & ~np.isnan(cols["prompt_tokens"])
    if not told.any():
        return {}
    cached = float(cols["cached_tokens"][told].sum())
    prompt = float(cols["prompt_tokens"][told].sum())
    return {
        "requests": int(told.sum()),
        "cached_tokens": int(cached),
        "prompt_tokens": int(prompt),
        "hit_pct": 100 * cached / prompt if prompt else math.nan,
        "requests_with_hits": int((cols["cached_tokens"][told] > 0).sum()),
    }


def _shared_prefix(run: Run) -> dict[str, Any]:
    """The random dataset's shared prefix: its tokens, the share of a prompt it is (at the
    mean input length), and in how many groups; {} without one."""
    w = run.workload
    prefix = int(w.get("prefix_len") or 0)
    if not prefix or w.get("dataset") != "random":
        return {}
    whole = prefix + int(w.get("input_len") or 1024)
    return {
        "tokens": prefix,
        "of": whole,
        "share_pct": 100 * prefix / whole,
        "groups": int(w.get("prefix_groups") or 1),
    }


def _trace_reuse(run: Run) -> dict[str, Any]:
    """A trace with ``hash_ids``: the prompt tokens of blocks an earlier row had sent, of all
    (what a prefix cache that forgets nothing could hit, before the chat template); {} else."""
    reuse = run.workload.get("trace_reuse")
    if not reuse:
        return {}
    reusable, total = int(reuse["reusable_tokens"]), int(reuse["prompt_tokens"])
    return {
        "reusable_tokens": reusable,
        "prompt_tokens": total,
        "share_pct": 100 * reusable / total if total else math.nan,
        "block_size": int(reuse["block_size"]),
    }


def _resent(cols: dict[str, np.ndarray], run: Run) -> dict[str, int]:
    """Measured requests that sent a prompt the run had sent before, beyond the samples per
    prompt asked for (``--samples``): {} when none did, or when every request's prompt was made
    unique (the random dataset's default)."""
    if run.workload.get("unique_prompts") or run.source:  # imported: prompts unknown
        return {}
    ids = cols["prompt_id"]
    if "turn" in cols:  # a conversation's turns share its id: count each session once
        ids = ids[cols["turn"] == 1]
    if not ids.size or any(not i for i in set(ids.tolist())):
        return {}
    distinct = len(set(ids.tolist()))
    samples = int(run.workload.get("n") or 1)
    extra = int(ids.size) - distinct * samples
    return {"requests": int(ids.size), "prompts": distinct, "resent": extra} if extra > 0 else {}


def _workers(run: Run, cols: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each worker of a scaled-out run: where it ran, its clock's offset from the
    coordinator's (± its uncertainty), its measured requests, how late it sent them against
    the plan, its own event loop's lag, and whether it was lost."""
    out = []
    for entry in run.workers:
        mine = cols["worker"] == entry["worker"]
        lag = cols["schedule_lag_ms"][mine]
        lag = lag[~np.isnan(lag)]
        out.append(
            {
                "worker": entry["worker"],
                "kind": entry.get("kind"),
                "host": entry.get("host"),
                "pid": entry.get("pid"),
                "node": entry.get("node"),
                "requests": int(mine.sum()),
                "offset_ms": entry.get("offset_ns", 0) / 1e6,
                "offset_uncertainty_ms": entry.get("offset_uncertainty_ns", 0) / 1e6,
                "schedule_lag_p99_ms": float(np.percentile(lag, 99)) if lag.size else math.nan,
                "loop_lag_p99_ms": float((entry.get("loop_lag_ms") or {}).get("p99", math.nan)),
                "lost": entry.get("lost"),
                "lost_requests": int(entry.get("lost_requests") or 0),
            }
        )
    return out


def _worker_warnings(s: Summary) -> list[str]:
    """A worker lost, or one that lagged its plan (its own loop, or its sends against the plan)."""
    out = []
    for w in s.workers:
        where = f"worker {w['worker']} (pid {w['pid']} on {w['host']})"
        if w["lost"]:
            out.append(
                f"{where} was lost ({w['lost']}): {w['lost_requests']} of its requests are "
                "recorded as worker_lost, and the load after it was lighter than planned"
            )
        lag = w["schedule_lag_p99_ms"]
        if s.mode == "open" and not s.max_concurrency and lag > 10:
            out.append(
                f"{where} lagged its plan: schedule lag p99 {lag:.1f} ms over its "
                f"{w['requests']} requests; give it fewer streams (more --workers) or a free core"
            )
        elif w["loop_lag_p99_ms"] > 5:
            out.append(
                f"{where} lagged: its event loop woke {w['loop_lag_p99_ms']:.1f} ms late (p99), "
                "so its timings include its own delay; use more --workers or a free core"
            )
    return out


def _server(store: Store, run: Run) -> dict[str, Any]:
    """The server's own figures over the measured window (docs/metrics.md, "Server metrics"):
    {} for a run recorded before server metrics existed, ``available: False`` with the reason
    when the server had none, else the names matched and the figures of
    :func:`perfbench.metrics.server.summarize_samples`."""
    info = run.server.get("metrics")
    if not info:
        return {}
    if not info.get("available"):
        return {"available": False, "reason": info.get("reason")}
    window = info.get("window_ns") or [None, None]
    lo = window[0] if window[0] is not None else -(2**62)
    hi = window[1] if len(window) > 1 and window[1] is not None else 2**62
    interval = float(info.get("interval_s") or 1.0)
    figures = summarize_samples(store.server_samples(run.id), window_ns=(lo, hi), interval=interval)
    return {
        "available": True,
        "url": info.get("url"),
        "names": info.get("names", {}),
        "interval_s": interval,
        "scrapes": info.get("scrapes"),
        "scrape_errors": info.get("errors", 0),
        "last_error": info.get("last_error"),
        **figures,
    }


TOKEN_CHECK_SAMPLE = 2000


def _token_check(store: Store, run: Run) -> dict[str, Any]:
    """How far the server's output-token counts are from the local tokenizer's, when both exist.

    Over the first ``TOKEN_CHECK_SAMPLE`` successful requests that have server usage: the local
    count is of the reasoning plus the answer text, without special tokens, so a server that
    counts an end-of-sequence or thinking-delimiter token comes out one or two tokens higher.
    """
    name = run.workload.get("tokenizer")
    if not name:
        return {}
    rows = store.usage_outputs(run.id, TOKEN_CHECK_SAMPLE)
    if not rows:
        return {}
    from perfbench.errors import PerfbenchError
    from perfbench.workload.tokenizers import load_tokenizer

    try:
        count = load_tokenizer(name).count
    except PerfbenchError as exc:
        return {"tokenizer": name, "error": str(exc)}
    server = np.array([r[0] for r in rows], dtype=np.float64)
    local = np.array([count(r[1]) for r in rows], dtype=np.float64)
    diff = (server - local) / server * 100
    out: dict[str, Any] = {
        "tokenizer": name,
        "n": len(rows),
        "mean_diff_pct": float(diff.mean()),
        "max_abs_diff_pct": float(np.abs(diff).max()),
        "mean_diff_tokens": float((server - local).mean()),
    }
    inputs = store.usage_inputs(run.id, TOKEN_CHECK_SAMPLE)
    if inputs:
        # the server's count includes its chat template: a few tokens more than the text's
        server_in = np.array([r[0] for r in inputs], dtype=np.float64)
        local_in = np.array([count(r[1]) for r in inputs], dtype=np.float64)
        out["input"] = {
            "n": len(inputs),
            "mean_diff_pct": float(((server_in - local_in) / server_in * 100).mean()),
            "mean_diff_tokens": float((server_in - local_in).mean()),
        }
    return out


def _by_dataset(cols: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-dataset figures of a mixed workload (empty when the run used one dataset)."""
    names = sorted(set(cols["dataset"].tolist()))
    if len(names) < 2:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name in names:
        mine = cols["dataset"] == name
        good = mine & ok
        ttft = cols["ttft_ms"][good]
        ttft = ttft[~np.isnan(ttft)]
        out[name or "(none)"] = {
            "measured": float(mine.sum()),
            "ok": float(good.sum()),
            "mean_ttft_ms": _mean(cols["ttft_ms"][good]),
            "p99_ttft_ms": float(np.percentile(ttft, 99)) if ttft.size else math.nan,
            "mean_tpot_ms": _mean(cols["tpot_ms"][good]),
            "mean_e2e_ms": _mean(cols["e2e_ms"][good]),
            "mean_input_tokens": _mean(cols["prompt_tokens"][good]),
            "mean_output_tokens": _mean(cols["completion_tokens"][good]),
        }
    return out


def _warnings(s: Summary, run: Run, all_streamed: bool) -> list[str]:
    """Every reason the figures should not be trusted as they stand, each with what to do."""
    out: list[str] = []
    if s.status == "interrupted":
        out.append(
            f"the run was interrupted: {s.measured} of the planned requests were recorded; "
            "figures cover what was measured before the stop"
        )
    if s.status == "failed":
        out.append("the run failed before it finished: figures cover what was recorded")
    if s.status == "killed":
        out.append(
            "the run was killed (its process is gone, and it never marked the run finished): "
            "requests in flight then, and those that ended in its last half second, are rows "
            "with status in_flight (their ends were never written); figures cover the rest"
        )
    out.extend(_worker_warnings(s))
    health = run.health
    if health.get("stopped"):
        out.append(
            f"the run stopped early: {health['stopped']}; requests never attempted have no rows, "
            "and the figures cover what was measured before"
        )
    waits = health.get("writer_waits")
    if waits:
        out.append(
            f"the database writer fell behind: sending paused {waits['count']} time(s), "
            f"{waits['seconds']:.1f} s in all, until it caught up, so this client, not the "
            "server, limited the run; spread the load over processes (--workers)"
        )
    resumes = health.get("resumes") or []
    if resumes:
        resent = sum(r.get("resent", 0) for r in resumes)
        kept: dict[str, int] = {}
        for r in resumes:
            for status, n in (r.get("set_aside") or {}).items():
                kept[status] = kept.get(status, 0) + n
        earlier = ", ".join(f"{k}: {v}" for k, v in sorted(kept.items())) or "none had rows"
        shifted = any(r.get("clock") == "shifted" for r in resumes)
        out.append(
            f"the run was resumed {len(resumes)} time(s) (--resume): {resent} requests were sent "
            f"again ({earlier} before; those rows are kept in table resent); throughput adds "
            "up each segment's own window"
            + (
                "; a segment ran on another clock (another boot or host) and its times were "
                "placed 1 s after the run's last stamp"
                if shifted
                else ""
            )
        )
    gaps = health.get("server_gaps") or []
    if gaps:
        away = sum(g["end_ns"] - g["start_ns"] for g in gaps) / 1e9
        skipped = health.get("skipped", 0)
        out.append(
            f"the server was away {len(gaps)} time(s), {away:.1f} s in all (--wait-for-server): "
            "the run paused and went on"
            + (
                f"; {skipped} planned arrivals fell due meanwhile and were not sent"
                if skipped
                else ""
            )
        )
    if s.ok == 0 and s.measured:
        out.append("no request succeeded, so there are no latency figures; see the errors above")
    if s.failed:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(s.errors.items(), key=lambda kv: -kv[1]))
        out.append(
            f"{s.failed} of {s.measured} requests failed ({detail}); latency figures cover the "
            f"{s.ok} that succeeded. `perfbench report --errors` shows the messages"
        )
    exact = s.exact_output
    if exact and exact["honoured"] < exact["asked"]:
        out.append(
            f"the server returned a different output length than asked for {exact['asked'] - exact['honoured']} "
            f"of {exact['asked']} exact-length requests (min_tokens/ignore_eos not honoured?): "
            "output lengths, and so throughput and E2E, differ from the workload's"
        )
    check = s.token_check
    if check.get("n") and abs(check["mean_diff_pct"]) > 5:
        out.append(
            f"the server's output-token counts differ from tokenizer {check['tokenizer']}'s by "
            f"{check['mean_diff_pct']:+.1f}% on average over {check['n']} requests: is --tokenizer "
            "the served model's?"
        )
    inputs = check.get("input") or {}
    if inputs and abs(inputs["mean_diff_pct"]) > 10 and abs(inputs["mean_diff_tokens"]) > 32:
        out.append(
            f"the server counts {inputs['mean_diff_tokens']:+.0f} input tokens per request "
            f"({inputs['mean_diff_pct']:+.1f}%) against tokenizer {check['tokenizer']}'s count of "
            f"the prompts, over {inputs['n']} requests, more than a chat template adds: input "
            "lengths are not what the workload meant; is --tokenizer the served model's?"
        )
    estimated = {
        k: v for k, v in s.token_sources.items() if k not in ("usage", "tokenizer", "imported")
    }
    if estimated:
        n = sum(estimated.values())
        how = " and ".join(
            {
                "chunks": "counted as one per streamed chunk",
                "estimate": "estimated from text length",
            }.get(k, k)
            for k in estimated
        )
        out.append(
            f"output tokens of {n} requests were not reported by the server ({how}; their input "
            "tokens are text length / 4): TPOT and token throughput rest on these counts. Servers "
            "report usage when asked with stream_options.include_usage; check that yours honours it"
        )
    resent = s.resent
    if resent:
        out.append(
            f"{resent['resent']} of {resent['requests']} requests sent a prompt this run had "
            f"already sent (the workload has {resent['prompts']} prompts): a server with a prefix "
            "cache answers those from cache, so TTFT is lower than for new prompts. Use --number "
            f"≤ {resent['prompts']}, a larger dataset, or --dataset random (unique prompts)"
        )
    if not all_streamed:
        out.append(
            "--no-stream: the first token arrives with the whole response, so TTFT is (about) the "
            "E2E latency, and there are no ITL or TPOT figures"
        )
    lag = s.loop_lag_ms
    if lag and not s.workers and (lag.get("p99", 0) > 5 or lag.get("max", 0) > 50):
        out.append(
            f"the client's event loop lagged (p99 {lag.get('p99', 0):.1f} ms, max "
            f"{lag.get('max', 0):.1f} ms): timings include the client's own delay. Lower "
            "--parallel/--rate, or split the load over several perfbench processes"
        )
    if s.mode == "open":
        sched = s.distributions.get("schedule_lag_ms")
        if sched and sched.n and (sched.mean > 2 or sched.values.get("p99", 0) > 10):
            capped = (
                " (--max-concurrency holds requests back by design)" if s.max_concurrency else ""
            )
            out.append(
                f"requests went out late against the plan (schedule lag mean {sched.mean:.1f} ms, "
                f"p99 {sched.values['p99']:.1f} ms){capped}: the 'from plan' figures include it"
            )
        if s.planned_rate and s.achieved_send_rate and s.achieved_send_rate < 0.95 * s.planned_rate:
            out.append(
                f"achieved send rate {s.achieved_send_rate:.2f} req/s is more than 5% below the "
                f"planned {s.planned_rate:.2f} req/s: the client or --max-concurrency held it back"
            )
    elif s.parallel and s.measured and s.achieved_concurrency < 0.9 * s.parallel:
        out.append(
            f"achieved concurrency {s.achieved_concurrency:.1f} is below --parallel {s.parallel} "
            "(ramp-up and tail of the run, or too few requests per worker): send at least "
            "10 requests per worker (--number ≥ 10 × --parallel) for steady-state figures"
        )
    out.extend(_server_warnings(s.server))
    thin = [p for p in PERCENTILES if 0 < s.ok < min_samples(p)]
    if thin:
        worst = max(thin)
        out.append(
            f"too few samples for the upper percentiles: p{worst:g} needs at least "
            f"{min_samples(worst)} successful requests and this run has {s.ok}; "
            f"percentiles from p{min(thin):g} up are at or near the maximum"
        )
    return out


def _server_warnings(server: dict[str, Any]) -> list[str]:
    """A full KV cache (what a sweep calls a KV-bound knee), and scrapes that failed."""
    out: list[str] = []
    if not server.get("available"):
        return out
    if server.get("kv_bound"):
        why = []
        kv = server.get("kv_usage_pct")
        if kv:
            why.append(f"KV usage peaked at {kv['peak']:.1f}%")
        if server.get("preemptions"):
            why.append(f"{server['preemptions']:.0f} requests were preempted")
        share = server.get("kv_tight_share", 0.0)
        if share:
            why.append(
                f"in {share:.0%} of the samples with requests waiting, the cache was "
                f"at least {KV_TIGHT:.0%} used"
            )
        out.append(
            f"the server's KV cache was full ({'; '.join(why)}): latency beyond this load is "
            "queueing for cache space, not compute. Fewer requests in flight, shorter outputs "
            "or more KV cache (memory, quantized KV, more replicas) move the limit"
        )
    errors = server.get("scrape_errors") or 0
    if errors:
        out.append(
            f"{errors} of {server.get('scrapes')} scrapes of {server.get('url')} failed (last: "
            f"{server.get('last_error')}): the server figures cover the scrapes that answered"
        )
    return out
