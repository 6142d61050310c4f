"""EvalScope's ``perf`` output folder, written (``--evalscope-outputs``) and read
(``perfbench import``), so that scripts and dashboards that read it keep working
(docs/drop-in.md).

Written as EvalScope 1.14 writes it: ``<outputs-dir>/<YYYYMMDD_HHMMSS>/<name>/`` with one folder
per load level, ``parallel_<P>_number_<N>/`` or ``rate_<R>_number_<N>/``, each holding
``benchmark_summary.json`` (one flat object, EvalScope's keys in its order),
``benchmark_percentile.json`` (eleven rows: min, 1%, 5%, …, 99%, max, by nearest rank) and
``benchmark_args.json``. The figures are perfbench's own measurements (docs/metrics.md) under
EvalScope's definitions: the window from the first send to the last end; TTFT and TPOT over
streamed successes; ITL pooled over every gap between token-carrying chunks; the averages of
a level where every request failed are −1 (seconds) and −1000 (milliseconds), as EvalScope
writes them; an empty percentile column is ``NaN``, as EvalScope writes it.

Read: 1.x folders (keys in ms, ``Test Duration (s)``) and 0.x ones (keys in seconds, ``Time
taken for tests (s)``; a single level written without a level folder). The requests come from
the level's ``benchmark_data.db`` when it is there: its numeric columns only. Its
``response_messages`` column is a pickle, and a pickle from a file can run code when loaded, so
it is never read; a failed request's message is therefore not known.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.errors import UsageError
from perfbench.interop.foreign import Imported, Request, api_of, load, number
from perfbench.store.runs import Run, Store

SUMMARY, PERCENTILE, ARGS, DATA = (
    "benchmark_summary.json",
    "benchmark_percentile.json",
    "benchmark_args.json",
    "benchmark_data.db",
)
ROWS = ("min", "1%", "5%", "10%", "25%", "50%", "75%", "90%", "95%", "99%", "max")
_LEVEL = re.compile(r"^(parallel_(\d+)|rate_(-?[\d.]+))_number_(\d+)$")
_NONE_IS_ZERO = ("TPOT (ms)", "ITL (ms)", "TPOT (s)", "ITL (s)")
_COLUMNS = (
    "status", "streamed", "prompt_tokens", "completion_tokens", "ttft_ms", "tpot_ms", "e2e_ms",
    "sent_ns", "end_ns",
)  # fmt: skip


# -- writing ------------------------------------------------------------------------------------


def nearest_rank(values: np.ndarray, label: str) -> float:
    """EvalScope's percentile: ``data[ceil(n·p/100) − 1]`` of the sorted values (numpy's
    ``inverted_cdf``), min and max for ``min``/``max``; NaN for no values."""
    values = values[np.isfinite(values)]
    if not values.size:
        return math.nan
    if label == "min":
        return float(values.min())
    if label == "max":
        return float(values.max())
    return float(np.percentile(values, float(label.rstrip("%")), method="inverted_cdf"))


def result(store: Store, run: Run) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One level's ``benchmark_summary.json`` and ``benchmark_percentile.json`` contents."""
    from perfbench.metrics.summary import summarize

    cols = store.columns(run.id, _COLUMNS, where="AND warmup = 0")
    summary = summarize(store, run)
    ok = cols["status"] == "ok"
    streamed = cols["streamed"] == 1
    timed = ok & streamed if (ok & streamed).any() else ok  # EvalScope's fallback: all successes
    prompt, output = cols["prompt_tokens"], cols["completion_tokens"]
    latency_s = cols["e2e_ms"] / 1e3
    tpot = np.where(timed & (output > 1), cols["tpot_ms"], np.nan)
    tpot = np.where(tpot > 0, tpot, np.nan)
    gaps = np.empty(store.gap_count(run.id), dtype=np.float64)  # filled in batches: one copy
    at = 0
    for batch in store.iter_gaps(run.id):
        gaps[at : at + batch.size] = batch
        at += batch.size
    gaps /= 1e6
    window = summary.duration_s if math.isfinite(summary.duration_s) else 1.0
    n_ok = int(ok.sum())

    def avg(values: np.ndarray, empty: float) -> float:
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else empty

    data: dict[str, Any] = {
        "Test Duration (s)": round(window, 4),
        "Concurrency": run.load.parallel if not run.open_loop else -1,
        "Request Rate (req/s)": float(run.load.rate)
        if run.load.rate is not None and math.isfinite(run.load.rate)
        else -1.0,
        "Total Requests": int(ok.size),
        "Success Requests": n_ok,
        "Failed Requests": int(ok.size) - n_ok,
        "Stream Requests": int(streamed.sum()),
        "Non-Stream Requests": int((~streamed).sum()),
        "Req Throughput (req/s)": round(n_ok / window, 4),
        "Avg Latency (s)": round(avg(latency_s[ok], -1.0), 4),
        "Avg Input Tokens": round(avg(prompt[ok], -1.0), 4),
        "Output Throughput (tok/s)": round(float(np.nansum(output[ok])) / window, 4),
        "Total Throughput (tok/s)": round(float(np.nansum(prompt[ok] + output[ok])) / window, 4),
        "Avg TTFT (ms)": round(avg(cols["ttft_ms"][timed], -1000.0), 2),
        "Avg TPOT (ms)": round(avg(tpot, 0.0 if n_ok else -1000.0), 2),
        "Avg ITL (ms)": round(float(gaps.mean()) if gaps.size else 0.0, 2),
        "Avg Output Tokens": round(avg(output[ok], -1.0), 4),
        "Input Throughput (tok/s)": 0.0,
    }
    columns = {
        "Latency (s)": latency_s[ok],
        "TTFT (ms)": cols["ttft_ms"][timed],
        "ITL (ms)": gaps,
        "TPOT (ms)": tpot[timed],
        "Input tokens": prompt[ok],
        "Output tokens": output[ok],
        "Output (tok/s)": (output / latency_s)[ok],
        "Total (tok/s)": ((prompt + output) / latency_s)[ok],
        "Decode (tok/s)": 1e3 / tpot[timed],
    }
    rows = [
        {"Percentiles": label}
        | {
            name: round(nearest_rank(values.astype(np.float64), label), 4)
            for name, values in columns.items()
        }  # fmt: skip
        for label in ROWS
    ]
    return data, rows


