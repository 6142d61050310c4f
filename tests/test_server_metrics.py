"""Server metrics: parsing each engine's names, and scraping the real simulator during runs.

The runs are real: ``perfbench.run`` against a ``perfbench sim`` subprocess (or, for a server
without ``/metrics``, a small aiohttp app on 127.0.0.1), and the figures are checked against
what the simulator's own queues and counters must have been, and against what the client
recorded request by request.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from rich.console import Console

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.client.servermetrics import metrics_url, parse
from perfbench.config import ServerMetricsSpec
from perfbench.errors import ConfigError, ServerRejected
from perfbench.metrics.server import kv_bound, summarize_samples
from perfbench.report import print_report, to_csv, to_json
from tests.conftest import rows

# -- parsing: text written here, in each engine's shape -----------------------------------------

VLLM_TEXT = """\
# HELP vllm:num_requests_running Requests in the batch.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 4.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 0.0
vllm:num_requests_waiting{engine="1",model_name="m"} 6.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 2.0
vllm:num_preemptions_total{engine="1",model_name="m"} 1.0
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1.5e+03
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 4000.0
vllm:generation_tokens_total{engine="1",model_name="m"} 250.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 5.0
vllm:time_to_first_token_seconds_count{model_name="m"} 5.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.9
# TYPE vllm:num_requests_running_extra gauge
vllm:num_requests_running_extra{model_name="m"} 99.0
"""

SGLANG_TEXT = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="q",tp_rank="0"} 12.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="q",tp_rank="0"} 5
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="q",tp_rank="0"} 0.93
# TYPE sglang:num_retracted_reqs gauge
sglang:num_retracted_reqs{model_name="q",pid="7"} 1
# TYPE sglang:num_retracted_requests_total counter
sglang:num_retracted_requests_total{model_name="q"} 4
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="q"} 777
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="q"} 1234
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{model_name="q"} 321.5
"""


def test_vllm_names_sum_label_sets_and_take_the_fullest_cache() -> None:
    for prefilter in (True, False):
        got = parse(VLLM_TEXT, prefilter=prefilter)
        assert got == {
            "running": ("vllm:num_requests_running", 7.0),
            "waiting": ("vllm:num_requests_waiting", 6.0),
            # the current name wins over the old one; the fullest engine's cache
            "kv_usage": ("vllm:kv_cache_usage_perc", 0.75),
            "preemptions": ("vllm:num_preemptions_total", 3.0),
            "prompt_tokens": ("vllm:prompt_tokens_total", 1500.0),
            "generation_tokens": ("vllm:generation_tokens_total", 4250.0),
        }


def test_older_vllm_kv_name_and_sglang_names() -> None:
    old = VLLM_TEXT.replace("vllm:kv_cache_usage_perc", "vllm:something_else")
    assert parse(old)["kv_usage"] == ("vllm:gpu_cache_usage_perc", 0.5)
    got = parse(SGLANG_TEXT)
    assert got == {
        "running": ("sglang:num_running_reqs", 12.0),
        "waiting": ("sglang:num_queue_reqs", 5.0),
        "kv_usage": ("sglang:token_usage", 0.93),
        # the retraction counter, not the last batch's gauge
        "preemptions": ("sglang:num_retracted_requests_total", 4.0),
        "prompt_tokens": ("sglang:prompt_tokens_total", 777.0),
        "generation_tokens": ("sglang:generation_tokens_total", 1234.0),
    }
    underscored = SGLANG_TEXT.replace("sglang:", "sglang_")
    assert {k: v for k, (_, v) in parse(underscored).items()} == {k: v for k, (_, v) in got.items()}


def test_lmdeploy_names() -> None:
    text = (
        'lmdeploy:num_requests_running{model_name="x",engine="0"} 2\n'
        'lmdeploy:num_requests_waiting{model_name="x",engine="0"} 1\n'
        'lmdeploy:gpu_cache_usage_perc{model_name="x",engine="0"} 0.4\n'
        'lmdeploy:prompt_tokens_total{model_name="x",engine="0"} 10\n'
        'lmdeploy:generation_tokens_total{model_name="x",engine="0"} 20\n'
    )
    assert {k: v for k, (_, v) in parse(text).items()} == {
        "running": 2.0,
        "waiting": 1.0,
        "kv_usage": 0.4,
        "prompt_tokens": 10.0,
        "generation_tokens": 20.0,
    }


