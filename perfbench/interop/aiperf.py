"""AIPerf's ``profile_export_aiperf.json`` (export schema 1.x, AIPerf 0.13), read for
``perfbench import``, with the per-request ``profile_export.jsonl`` beside it when it is there.

From the JSON Lines every request becomes a row, timed on AIPerf's wall clock from its send
(``request_start_ns``): TTFT, each chunk's arrival (``inter_chunk_latency``, the gaps perfbench
calls ITL) and the last one; warm-up requests are marked warm-up. AIPerf ends a request at its
last content chunk, not at the end of the stream, and counts tokens with the client's tokenizer
unless it has the server's usage, which is preferred here. Without the JSON Lines the summary is
all there is: AIPerf's ``inter_token_latency`` is perfbench's TPOT (both a plain mean over
requests of (latency − TTFT)/(tokens − 1)), its ``inter_chunk_latency`` perfbench's ITL, and its
throughputs divide by the profiling phase's window, a little longer than ``benchmark_duration``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from perfbench.errors import UsageError
from perfbench.interop.foreign import Imported, Request, distribution, need, number

EXPORT, JSONL = "profile_export_aiperf.json", "profile_export.jsonl"
_PERCENTILES = {p: p for p in ("p10", "p25", "p50", "p75", "p90", "p95", "p99")}
_FIGURES = {
    "time_to_first_token": "ttft_ms",
    "inter_token_latency": "tpot_ms",
    "inter_chunk_latency": "itl_ms",
    "request_latency": "e2e_ms",
    "input_sequence_length": "prompt_tokens",
    "output_sequence_length": "completion_tokens",
}


def read(path: Path, data: Any) -> list[Imported]:
    need(data, ("request_throughput", "request_count", "input_config"), path, "AIPerf export")
    config = data["input_config"] or {}
    endpoint = config.get("endpoint") or {}
    models = (config.get("models") or {}).get("items") or [{}]
    profiling = [p for p in config.get("phases") or [] if p.get("kind") == "profiling"]
    phase = profiling[0] if profiling else {}
    figures: dict[str, Any] = {
        "duration_s": _avg(data, "benchmark_duration"),
        "req_per_s": _avg(data, "request_throughput"),
        "output_tok_per_s": _avg(data, "output_token_throughput"),
        "total_tok_per_s": _avg(data, "total_token_throughput"),
        "ok": int(_avg(data, "request_count") or 0),
        "failed": int(_avg(data, "error_request_count") or 0),
    }
    for theirs, ours in _FIGURES.items():
        if isinstance(data.get(theirs), dict):
            figures[ours] = distribution(data[theirs], 1.0, _PERCENTILES)
    load: dict[str, Any] = {"number": phase.get("requests")}
    if phase.get("type") == "concurrency":
        load["parallel"] = phase.get("concurrency")
    elif phase.get("rate") is not None:
        load.update(rate=number(phase["rate"]), max_concurrency=phase.get("concurrency"))
        if phase.get("type") == "constant":
            load["arrival"] = "constant"
    urls = endpoint.get("urls") or [None]
    level = load.get("parallel") or load.get("rate")
    return [
        Imported(
            tool="aiperf",
            version=data.get("aiperf_version"),
            part=f"{phase.get('type', 'profiling')} {level:g}"
            if isinstance(level, int | float)
            else str(phase.get("type", "profiling")),
            model=models[0].get("name"),
            endpoint=urls[0],
            load=load,
            native={k: v for k, v in data.items() if k != "telemetry_data"},
            figures=figures,
            requests=_requests(path.parent / JSONL),
            started_at=data.get("start_time"),
            streamed=bool(endpoint.get("streaming", False)),
            api={"chat": "openai-chat", "completions": "openai-completions"}.get(
                str(endpoint.get("type"))
            ),
            notes=(
                "AIPerf ends a request at its last content chunk and calls perfbench's TPOT "
                "its inter-token latency",
            ),
        )
    ]


def _avg(data: dict[str, Any], key: str) -> float | None:
    entry = data.get(key)
    return number(entry.get("avg")) if isinstance(entry, dict) else None


def _requests(path: Path) -> tuple[Request, ...]:
    """The JSON Lines' requests, in send order; none when the file is not there."""
    if not path.is_file():
        return ()
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise UsageError(f"{path}: line {n} is not JSON; a truncated file?") from None
            out.append(_request(record))
    out.sort(key=lambda r: r.start_s if r.start_s is not None else float("inf"))
    return tuple(out)


def _request(record: dict[str, Any]) -> Request:
    meta = record.get("metadata") or {}
    metrics = record.get("metrics") or {}

    def value(key: str) -> Any:
        entry = metrics.get(key)
        return entry.get("value") if isinstance(entry, dict) else None

    def tokens(*keys: str) -> int | None:
        for key in keys:
            v = value(key)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return int(v)
        return None

    start = meta.get("request_start_ns")
    error = record.get("error")
    ttft = number(value("time_to_first_token"))
    gaps = value("inter_chunk_latency")
    chunks: list[float] = []
    if ttft is not None:
        steps = [number(g) or 0.0 for g in gaps] if isinstance(gaps, list) else []
        chunks = [t / 1e3 for t in itertools.accumulate(steps, initial=ttft)]
    latency = number(value("request_latency"))
    text = None
    if isinstance(error, dict):
        text = f"{error.get('code', '')} {error.get('type', '')}: {error.get('message', '')}"
    elif meta.get("was_cancelled"):
        text = "cancelled when the run stopped"
    return Request(
        ok=text is None,
        error=text.strip() if text else None,
        start_s=start / 1e9 if isinstance(start, int) else None,
        ttft_s=ttft / 1e3 if ttft is not None else None,
        latency_s=latency / 1e3 if latency is not None else None,
        chunks_s=chunks,
        prompt_tokens=tokens("usage_prompt_tokens", "input_sequence_length", "error_isl"),
        output_tokens=tokens("usage_completion_tokens", "output_sequence_length"),
        http_status=error.get("code") if isinstance(error, dict) and error.get("code") else None,
        warmup=meta.get("benchmark_phase") == "warmup",
    )