def folder_name(text: str) -> str:
    """EvalScope's folder name for a model or ``--name``: the characters a file system refuses
    replaced by ``_``."""
    return re.sub(r'[<>:"|?*\\/\x00]', "_", text)


def level_name(run: Run, number_of: int) -> str:
    if run.open_loop:
        rate = run.load.rate if run.load.rate is not None else -1.0
        return f"rate_{float(rate)}_number_{number_of}"
    return f"parallel_{run.load.parallel}_number_{number_of}"


def save(
    db_path: str | Path,
    run_ids: Sequence[int],
    outputs_dir: str | Path,
    *,
    name: str | None = None,
    timestamp: bool = True,
) -> Path:
    """Write the runs as levels of one EvalScope output folder; the folder written."""
    store = Store(db_path)
    try:
        runs = [store.run(i) for i in run_ids]
        top = Path(outputs_dir)
        if timestamp:
            top /= datetime.now().strftime("%Y%m%d_%H%M%S")
        top /= folder_name(name or str(runs[0].model or "model").split("/")[-1])
        repeated = any(run.replicate for run in runs)
        for run in runs:
            data, rows = result(store, run)
            level = top / level_name(run, data["Total Requests"])
            if repeated:  # --repeat: each replicate's levels in a folder of their own
                level = top / f"replicate_{run.replicate or 1}" / level.name
            try:
                level.mkdir(parents=True, exist_ok=True)
                _dump(level / SUMMARY, data)
                _dump(level / PERCENTILE, rows)
                _dump(level / ARGS, _args(run, level))
            except OSError as exc:
                raise UsageError(
                    f"cannot write EvalScope's files in {level} ({exc.strerror})"
                ) from None
    finally:
        store.close()
    return top


def _args(run: Run, level: Path) -> dict[str, Any]:
    """``benchmark_args.json``: the level's settings under EvalScope's argument names."""
    client, workload, load_ = run.client, run.workload, run.load
    return {
        "model": run.model,
        "model_id": str(run.model or "").split("/")[-1],
        "api": "openai",
        "url": run.endpoint,
        "number": load_.planned,
        "parallel": load_.parallel if not run.open_loop else None,
        "rate": float(load_.rate) if load_.rate is not None and math.isfinite(load_.rate) else -1.0,
        "open_loop": run.open_loop,
        "warmup_num": load_.warmup,
        "duration": load_.duration,
        "dataset": workload.get("dataset"),
        "dataset_path": workload.get("dataset_path"),
        "max_tokens": client.get("max_tokens"),
        "stream": client.get("stream", True),
        "temperature": client.get("temperature"),
        "seed": load_.seed,
        "outputs_dir": str(level),
        "perfbench_run_id": run.id,
    }


