"""A run as the JSON file ``vllm bench serve --save-result`` writes, so that the scripts and
dashboards that read those files keep working (docs/drop-in.md, "Result files").

Keys, units and definitions follow vLLM's ``vllm/benchmarks/serve.py`` (``calculate_metrics``,
``benchmark``, ``main_async``): statistics in milliseconds named ``mean_/median_/std_/p<P>_<m>_ms``
(``p99.9`` for 99.9), the standard deviation over the population, percentiles by linear
interpolation, 0 for a metric with no sample; TPOT over requests with more than one output
token; ITL over every gap between token-carrying chunks of every request, pooled; the detailed
arrays (``--save-detailed``) in seconds. The figures are perfbench's own measurements of the
same quantities (docs/metrics.md): where the two tools differ in what they stamp, the file says
what perfbench measured.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.errors import UsageError
from perfbench.interop.foreign import Imported, Request, need, number
from perfbench.metrics.percentiles import streamed
from perfbench.store.runs import Run, Store

METRICS = ("ttft", "tpot", "itl", "e2el")
_COLUMNS = (
    "idx", "status", "error", "prompt_tokens", "completion_tokens", "ttft_ms", "tpot_ms",
    "e2e_ms", "sent_ns", "first_token_ns", "end_ns", "schedule_lag_ms",
)  # fmt: skip


def parse_metrics(text: str) -> tuple[str, ...]:
    """``--percentile-metrics ttft,tpot,itl,e2el``."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise UsageError(
            f"--percentile-metrics {text!r}: choose from {', '.join(METRICS)}, comma-separated"
        )
    return names


def parse_percentiles(text: str) -> tuple[float, ...]:
    """``--metric-percentiles 50,90,99,99.9``."""
    try:
        values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        values = ()
    if not values or not all(0 < p < 100 for p in values):
        raise UsageError(
            f"--metric-percentiles {text!r}: give percentiles between 0 and 100, e.g. 50,90,99"
        )
    return values


def parse_goodput(items: Sequence[str]) -> dict[str, float]:
    """``--goodput ttft:500 tpot:50`` (milliseconds): the SLOs a good request meets."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition(":")
        try:
            ms = float(value)
        except ValueError:
            ms = -1.0
        if not sep or key not in ("ttft", "tpot", "e2el") or not ms >= 0:
            raise UsageError(
                f"--goodput {item!r} is not KEY:MS with KEY ttft, tpot or e2el, e.g. ttft:500"
            )
        out[key] = ms
    return out


def result(
    store: Store,
    run: Run,
    *,
    label: str | None = None,
    metrics: Sequence[str] = ("ttft", "tpot", "itl"),
    percentiles: Sequence[float] = (99.0,),
    goodput: Mapping[str, float] | None = None,
    detailed: bool = False,
    metadata: Mapping[str, str] | None = None,
    date: str | None = None,
) -> dict[str, Any]:
    """The run as vLLM's result JSON (a dict; :func:`write` writes it)."""
    cols = store.columns(run.id, _COLUMNS, where="AND warmup = 0")
    ok = cols["status"] == "ok"
    measured = int(ok.size)
    completed = int(ok.sum())
    from perfbench.metrics.summary import summarize

    summary = summarize(store, run)
    duration = summary.duration_s if math.isfinite(summary.duration_s) else 0.0
    prompt = np.nan_to_num(cols["prompt_tokens"])
    output = np.nan_to_num(cols["completion_tokens"])
    total_in, total_out = int(prompt[ok].sum()), int(output[ok].sum())

    def per_s(x: float) -> float:
        return x / duration if duration > 0 else 0.0

    backend = "openai-chat" if run.client.get("api") == "openai-chat" else "openai"
    load = run.load
    rate: float | str = "inf"
    if load.rate is not None and not math.isinf(load.rate):
        rate = float(load.rate)
    out: dict[str, Any] = {
        "date": date or datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": backend,
        "backend": backend,
        "label": label,
        "model_id": run.model,
        "tokenizer_id": run.workload.get("tokenizer") or run.model,
        "num_prompts": load.planned if load.planned is not None else measured,
        **dict(metadata or {}),
        "request_rate": rate,
        "burstiness": load.burstiness,
        "max_concurrency": load.max_concurrency if load.open_loop else load.parallel,
        "duration": duration,
        "completed": completed,
        "failed": measured - completed,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": per_s(completed),
        "request_goodput": per_s(_good(cols, ok, output, goodput)) if goodput else None,
        "output_throughput": per_s(total_out),
        "total_token_throughput": per_s(total_in + total_out),
    }

    def seconds(ms: np.ndarray) -> list[float]:  # a failed request's 0, as vLLM writes it
        return [float(t) / 1e3 if good and math.isfinite(t) else 0.0 for t, good in zip(ms, ok)]

    latencies = seconds(cols["e2e_ms"])
    queue_times = [float(x) / 1e3 if math.isfinite(x) else 0.0 for x in cols["schedule_lag_ms"]]
    if detailed:
        texts = store.columns(run.id, ("output_text",), where="AND warmup = 0")["output_text"]
        t0 = run.t0_ns or 0
        out["input_lens"] = [int(x) for x in prompt]
        out["output_lens"] = [int(x) if good else 0 for x, good in zip(output, ok, strict=True)]
        out["ttfts"] = seconds(cols["ttft_ms"])
        gaps = dict(_gaps(store, run))  # the file holds them all: so must memory, once
        out["itls"] = [
            (gaps.get(int(i), np.empty(0)) / 1e9).tolist() if good else []
            for i, good in zip(cols["idx"], ok, strict=True)
        ]
        del gaps
        out["latencies"] = latencies
        out["start_times"] = [  # the send, on this host's monotonic clock, as vLLM's are
            (t0 + float(t)) / 1e9 if math.isfinite(t) else 0.0 for t in cols["sent_ns"]
        ]
        out["queue_times"] = queue_times
        out["generated_texts"] = [str(t) for t in texts]
        out["errors"] = ["" if good else str(e) for e, good in zip(cols["error"], ok, strict=True)]
    else:  # vLLM keeps these two without --save-detailed
        out["latencies"], out["queue_times"] = latencies, queue_times
    peak_tokens, peak_requests = _peaks(store, run, cols, ok)
    out["max_output_tokens_per_s"] = peak_tokens
    out["max_concurrent_requests"] = peak_requests
    out["rtfx"] = 0.0  # vLLM's real-time factor of speech models; 0 for text
    values = {
        "ttft": cols["ttft_ms"][ok],
        "tpot": cols["tpot_ms"][ok & (output > 1)],
        "e2el": cols["e2e_ms"][ok],
    }
    for name in metrics:
        stats = _pooled_itl(store, run, percentiles) if name == "itl" else None
        if stats is None:
            v = values[name]
            v = v[np.isfinite(v)]
            stats = {
                "mean": float(v.mean()) if v.size else 0.0,
                "median": float(np.median(v)) if v.size else 0.0,
                "std": float(v.std()) if v.size else 0.0,
                **{p: float(np.percentile(v, p)) if v.size else 0.0 for p in percentiles},
            }
        for stat in ("mean", "median", "std"):
            out[f"{stat}_{name}_ms"] = stats[stat]
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            out[f"p{word}_{name}_ms"] = stats[p]
    return out


