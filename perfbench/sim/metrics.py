"""``GET /metrics``: the engine's state in Prometheus text format, under vLLM's metric names.

Scrapers written for vLLM (a perfbench run sampling queue depth and KV usage, a Grafana board)
work unchanged: the same names, the same ``model_name`` label, gauges for the running and waiting
queues and KV usage (both the current ``vllm:kv_cache_usage_perc`` and the older
``vllm:gpu_cache_usage_perc``; 0..1 despite the name), counters for tokens and finished requests,
and histograms for time to first token and end-to-end latency.

Every value is the engine's own state when the page is rendered: the running and waiting gauges
are its queues, KV usage the share of ``--kv-tokens`` reserved by running requests (the engine
reserves a request's whole footprint on admission, so usage stops one request short of 100%
when the cache is the limit), prompt tokens count on admission and generated tokens as each is
written. The engine never preempts, so ``vllm:num_preemptions_total`` is always 0.
``--burst`` requests skip the engine: they move the token counters but never the gauges.
"""

from __future__ import annotations

from .engine import Engine, Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(engine: Engine, model_name: str) -> str:
    label = f'model_name="{model_name}"'
    stats = engine.stats
    kv = engine.kv_reserved / engine.kv_tokens  # what admission is limited by (engine docstring)
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, value: float, extra: str = "") -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.append(f"{name}{{{extra}{label}}} {float(value)!r}")

    metric(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        engine.running_requests,
    )
    metric(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        engine.num_waiting,
    )
    metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", kv)
    metric(
        "vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", kv
    )
    metric("vllm:num_preemptions_total", "counter", "Cumulative number of preemptions.", 0)
    metric(
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        stats.prompt_tokens,
    )
    metric(
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        stats.generation_tokens,
    )
    metric(
        "vllm:prefix_cache_queries_total",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        stats.prefix_queries,
    )
    metric(
        "vllm:prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        stats.prefix_hits,
    )
    out.append("# HELP vllm:request_success_total Count of successfully processed requests.")
    out.append("# TYPE vllm:request_success_total counter")
    for reason, count in stats.finished.items():
        if reason != "abort":
            out.append(
                f'vllm:request_success_total{{finished_reason="{reason}",{label}}} {float(count)!r}'
            )
    _histogram(
        out,
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        stats.ttft,
        label,
    )
    _histogram(
        out,
        "vllm:e2e_request_latency_seconds",
        "Histogram of end to end request latency in seconds.",
        stats.e2e,
        label,
    )
    return "\n".join(out) + "\n"


def _histogram(out: list[str], name: str, help_: str, hist: Histogram, label: str) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} histogram")
    for bound, count in zip(hist.buckets, hist.cumulative(), strict=True):
        out.append(f'{name}_bucket{{le="{bound!r}",{label}}} {float(count)!r}')
    out.append(f'{name}_bucket{{le="+Inf",{label}}} {float(hist.count)!r}')
    out.append(f"{name}_count{{{label}}} {float(hist.count)!r}")
    out.append(f"{name}_sum{{{label}}} {hist.total!r}")