def _dump(path: Path, data: Any) -> None:
    """As EvalScope writes: indented, UTF-8, NaN written bare (its readers take it)."""
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False), encoding="utf-8")


# -- reading (perfbench import) -------------------------------------------------------------------


def levels(path: Path) -> list[Path]:
    """The level folders of an EvalScope output (a level folder, its summary file, or any
    folder above that holds them), in EvalScope's own order: by parallel or rate, then number."""
    if path.is_file():
        return [path.parent]
    if (path / SUMMARY).is_file():
        return [path]
    found = sorted(
        (p.parent for p in path.rglob(SUMMARY)),
        key=lambda p: (_level_key(p.name), str(p)),
    )
    return found


def _level_key(name: str) -> tuple[float, int]:
    m = _LEVEL.match(name)
    if not m:
        return (math.inf, 0)
    return (float(m[2] or m[3]), int(m[4]))


def read(path: Path, data: Any = None) -> list[Imported]:
    """Every level under ``path`` (a folder, or a ``benchmark_summary.json``)."""
    found = levels(path)
    if not found:
        raise UsageError(f"{path}: no {SUMMARY} in it; give an evalscope perf output folder")
    return [_level(folder) for folder in found]


def _level(folder: Path) -> Imported:
    summary = load(folder / SUMMARY)
    if not isinstance(summary, dict):
        raise UsageError(f"{folder / SUMMARY}: not an evalscope perf summary")
    old = "Time taken for tests (s)" in summary
    if not old and "Test Duration (s)" not in summary:
        raise UsageError(
            f"{folder / SUMMARY}: not a complete evalscope perf summary (no 'Test Duration (s)')"
        )
    rows = load(folder / PERCENTILE) if (folder / PERCENTILE).is_file() else []
    args = load(folder / ARGS) if (folder / ARGS).is_file() else {}
    args = args if isinstance(args, dict) else {}
    figures = _figures(summary, _rows(rows, folder), old)
    parallel, rate = args.get("parallel"), number(args.get("rate"))
    m = _LEVEL.match(folder.name)
    if m and parallel is None and m[2]:
        parallel = int(m[2])
    load_: dict[str, Any] = {"number": args.get("number") or summary.get("Total Requests")}
    if args.get("open_loop") or (m and m[3]) or (rate is not None and rate > 0 and not parallel):
        load_["rate"] = rate if rate is not None and rate > 0 else math.inf
    else:
        load_["parallel"] = int(parallel or summary.get("Number of concurrency") or 1)
    version = "0.x" if old else "1.x"
    db = folder / DATA
    return Imported(
        tool="evalscope",
        version=version,
        part=folder.name if m else f"parallel_{load_.get('parallel')}",
        model=args.get("model") or args.get("model_id"),
        endpoint=args.get("url"),
        load=load_,
        native={"summary": summary, "percentiles": rows, "args": args},
        figures=figures,
        requests=_requests(db, old) if db.is_file() else (),
        started_at=_started(folder),
        streamed=bool(args.get("stream", True)),
        api=api_of(args.get("url")),
        notes=(
            (
                "EvalScope 0.x stamps every server event, the empty role chunk and the usage "
                "chunk included: its TTFT, chunk gaps and latency are not perfbench's"
            )
            if old
            else "EvalScope's percentiles are nearest-rank; perfbench's interpolate",
        ),
    )


def _rows(rows: Any, folder: Path) -> dict[str, dict[str, float]]:
    """The percentile file as {column: {perfbench label: value}}: a list of rows, or a dict
    of lists (both are EvalScope's)."""
    if isinstance(rows, dict):
        labels = rows.get("Percentiles") or []
        rows = [{k: v[i] for k, v in rows.items() if i < len(v)} for i in range(len(labels))]
    if not isinstance(rows, list):
        raise UsageError(f"{folder / PERCENTILE}: not a list of percentile rows")
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        label = str(row.get("Percentiles", row.get("Percentile", ""))).rstrip("%")
        if label in ("min", "max", ""):
            continue
        for column, value in row.items():
            if number(value) is not None:
                out.setdefault(column, {})[f"p{float(label):g}"] = float(value)
    return out