def _pooled_itl(store: Store, run: Run, percentiles: Sequence[float]) -> dict[Any, float]:
    """Mean, median, population standard deviation and percentiles of every chunk gap (ms),
    read in batches: exact up to :data:`~perfbench.metrics.percentiles.EXACT_LIMIT` gaps, and
    within 0.05% beyond (a million 256-token streams hold 255M gaps)."""
    n = store.gap_count(run.id)
    if not n:
        return {"mean": 0.0, "median": 0.0, "std": 0.0, **{p: 0.0 for p in percentiles}}
    total = squares = 0.0

    def batches() -> Any:
        nonlocal total, squares
        for batch in store.iter_gaps(run.id):
            ms = batch.astype(np.float64) / 1e6
            total += float(ms.sum())
            squares += float(np.dot(ms, ms))
            yield ms

    values, _, _ = streamed(batches(), n, (50.0, *percentiles))
    mean = total / n
    return {
        "mean": mean,
        "median": values[0],
        "std": math.sqrt(max(squares / n - mean * mean, 0.0)),
        **dict(zip(percentiles, values[1:], strict=True)),
    }


def _gaps(store: Store, run: Run) -> Any:
    idx, _, _ = store.streamed_requests(run.id)
    for i, g in zip(idx.tolist(), store.gaps_of(run.id, idx.tolist()), strict=True):
        yield i, g.astype(np.float64)


def _good(
    cols: Mapping[str, np.ndarray], ok: np.ndarray, output: np.ndarray, slo: Mapping[str, float]
) -> int:
    """Successful requests that meet every SLO; a TPOT of one output token counts as 0."""
    good = ok.copy()
    tpot = np.where(output > 1, cols["tpot_ms"], 0.0)
    for key, column in (("ttft", cols["ttft_ms"]), ("tpot", tpot), ("e2el", cols["e2e_ms"])):
        if key in slo:
            good &= np.nan_to_num(column, nan=math.inf) <= slo[key]
    return int(good.sum())


