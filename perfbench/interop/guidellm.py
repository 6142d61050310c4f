"""GuideLLM's ``benchmarks.json`` (report schema version 2, GuideLLM 0.8), read for
``perfbench import``: one run per benchmark (per rate or concurrency level).

Every request GuideLLM lists (``requests.successful``, ``errored``, ``incomplete``) becomes a
row, timed from its own send (``request_start``) on GuideLLM's wall clock: TTFT to the first
token-carrying iteration, the last token, the end, and the count of token-carrying chunks (the
file holds no time for each chunk, so the pooled chunk-gap ITL stays empty). Requests outside
the benchmark's measured window (its warm-up and cool-down) are marked warm-up, as GuideLLM
leaves them out of its own figures. GuideLLM's names differ from perfbench's: its
``inter_token_latency_ms`` is perfbench's TPOT (weighted by tokens, where perfbench averages over
requests), and its ``time_per_output_token_ms`` includes the TTFT, which nothing here does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from perfbench.errors import UsageError
from perfbench.interop.foreign import (
    Imported,
    Request,
    api_of,
    distribution,
    http_code,
    need,
    number,
)

_PERCENTILES = {
    "p10": "p10",
    "p25": "p25",
    "p50": "p50",
    "p75": "p75",
    "p90": "p90",
    "p95": "p95",
    "p99": "p99",
    "p999": "p99.9",
}


def read(path: Path, data: Any) -> list[Imported]:
    need(data, ("benchmarks",), path, "GuideLLM report")
    version = (data.get("metadata") or {}).get("guidellm_version")
    out = []
    for n, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict):
            raise UsageError(f"{path}: benchmark {n} is not an object; a truncated file?")
        need(bench, ("config", "metrics", "requests", "start_time", "end_time"), path,
             f"GuideLLM benchmark (number {n})")  # fmt: skip
        out.append(_run(path, bench, version))
    return out


def _run(path: Path, bench: dict[str, Any], version: str | None) -> Imported:
    config = bench["config"]
    strategy = config.get("strategy") or {}
    kind = str(strategy.get("type_") or "unknown")
    backend = config.get("backend") or {}
    lo, hi = number(bench["start_time"]), number(bench["end_time"])
    requests: list[Request] = []
    lists = bench["requests"] or {}
    for status in ("successful", "errored", "incomplete"):
        for entry in lists.get(status) or []:
            requests.append(_request(entry, status == "successful", lo, hi))
    requests.sort(key=lambda r: r.start_s if r.start_s is not None else float("inf"))
    metrics = bench["metrics"]

    def figure(name: str, scale: float = 1.0) -> dict[str, float]:
        summary = (metrics.get(name) or {}).get("successful")
        return distribution(summary, scale, _PERCENTILES)

    def mean(name: str) -> float | None:
        return number(((metrics.get(name) or {}).get("successful") or {}).get("mean"))

    totals = metrics.get("request_totals") or {}
    figures: dict[str, Any] = {
        "duration_s": number(bench.get("duration")),
        "req_per_s": mean("requests_per_second"),
        "output_tok_per_s": mean("output_tokens_per_second"),
        "total_tok_per_s": mean("tokens_per_second"),
        "ttft_ms": figure("time_to_first_token_ms"),
        "e2e_ms": figure("request_latency", 1e3),
        "ok": totals.get("successful"),
        "failed": (totals.get("errored") or 0) + (totals.get("incomplete") or 0),
    }
    level = strategy.get("rate") if kind in ("constant", "poisson") else strategy.get("streams")
    load: dict[str, Any] = {"number": len([r for r in requests if not r.warmup])}
    if kind in ("constant", "poisson"):
        load.update(rate=number(strategy.get("rate")), arrival=kind)
    elif kind == "throughput":
        load.update(rate=float("inf"), max_concurrency=strategy.get("max_concurrency"))
    else:  # synchronous, concurrent
        load["parallel"] = int(strategy.get("streams") or 1)
    target = str(backend.get("target") or "").rstrip("/")
    return Imported(
        tool="guidellm",
        version=version,
        part=f"{kind}@{level:g}" if isinstance(level, int | float) else kind,
        model=backend.get("model"),
        endpoint=target + str(backend.get("request_format") or "") if target else None,
        load=load,
        native={
            k: bench.get(k)
            for k in ("config", "metrics", "start_time", "end_time", "duration", "warnings")
        },  # fmt: skip
        figures=figures,
        requests=tuple(requests),
        started_at=datetime.fromtimestamp(lo, timezone.utc).isoformat() if lo else None,
        streamed=bool(backend.get("stream", True)),
        api=api_of(backend.get("request_format")),
        notes=(
            "GuideLLM's own TPOT includes the TTFT and its ITL is perfbench's TPOT weighted by "
            "tokens; its file has no per-chunk times, so the chunk-gap ITL is empty",
        ),
    )


def _request(entry: dict[str, Any], ok: bool, lo: float | None, hi: float | None) -> Request:
    info = entry.get("info") or {}
    timings = info.get("timings") or {}
    start = number(timings.get("request_start"))

    def since(key: str) -> float | None:
        t = number(timings.get(key))
        return t - start if t is not None and start is not None else None

    end = number(timings.get("request_end"))
    outside = (
        lo is not None
        and hi is not None
        and start is not None
        and ((end is not None and end < lo) or start > hi)
    )
    error = info.get("error")
    return Request(
        ok=ok,
        error=str(error) if error else None,
        start_s=start,
        ttft_s=since("first_token_iteration"),
        latency_s=since("request_end"),
        last_token_s=since("last_token_iteration"),
        n_chunks=timings.get("token_iterations") if ok else None,
        prompt_tokens=entry.get("prompt_tokens"),
        output_tokens=entry.get("output_tokens"),
        text=str(entry.get("output") or ""),
        http_status=http_code(error) if error and "StatusError" in str(error) else None,
        warmup=bool(outside),
    )