def _figures(
    summary: Mapping[str, Any], rows: Mapping[str, Mapping[str, float]], old: bool
) -> dict[str, Any]:
    def get(*keys: str) -> float | None:
        for key in keys:
            if number(summary.get(key)) is not None:
                return number(summary[key])
        return None

    def dist(mean: float | None, column: str, scale: float) -> dict[str, float]:
        out = {k: v * scale for k, v in rows.get(column, {}).items()}
        # −1 and −1000: every request failed; a TPOT or ITL of 0: there was none to average
        if mean is not None and mean > -1 and (mean > 0 or column not in _NONE_IS_ZERO):
            out["mean"] = mean * scale
        return out

    if old:
        figures: dict[str, Any] = {
            "duration_s": get("Time taken for tests (s)"),
            "req_per_s": get("Request throughput (req/s)"),
            "output_tok_per_s": get("Output token throughput (tok/s)"),
            "total_tok_per_s": get("Total token throughput (tok/s)"),
            "ok": summary.get("Succeed requests"),
            "failed": summary.get("Failed requests"),
            "ttft_ms": dist(get("Average time to first token (s)"), "TTFT (s)", 1e3),
            "tpot_ms": dist(get("Average time per output token (s)"), "TPOT (s)", 1e3),
            "itl_ms": dist(get("Average inter-token latency (s)"), "ITL (s)", 1e3),
            "e2e_ms": dist(get("Average latency (s)"), "Latency (s)", 1e3),
        }
    else:
        figures = {
            "duration_s": get("Test Duration (s)"),
            "req_per_s": get("Req Throughput (req/s)", "Request throughput (req/s)"),
            "output_tok_per_s": get("Output Throughput (tok/s)"),
            "total_tok_per_s": get("Total Throughput (tok/s)"),
            "ok": summary.get("Success Requests"),
            "failed": summary.get("Failed Requests"),
            "ttft_ms": dist(get("Avg TTFT (ms)", "TTFT (ms)"), "TTFT (ms)", 1.0),
            "tpot_ms": dist(get("Avg TPOT (ms)", "TPOT (ms)"), "TPOT (ms)", 1.0),
            "itl_ms": dist(get("Avg ITL (ms)", "ITL (ms)"), "ITL (ms)", 1.0),
            "e2e_ms": dist(get("Avg Latency (s)"), "Latency (s)", 1e3),
        }
    figures["prompt_tokens"] = dist(None, "Input tokens", 1.0)
    figures["completion_tokens"] = dist(None, "Output tokens", 1.0)
    return figures


def _requests(db: Path, old: bool) -> tuple[Request, ...]:
    """The level's requests from EvalScope's ``benchmark_data.db``, numeric columns only (the
    only SQL outside perfbench/store: it reads EvalScope's file, read-only)."""
    chunks = "chunk_times" if old else "inter_token_latencies"
    stream = "1" if old else "is_stream"
    query = (
        f"SELECT start_time, {chunks}, success, completed_time, latency, first_chunk_latency, "
        f"prompt_tokens, completion_tokens, {stream} FROM result ORDER BY start_time"
    )
    try:
        conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            # a file from elsewhere: its schema may not call functions with side effects
            conn.execute("PRAGMA trusted_schema = OFF")
            rows = conn.execute(query).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise UsageError(f"{db}: not an evalscope perf database ({exc})") from None
    out = []
    for start, times, success, completed, latency, first, prompt, completion, _ in rows:
        try:
            stamps = [float(t) for t in json.loads(times or "[]")]
        except (ValueError, TypeError):
            raise UsageError(f"{db}: a request's {chunks} is not a list of numbers") from None
        ok = bool(success)
        if old:  # absolute stamps of every event
            arrivals = [t - start for t in stamps] if ok and start is not None else []
        elif ok and first is not None:  # the first content chunk, then the gaps after it
            arrivals = list(itertools.accumulate(stamps, initial=float(first)))
        else:
            arrivals = []
        end = completed - start if completed is not None and start is not None else latency
        out.append(
            Request(
                ok=ok,
                error=None
                if ok
                else "failed (EvalScope keeps the reason pickled, which perfbench does not load)",
                start_s=number(start),
                ttft_s=number(first) if ok else None,
                latency_s=number(end),
                chunks_s=arrivals,
                prompt_tokens=prompt if ok else None,
                output_tokens=completion if ok else None,
            )
        )
    return tuple(out)


def _started(folder: Path) -> str | None:
    """The run's start from EvalScope's ``YYYYMMDD_HHMMSS`` folder above the level, if any."""
    for part in (folder, *folder.parents)[:4]:
        try:
            return datetime.strptime(part.name, "%Y%m%d_%H%M%S").isoformat()
        except ValueError:
            continue
    return None