def _peaks(
    store: Store, run: Run, cols: Mapping[str, np.ndarray], ok: np.ndarray
) -> tuple[float, int]:
    """vLLM's two peaks, over successful requests, in whole seconds from the first send: the
    most token-carrying chunks that arrived in one second, and the most requests in flight at
    some moment of one second (a request counts in every second from its send's to its end's).
    The chunks are read in batches of requests, so memory stays flat however long the run."""
    sent, end, first = cols["sent_ns"], cols["end_ns"], cols["first_token_ns"]
    have = ok & np.isfinite(sent) & np.isfinite(end)
    if not have.any():
        return 0.0, 0
    start = float(sent[have].min())
    seconds = int((float(end[have].max()) - start) // 1e9) + 1
    chunks = np.zeros(seconds + 1, dtype=np.int64)
    firsts = first[have & np.isfinite(first)]
    np.add.at(chunks, ((firsts - start) // 1e9).astype(np.int64), 1)
    order = np.argsort(cols["idx"], kind="stable")
    idx_sorted = cols["idx"][order]
    streamed_idx, _, _ = store.streamed_requests(run.id)
    for at in range(0, streamed_idx.size, 2000):
        batch = streamed_idx[at : at + 2000]
        gaps = list(store.gaps_of(run.id, batch.tolist()))
        t0 = first[order[np.searchsorted(idx_sorted, batch)]]
        sizes = np.array([g.size for g in gaps], dtype=np.int64)
        flat = np.concatenate(gaps).astype(np.float64)
        running = np.cumsum(flat)
        before = np.repeat(np.concatenate([[0.0], running[np.cumsum(sizes)[:-1] - 1]]), sizes)
        stamps = np.repeat(t0, sizes) + running - before  # each chunk after the first
        np.add.at(chunks, np.clip((stamps - start) // 1e9, 0, seconds).astype(np.int64), 1)
    s, e = np.sort(sent[have] - start), np.sort(end[have] - start)
    marks = np.arange(seconds) * 1e9
    active = np.searchsorted(s, marks + 1e9, side="left") - np.searchsorted(e, marks, side="left")
    return float(chunks.max()), int(active.max(initial=0))


def file_name(data: Mapping[str, Any]) -> str:
    """vLLM's default: ``{label or backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json``."""
    rate = data["request_rate"]
    rate_text = "inf" if rate == "inf" else str(float(rate))
    concurrency = (
        f"-concurrency{data['max_concurrency']}" if data.get("max_concurrency") is not None else ""
    )
    model = str(data.get("model_id") or "model").split("/")[-1]
    return f"{data.get('label') or data['backend']}-{rate_text}qps{concurrency}-{model}-{data['date']}.json"


def save(db_path: str | Path, run_ids: Sequence[int], options: Mapping[str, Any]) -> list[Path]:
    """Write each run's result file (``--save-result``); the paths written."""
    store = Store(db_path)
    written: list[Path] = []
    try:
        folder = Path(options.get("directory") or ".")
        for run_id in run_ids:
            data = result(
                store,
                store.run(run_id),
                label=options.get("label"),
                metrics=options["metrics"],
                percentiles=options["percentiles"],
                goodput=options["goodput"] or None,
                detailed=options["detailed"],
                metadata=options["metadata"],
            )
            name = options.get("filename") or file_name(data)
            path = folder / name
            # several runs into one named file, or the same name twice: one line each
            append = bool(options.get("append")) or path in written
            try:
                write(path, data, append=append)
            except OSError as exc:
                raise UsageError(f"cannot write the result file {path} ({exc.strerror})") from None
            if path not in written:
                written.append(path)
    finally:
        store.close()
    return written


def write(path: Path, data: Mapping[str, Any], *, append: bool) -> None:
    """One JSON document, or a line appended (``--append-result``: JSON Lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        lead = "\n" if path.exists() and path.stat().st_size else ""
        with path.open("a") as f:
            f.write(lead + json.dumps(data))
    else:
        path.write_text(json.dumps(data))


# -- reading (perfbench import) -------------------------------------------------------------

_FIGURES = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2el": "e2e_ms"}
_SCALARS = {
    "duration": "duration_s",
    "request_throughput": "req_per_s",
    "output_throughput": "output_tok_per_s",
    "total_token_throughput": "total_tok_per_s",
}
_REQUIRED = ("completed", "duration", "request_throughput", "output_throughput")


def read(path: Path, data: Any) -> list[Imported]:
    """A ``vllm bench serve --save-result`` file (one JSON document, or JSON Lines from
    ``--append-result``): a run per document. With ``--save-detailed`` its per-request arrays
    become requests; without, its own summary is all there is."""
    docs = data if isinstance(data, list) else [data]
    out = []
    for n, doc in enumerate(docs, 1):
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: line {n} is not a vllm bench serve result")
        need(doc, _REQUIRED, path, "vllm bench serve result")
        part = doc.get("label") or doc.get("backend") or "run"
        if len(docs) > 1:
            part = f"line {n}: {part}"
        out.append(_run(path, doc, str(part)))
    return out


def _run(path: Path, doc: Mapping[str, Any], part: str) -> Imported:
    figures: dict[str, Any] = {
        ours: number(doc.get(theirs)) for theirs, ours in _SCALARS.items() if theirs in doc
    }
    completed, failed = doc.get("completed"), doc.get("failed")
    if isinstance(completed, int):
        figures["ok"], figures["failed"] = completed, failed if isinstance(failed, int) else 0
    for theirs, ours in _FIGURES.items():
        dist: dict[str, Any] = {}
        for key, value in doc.items():
            m = re.fullmatch(rf"(mean|median|p[\d.]+)_{theirs}_ms", key)
            if m and number(value) is not None:
                label = {"mean": "mean", "median": "p50"}.get(m[1], m[1])
                dist[label] = number(value)
        if dist:
            figures[ours] = dist
    rate = math.inf if doc.get("request_rate") in ("inf", None) else number(doc["request_rate"])
    cap = doc.get("max_concurrency")
    load: dict[str, Any] = {"number": doc.get("num_prompts")}
    if doc.get("ramp_up_strategy"):
        load.update(
            ramp_from=number(doc.get("ramp_up_start_rps")),
            ramp_to=number(doc.get("ramp_up_end_rps")),
            max_concurrency=cap,
        )
    elif rate == math.inf and isinstance(cap, int):
        load["parallel"] = cap  # everything at once, C at a time: a closed loop of C
    else:
        load.update(rate=rate, max_concurrency=cap, burstiness=number(doc.get("burstiness")) or 1.0)
    return Imported(
        tool="vllm",
        version=doc.get("vllm_version") if isinstance(doc.get("vllm_version"), str) else None,
        part=part,
        model=doc.get("model_id"),
        endpoint=doc.get("base_url") or doc.get("endpoint"),
        load=load,
        native={k: v for k, v in doc.items() if not isinstance(v, list)},
        figures=figures,
        requests=_requests(path, doc),
        started_at=_date(doc.get("date")),
        api="openai-chat" if doc.get("backend") == "openai-chat" else "openai-completions",
        notes=(
            "vLLM counts input tokens with its own tokenizer and starts TTFT at the first "
            "chunk, an empty one included",
        ),
    )


def _requests(path: Path, doc: Mapping[str, Any]) -> tuple[Request, ...]:
    """``--save-detailed``'s arrays, one entry per request (ttfts, itls, latencies in seconds;
    start_times on the sending host's monotonic clock); none without them. Where a file has no
    ``latencies`` (vLLM before they were written), a request ends at its last token."""
    arrays = ("ttfts", "itls", "input_lens", "output_lens")
    if not all(isinstance(doc.get(k), list) for k in arrays):
        return ()
    n = len(doc["ttfts"])

    def listed(key: str) -> list[Any] | None:
        value = doc.get(key)
        return value if isinstance(value, list) else None

    errors = listed("errors") or [""] * n
    texts = listed("generated_texts") or []
    starts = listed("start_times")
    latencies = listed("latencies")
    lengths = {k: len(doc[k]) for k in arrays} | {"errors": len(errors)}
    for key, values in (("start_times", starts), ("latencies", latencies)):
        if values is not None:
            lengths[key] = len(values)
    if any(v != n for v in lengths.values()):
        raise UsageError(
            f"{path}: the per-request arrays differ in length ({lengths}); a truncated file?"
        )
    out = []
    for i in range(n):
        ok = not errors[i]
        ttft = number(doc["ttfts"][i]) if ok else None
        gaps = [number(g) or 0.0 for g in doc["itls"][i]] if ok else []
        chunks = list(itertools.accumulate(gaps, initial=ttft)) if ttft is not None else []
        end = chunks[-1] if chunks else None  # before vLLM wrote latencies: the last token
        out.append(
            Request(
                ok=ok,
                error=str(errors[i]) or None,
                start_s=number(starts[i]) if starts is not None else None,
                ttft_s=ttft,
                latency_s=number(latencies[i]) if latencies is not None and ok else end,
                chunks_s=chunks,
                prompt_tokens=int(doc["input_lens"][i]),
                output_tokens=int(doc["output_lens"][i]) if ok else None,
                text=str(texts[i]) if i < len(texts) and texts[i] is not None else "",
            )
        )
    return tuple(out)


def _date(text: Any) -> str | None:
    """vLLM's ``%Y%m%d-%H%M%S`` (local time, no zone) as ISO 8601."""
    try:
        return datetime.strptime(str(text), "%Y%m%d-%H%M%S").isoformat()
    except ValueError:
        return None