def test_a_page_that_is_not_prometheus_text_is_refused() -> None:
    with pytest.raises(ValueError):
        parse("<html><body>Not Found</body></html>", prefilter=False)
    assert parse("process_cpu_seconds_total 1.5\n", prefilter=False) == {}


def test_metrics_url_is_the_server_root() -> None:
    assert metrics_url("http://h:8000/v1/chat/completions") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000/v1/completions") == "http://h:8000/metrics"
    assert (
        metrics_url("https://gw/team/llama/v1/chat/completions") == "https://gw/team/llama/metrics"
    )
    assert metrics_url("http://h:8000/v1abc/chat/completions") == (
        "http://h:8000/v1abc/chat/completions/metrics"
    )


def test_server_metrics_spec_is_validated() -> None:
    for bad in (0.0, 0.05, float("nan"), 7200.0):
        with pytest.raises(ConfigError, match="--server-metrics-interval"):
            ServerMetricsSpec(interval=bad)
    with pytest.raises(ConfigError, match="--server-metrics-url"):
        ServerMetricsSpec(url="ftp://h/metrics")


# -- the figures: counters with a restart, time-weighted gauges, the KV-bound verdict -----------


def test_counter_restart_time_weighted_mean_and_the_window() -> None:
    s = 1_000_000_000
    t = np.array([0, s // 100, s, 2 * s, 3 * s, 4 * s], dtype=np.int64)
    series = {
        # the server restarted between 2 s and 3 s: 1 + 49 + 20, then 30 (from 0), then 10
        "generation_tokens": (t, np.array([100.0, 101.0, 150.0, 170.0, 30.0, 40.0])),
        "running": (t, np.array([0.0, 8.0, 8.0, 8.0, 8.0, 0.0])),
        "kv_usage": (t, np.array([0.0, 0.2, 0.4, 0.4, 0.4, 0.0])),
        "waiting": (t, np.zeros(6)),
        "preemptions": (t, np.zeros(6)),
    }
    got = summarize_samples(series, interval=1.0)
    assert got["generation_tokens"] == 110.0
    assert got["generation_tok_per_s"]["mean"] == pytest.approx(27.5)
    # the 10 ms interval after the first sample (1 token) is left out of the peak
    assert got["generation_tok_per_s"]["peak"] == pytest.approx(49 / 0.99)
    assert got["running"]["peak"] == 8.0
    # the idle boundary samples (before the first request, after the last) are left out
    assert got["running"]["mean"] == pytest.approx(8.0)
    assert got["kv_usage_pct"]["mean"] == pytest.approx((0.3 * 0.99 + 0.4 * 2) / 2.99 * 100)
    assert got["kv_usage_pct"]["peak"] == pytest.approx(40.0)
    assert got["samples"] == 6 and got["window_s"] == 4.0
    assert got["preemptions"] == 0.0 and not got["kv_bound"]
    windowed = summarize_samples(series, window_ns=(s, 2 * s), interval=1.0)
    assert windowed["generation_tokens"] == 20.0 and windowed["samples"] == 2


def test_kv_bound_verdicts() -> None:
    assert not kv_bound({})
    t = np.arange(4, dtype=np.int64) * 1_000_000_000
    waiting = (t, np.array([0.0, 5.0, 5.0, 0.0]))
    tight = {"waiting": waiting, "kv_usage": (t, np.array([0.5, 0.95, 0.92, 0.4]))}
    assert kv_bound(summarize_samples(tight))  # every sample with a queue had a tight cache
    roomy = {"waiting": waiting, "kv_usage": (t, np.array([0.5, 0.6, 0.92, 0.4]))}
    assert summarize_samples(roomy)["kv_tight_share"] == 0.5
    full = {"kv_usage": (t, np.array([0.5, 1.0, 0.7, 0.4]))}
    assert kv_bound(summarize_samples(full))
    preempted = {"preemptions": (t, np.array([0.0, 0.0, 2.0, 2.0]))}
    assert kv_bound(summarize_samples(preempted))


# -- real runs against the simulator ---------------------------------------------------------------


def _spec(url: str, db: Path, load: LoadSpec, **client: object) -> PerfSpec:
    return PerfSpec(
        client=ClientSpec(url=url, **client),  # type: ignore[arg-type]
        loads=(load,),
        db_path=db,
        server_metrics=ServerMetricsSpec(interval=0.2),
    )


def _report_text(summaries: list[object]) -> str:
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    print_report(summaries, console=console)  # type: ignore[arg-type]
    console.file.close()
    return console.export_text()


def test_scraped_from_the_simulator_agrees_with_its_cap_and_the_client(sim, tmp_path):
    """--max-num-seqs 8 under 32 workers: 8 run, about 24 wait, and the server's token counters
    move by exactly what the client recorded for the measured requests (warm-up excluded)."""
    url = sim("--max-num-seqs", "8", "--itl-ms", "4", "--ttft-ms", "10", "--seed", "5")
    db = tmp_path / "p.db"
    load = LoadSpec(parallel=32, number=192, warmup=8)
    result = run(_spec(url, db, load, max_tokens=32, min_tokens=32))
    summary = result.runs[0].summary
    assert summary.ok == 192
    sv = summary.server
    assert sv["available"] and sv["scrape_errors"] == 0
    assert sv["names"]["running"] == "vllm:num_requests_running"
    assert sv["running"]["peak"] == 8
    assert 20 <= sv["waiting"]["peak"] <= 24
    assert sv["samples"] >= 5
    assert sv["preemptions"] == 0  # the simulator never preempts
    assert not kv_bound(summary.server)  # the cap on sequences is the limit, not the cache

    (completion, prompt) = rows(
        db,
        "SELECT sum(completion_tokens), sum(prompt_tokens) FROM requests "
        "WHERE run_id = ? AND warmup = 0",
        (summary.run_id,),
    )[0]
    assert sv["generation_tokens"] == completion == 192 * 32
    assert sv["prompt_tokens"] == prompt
    # the stored series: eight keys per scrape, stamped on the run's clock
    stored = rows(
        db,
        "SELECT name, count(*), max(value), min(t_ns) FROM server_metrics WHERE run_id = ? "
        "GROUP BY name",
        (summary.run_id,),
    )
    assert {r[0] for r in stored} == {
        "running",
        "waiting",
        "kv_usage",
        "preemptions",
        "prompt_tokens",
        "generation_tokens",
        "prefix_queries",
        "prefix_hits",
    }
    assert all(r[3] >= 0 for r in stored)
    assert dict((r[0], r[2]) for r in stored)["running"] == 8
    server = json.loads(rows(db, "SELECT server FROM runs")[0][0])
    assert server["metrics"]["names"]["generation_tokens"] == "vllm:generation_tokens_total"
    assert server["metrics"]["url"].endswith("/metrics")

    text = _report_text([summary])
    assert "Server metrics · run" in text and "Running requests" in text
    data = json.loads(to_json([summary]))
    assert data["schema_version"] == 1
    assert data["runs"][0]["server"]["running"]["peak"] == 8
    header = to_csv([summary]).splitlines()[0].split(",")
    assert "server_running_peak" in header and "server_generation_tok_per_s_mean" in header


def test_a_full_kv_cache_is_called_out(sim, tmp_path):
    """--kv-tokens 1000 and 300-token outputs: three requests fit, the fourth waits for cache
    space, so the run is KV-bound and its report says so."""
    url = sim("--kv-tokens", "1000", "--max-model-len", "1000", "--itl-ms", "1", "--seed", "6")
    load = LoadSpec(parallel=8, number=24)
    result = run(_spec(url, tmp_path / "kv.db", load, max_tokens=300, min_tokens=300))
    summary = result.runs[0].summary
    sv = summary.server
    assert sv["running"]["peak"] == 3
    assert sv["kv_usage_pct"]["peak"] >= 90
    assert kv_bound(summary.server)
    assert any("KV cache was full" in w for w in summary.warnings)


# -- a server without /metrics ------------------------------------------------------------------


class _Plain:
    """An OpenAI-style streaming server on 127.0.0.1 with no ``/metrics`` (or an HTML one)."""

    def __init__(self, metrics_html: bool = False) -> None:
        self.metrics_html = metrics_html
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.metrics_html:
            app.router.add_get("/metrics", self._html)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "plain"}]})

    async def _html(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>metrics live elsewhere</html>", content_type="text/html")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "plain"}
        for delta in ({"role": "assistant", "content": ""}, {"content": "hi"}, {"content": "!"}):
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        await resp.write(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode())
        await resp.write(b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def __enter__(self) -> _Plain:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def plain() -> Iterator[_Plain]:
    with _Plain() as server:
        yield server


def test_auto_mode_without_metrics_runs_and_says_not_available(plain, tmp_path):
    db = tmp_path / "plain.db"
    result = run(_spec(plain.url, db, LoadSpec(parallel=2, number=6)))
    summary = result.runs[0].summary
    assert result.exit_code == 0 and summary.ok == 6
    assert summary.server == {
        "available": False,
        "reason": f"{plain.url}/metrics answered HTTP 404",
    }
    assert not any("metrics" in w for w in summary.warnings)
    text = _report_text([summary])
    lines = [line for line in text.splitlines() if "server metrics" in line]
    assert lines == [f"server metrics: not available ({plain.url}/metrics answered HTTP 404)"]
    assert rows(db, "SELECT count(*) FROM server_metrics")[0][0] == 0


def test_required_mode_without_metrics_stops_before_the_run(plain, tmp_path):
    db = tmp_path / "req.db"
    spec = _spec(plain.url, db, LoadSpec(parallel=1, number=2))
    spec = PerfSpec(
        client=spec.client,
        loads=spec.loads,
        db_path=db,
        server_metrics=ServerMetricsSpec(enabled=True),
    )
    with pytest.raises(ServerRejected) as info:
        run(spec)
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert "--server-metrics" in message and "HTTP 404" in message
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == 0


def test_a_metrics_page_that_is_not_prometheus_is_not_available(tmp_path):
    with _Plain(metrics_html=True) as server:
        result = run(_spec(server.url, tmp_path / "html.db", LoadSpec(parallel=1, number=2)))
    reason = result.runs[0].summary.server["reason"]
    assert "is not Prometheus text" in reason


def test_off_means_no_scrape_and_no_line(sim, tmp_path):
    url = sim("--preset", "instant", "--seed", "7")
    db = tmp_path / "off.db"
    spec = PerfSpec(
        client=ClientSpec(url=url),
        loads=(LoadSpec(parallel=2, number=4),),
        db_path=db,
        server_metrics=ServerMetricsSpec(enabled=False),
    )
    summary = run(spec).runs[0].summary
    assert summary.server == {"available": False, "reason": "off"}
    assert "server metrics" not in _report_text([summary])
    assert rows(db, "SELECT count(*) FROM server_metrics")[0][0] == 0


def test_requests_waiting_beside_a_free_slot_with_a_busy_cache_are_kv_bound() -> None:
    """87% KV usage with 4 requests waiting while fewer ran than the run's peak: the engine
    would have admitted them if a slot were all they needed, so they waited for cache space
    (this knee was missed when only a 90% cache counted)."""
    t = np.arange(5, dtype=np.int64) * 1_000_000_000
    waiting = (t, np.array([0.0, 4.0, 4.0, 4.0, 0.0]))
    kv = (t, np.array([0.3, 0.87, 0.86, 0.88, 0.3]))
    below_peak = (t, np.array([2.0, 6.0, 5.0, 5.0, 8.0]))  # the run's peak is 8
    assert kv_bound(summarize_samples({"waiting": waiting, "kv_usage": kv, "running": below_peak}))
    # the same cache, with the waiting requests behind full slots: slot-bound, not KV-bound
    at_peak = (t, np.array([2.0, 8.0, 8.0, 8.0, 8.0]))
    assert not kv_bound(summarize_samples({"waiting": waiting, "kv_usage": kv, "running": at_peak}))


def test_a_run_shorter_than_the_interval_still_gets_samples_of_its_own(sim, tmp_path):
    """A sweep level of about half a second with the default 1 s interval used to get only
    its two boundary scrapes, which read an idle server; the first scrapes now come 0.1 s
    apart."""
    url = sim("--max-num-seqs", "4", "--itl-ms", "2", "--ttft-ms", "5", "--seed", "6")
    spec = PerfSpec(
        client=ClientSpec(url=url, max_tokens=20, min_tokens=20),
        loads=(LoadSpec(parallel=8, number=64),),
        db_path=tmp_path / "short.db",
        server_metrics=ServerMetricsSpec(interval=1.0),
    )
    s = run(spec).runs[0].summary
    assert s.duration_s < 2.0, s.duration_s  # shorter than two intervals
    assert s.server["samples"] >= 4
    assert s.server["running"]["peak"] == 4 and s.server["waiting"]["peak"] > 0
