"""``perfbench import``: result files the other tools wrote become runs of their own.

The files under tests/fixtures/ were written by the real tools (EvalScope 1.14.1 and 0.17.1,
GuideLLM 0.8.1, AIPerf 0.13.0) against perfbench's simulator; each folder's README.md says how.
Where a file has per-request data, the figures perfbench recomputes from it must agree with
the tool's own summary wherever the two tools define a figure alike: that is the check that
the import read every field in the right unit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import perfbench, rows

FIXTURES = Path(__file__).parent / "fixtures"
EVALSCOPE = FIXTURES / "evalscope"


def _import(db: Path, *paths: Path | str, expect: int = 0) -> dict[str, Any]:
    done = perfbench("import", *map(str, paths), "--db", str(db), "--json")
    assert done.returncode == expect, done.stderr
    return json.loads(done.stdout) if expect == 0 else {"stderr": done.stderr}


def _summary(db: Path, run: int) -> dict[str, Any]:
    done = perfbench("report", str(run), "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    return summary


def _level(version: str, run: str, level: str = "") -> Path:
    (folder,) = [p for p in (EVALSCOPE / version / run).glob("*/*") if p.is_dir()]
    return folder / level if level else folder


# -- EvalScope ---------------------------------------------------------------------------------


def test_evalscope_levels_with_their_database_agree_with_its_summary(tmp_path):
    db = tmp_path / "i.db"
    out = _import(db, EVALSCOPE / "1.14.1" / "run2-multilevel")
    assert [(r["part"], r["requests"]) for r in out["runs"]] == [
        ("parallel_1_number_6", 6),
        ("parallel_2_number_12", 12),
    ]
    for r in out["runs"]:
        theirs = json.loads((_level("1.14.1", "run2-multilevel", r["part"]) /
                             "benchmark_summary.json").read_text())  # fmt: skip
        s = _summary(db, r["run"])
        # recomputed from the requests, under perfbench's definitions, which EvalScope 1.x
        # shares for these: the same figures to the summary's own rounding
        assert s["ok"] == theirs["Success Requests"] and s["failed"] == 0
        assert s["duration_s"] == pytest.approx(theirs["Test Duration (s)"], abs=6e-5)
        assert s["req_per_s"] == pytest.approx(theirs["Req Throughput (req/s)"], rel=1e-3)
        assert s["output_tok_per_s"] == pytest.approx(theirs["Output Throughput (tok/s)"], rel=1e-3)
        assert s["mean_ttft_ms"] == pytest.approx(theirs["Avg TTFT (ms)"], abs=6e-3)
        assert s["mean_tpot_ms"] == pytest.approx(theirs["Avg TPOT (ms)"], abs=6e-3)
        assert s["mean_itl_ms"] == pytest.approx(theirs["Avg ITL (ms)"], abs=6e-3)
        assert s["mean_e2e_ms"] / 1e3 == pytest.approx(theirs["Avg Latency (s)"], abs=6e-5)
        assert s["mean_input_tokens"] == pytest.approx(theirs["Avg Input Tokens"], abs=6e-5)
        assert "recomputed from its requests" in s["warnings"][0]
        assert not any("already sent" in w for w in s["warnings"])  # its prompts are unknown
    (load,) = rows(db, "SELECT load FROM runs WHERE id = 2")[0]
    assert json.loads(load)["parallel"] == 2
    (tool, part) = rows(db, "SELECT json_extract(source, '$.tool'), "
                            "json_extract(source, '$.part') FROM runs WHERE id = 2")[0]  # fmt: skip
    assert (tool, part) == ("evalscope", "parallel_2_number_12")


def test_evalscope_failures_open_loop_and_no_stream(tmp_path):
    db = tmp_path / "i.db"
    errors = _import(db, EVALSCOPE / "1.14.1" / "run5-errors")["runs"][0]["run"]
    s = _summary(db, errors)
    assert (s["ok"], s["failed"]) == (7, 5)
    assert s["errors"] == {"unclassified": 5}  # EvalScope keeps the reason pickled: not loaded
    (message,) = {r[0] for r in rows(db, f"SELECT error FROM requests WHERE run_id = {errors} "
                                         "AND status != 'ok'")}  # fmt: skip
    assert "pickled" in message
    opened = _import(db, EVALSCOPE / "1.14.1" / "run4-openloop")["runs"]
    assert [_summary(db, r["run"])["rate"] for r in opened] == [5.0, 10.0]
    plain = _import(db, EVALSCOPE / "1.14.1" / "run3-nostream")["runs"][0]["run"]
    s = _summary(db, plain)
    theirs = json.loads((_level("1.14.1", "run3-nostream", "parallel_2_number_12") /
                         "benchmark_summary.json").read_text())  # fmt: skip
    assert s["distributions"]["tpot_ms"]["n"] == 0 and s["distributions"]["itl_ms"]["n"] == 0
    assert s["mean_e2e_ms"] / 1e3 == pytest.approx(theirs["Avg Latency (s)"], abs=6e-5)


def test_evalscope_summary_alone_gives_its_own_figures(tmp_path):
    """A folder whose benchmark_data.db is gone: the summary and percentile files are all."""
    db = tmp_path / "i.db"
    run = _import(db, EVALSCOPE / "1.14.1" / "run1-stream")["runs"][0]
    assert run["requests"] == 0 and run["figures"] == "its summary"
    level = _level("1.14.1", "run1-stream", "parallel_2_number_12")
    theirs = json.loads((level / "benchmark_summary.json").read_text())
    pct = {
        row["Percentiles"]: row
        for row in json.loads((level / "benchmark_percentile.json").read_text())
    }
    s = _summary(db, run["run"])
    assert (s["ok"], s["failed"], s["measured"]) == (12, 0, 12)
    assert s["duration_s"] == theirs["Test Duration (s)"]
    assert s["mean_ttft_ms"] == theirs["Avg TTFT (ms)"]
    assert s["distributions"]["ttft_ms"]["values"]["p50"] == pct["50%"]["TTFT (ms)"]
    assert s["distributions"]["e2e_ms"]["values"]["p99"] == pytest.approx(
        pct["99%"]["Latency (s)"] * 1e3
    )
    assert "no per-request data" in s["warnings"][0]
    # the old key set (0.x: seconds, "Time taken for tests (s)") reads the same way
    old = _import(db, EVALSCOPE / "0.17.1" / "run2-multilevel")["runs"]
    assert [r["part"] for r in old] == ["parallel_1_number_6", "parallel_2_number_12"]
    level = _level("0.17.1", "run2-multilevel", "parallel_2_number_12")
    theirs = json.loads((level / "benchmark_summary.json").read_text())
    s = _summary(db, old[1]["run"])
    assert s["mean_ttft_ms"] == pytest.approx(theirs["Average time to first token (s)"] * 1e3)
    assert s["req_per_s"] == theirs["Request throughput (req/s)"]


def test_evalscope_0x_folder_with_its_database(tmp_path):
    db = tmp_path / "i.db"
    run = _import(db, EVALSCOPE / "0.17.1" / "run1-stream")["runs"][0]
    assert run["part"] == "parallel_2" and run["requests"] == 12
    s = _summary(db, run["run"])
    theirs = json.loads((_level("0.17.1", "run1-stream") / "benchmark_summary.json").read_text())
    # 0.x stamps every event (the role chunk included), so its chunk gaps are its own; the
    # latency and the token counts are the same quantities
    assert s["mean_e2e_ms"] / 1e3 == pytest.approx(theirs["Average latency (s)"], abs=6e-5)
    assert s["mean_input_tokens"] == theirs["Average input tokens per request"]
    assert s["mean_ttft_ms"] / 1e3 == pytest.approx(
        theirs["Average time to first token (s)"], abs=6e-5
    )
    assert any("role chunk" in w for w in s["warnings"])


# -- GuideLLM and AIPerf -----------------------------------------------------------------------


def test_guidellm_benchmarks_become_runs_with_its_requests(tmp_path):
    db = tmp_path / "i.db"
    data = json.loads((FIXTURES / "guidellm" / "benchmarks.json").read_text())
    out = _import(db, FIXTURES / "guidellm" / "benchmarks.json")["runs"]
    assert [r["part"] for r in out] == ["constant@2", "constant@4"]
    for r, bench in zip(out, data["benchmarks"], strict=True):
        s = _summary(db, r["run"])
        ok = bench["requests"]["successful"]
        metrics = bench["metrics"]
        assert s["ok"] == len(ok) == metrics["request_totals"]["successful"]
        assert s["rate"] == bench["config"]["strategy"]["rate"]
        # stamps are epoch seconds in float64 (about 0.2 µs apart at today's epoch): to 1 µs
        ttft = metrics["time_to_first_token_ms"]["successful"]
        assert s["mean_ttft_ms"] == pytest.approx(ttft["mean"], abs=1e-3)
        e2e = metrics["request_latency"]["successful"]
        assert s["mean_e2e_ms"] == pytest.approx(e2e["mean"] * 1e3, abs=1e-3)
        # GuideLLM's per-request ITL is (last − first)/(n − 1): perfbench's TPOT
        tpot = [q["inter_token_latency_ms"] for q in ok]
        assert s["mean_tpot_ms"] == pytest.approx(float(np.mean(tpot)), abs=1e-4)
        assert s["distributions"]["itl_ms"]["n"] == 0  # no per-chunk times in the file
        assert s["tokens_per_chunk"] == pytest.approx(1.0)
    cmp = perfbench("compare", "1", "2", "--db", str(db), "--force", "--json")
    assert cmp.returncode == 0, cmp.stderr  # two rates: --force; ITL has no samples on either
    itl = {f["key"]: f for f in json.loads(cmp.stdout)["figures"]}["itl_mean"]
    assert itl["base"] is None and itl["new"] is None


def test_guidellm_failures_keep_their_class(tmp_path):
    db = tmp_path / "i.db"
    (r,) = _import(db, FIXTURES / "guidellm" / "with_errors" / "benchmarks.json")["runs"]
    assert r["part"] == "concurrent@2"
    s = _summary(db, r["run"])
    assert s["parallel"] == 2 and s["ok"] == 7
    assert s["errors"] == {"disconnect": 2, "cancelled": 2, "http": 1}
    assert rows(db, "SELECT http_status FROM requests WHERE status = 'http'") == [(500,)]


def test_aiperf_export_agrees_with_its_summary(tmp_path):
    db = tmp_path / "i.db"
    folder = FIXTURES / "aiperf"
    (r,) = _import(db, folder / "profile_export_aiperf.json")["runs"]
    theirs = json.loads((folder / "profile_export_aiperf.json").read_text())
    s = _summary(db, r["run"])
    assert s["ok"] == 12 and s["parallel"] == 2
    # the same definitions and the same percentile method (linear): equal figures
    for ours, key in (("ttft_ms", "time_to_first_token"), ("tpot_ms", "inter_token_latency"),
                      ("itl_ms", "inter_chunk_latency"), ("e2e_ms", "request_latency")):  # fmt: skip
        dist = s["distributions"][ours]
        assert dist["n"] == theirs[key]["count"], ours
        assert dist["mean"] == pytest.approx(theirs[key]["avg"], rel=1e-9), ours
        for p in ("p10", "p50", "p90", "p99"):
            assert dist["values"][p] == pytest.approx(theirs[key][p], rel=1e-9), (ours, p)
    assert s["duration_s"] == pytest.approx(theirs["benchmark_duration"]["avg"], abs=2e-6)
    assert s["mean_output_tokens"] == theirs["output_sequence_length"]["avg"]


def test_aiperf_warmup_errors_and_no_stream(tmp_path):
    db = tmp_path / "i.db"
    warm = _import(db, FIXTURES / "aiperf" / "with_warmup")["runs"][0]["run"]
    s = _summary(db, warm)
    assert (s["measured"], s["ok"]) == (6, 6)
    assert rows(db, f"SELECT count(*) FROM requests WHERE run_id = {warm} AND warmup = 1") == [(2,)]
    errs = _import(db, FIXTURES / "aiperf" / "with_errors")["runs"][0]["run"]
    s = _summary(db, errs)
    assert (s["ok"], s["errors"]) == (10, {"http": 2})
    plain = _import(db, FIXTURES / "aiperf" / "non_streaming")["runs"][0]["run"]
    s = _summary(db, plain)
    assert s["distributions"]["itl_ms"]["n"] == 0 and s["distributions"]["tpot_ms"]["n"] == 0


# -- vLLM, and the round trip ------------------------------------------------------------------


def test_vllm_detailed_files_agree_with_their_own_figures(tmp_path):
    """Files vllm bench serve 0.33.0 wrote: vLLM's TTFT, TPOT, ITL and E2E are perfbench's, and
    its percentiles interpolate as perfbench's do, so every figure comes back equal."""
    db = tmp_path / "i.db"
    out = _import(db, FIXTURES / "vllm")["runs"]  # a --result-dir of three files
    assert [(r["part"], r["requests"]) for r in out] == [
        ("openai-chat", 12), ("openai", 12), ("openai", 0)
    ]  # fmt: skip
    for r in out[:2]:
        theirs = json.loads((FIXTURES / "vllm" / r["file"]).read_text())
        s = _summary(db, r["run"])
        assert s["parallel"] == 2 and s["ok"] == theirs["completed"] == 12
        for ours, name in (("ttft_ms", "ttft"), ("tpot_ms", "tpot"), ("itl_ms", "itl"),
                           ("e2e_ms", "e2el")):  # fmt: skip
            dist = s["distributions"][ours]
            assert dist["mean"] == pytest.approx(theirs[f"mean_{name}_ms"], rel=1e-9), name
            for p in ("p50", "p90", "p99"):
                assert dist["values"][p] == pytest.approx(theirs[f"{p}_{name}_ms"], rel=1e-9)
        assert s["mean_input_tokens"] == theirs["total_input_tokens"] / 12
        # the window: first send to last end; vLLM's duration is its wall time around the run
        assert 0.99 * theirs["duration"] < s["duration_s"] <= theirs["duration"]
        (api,) = rows(db, f"SELECT json_extract(client, '$.api') FROM runs WHERE id = {r['run']}")[
            0
        ]
        assert api == ("openai-chat" if r["part"] == "openai-chat" else "openai-completions")
    # written back out as vLLM's file from the imported rows: vLLM's own peaks come back, so
    # perfbench counts max_output_tokens_per_s and max_concurrent_requests as vLLM does
    from perfbench.interop import vllm
    from perfbench.store import Store

    store = Store(db)
    try:
        for r in out[:2]:
            theirs = json.loads((FIXTURES / "vllm" / r["file"]).read_text())
            again = vllm.result(store, store.run(r["run"]), metrics=("ttft", "itl", "e2el"),
                                percentiles=(50, 90, 99))  # fmt: skip
            assert again["max_concurrent_requests"] == theirs["max_concurrent_requests"] == 12
            assert again["max_output_tokens_per_s"] == theirs["max_output_tokens_per_s"]
            for key in ("mean_ttft_ms", "p90_itl_ms", "std_itl_ms", "p99_e2el_ms"):
                assert again[key] == pytest.approx(theirs[key], rel=1e-9), key
    finally:
        store.close()
    ramp = _summary(db, out[2]["run"])  # no --save-detailed: the file's own figures
    assert (
        ramp["shape"] == "ramp"
        and ramp["ok"] == 12
        and ramp["duration_s"] == pytest.approx(2.0387, abs=1e-4)
    )


def test_a_save_result_file_imports_back_to_the_same_figures(sim, tmp_path):
    """perfbench's own --save-result --save-detailed, imported: every figure comes back."""
    url = sim("--preset", "instant", "--seed", "4")
    db = tmp_path / "r.db"
    done = perfbench(
        "perf", "--url", url, "--number", "60", "--parallel", "3", "--db", str(db),
        "--save-result", "--save-detailed", "--result-dir", str(tmp_path), "--result-filename",
        "v.json", "--percentile-metrics", "ttft,tpot,itl,e2el", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (r,) = _import(db, tmp_path / "v.json")["runs"]
    a, b = _summary(db, 1), _summary(db, r["run"])
    assert b["parallel"] == 3 and b["ok"] == 60  # rate inf, at most 3 in flight: a closed loop
    for key in ("duration_s", "req_per_s", "output_tok_per_s", "mean_ttft_ms", "mean_tpot_ms",
                "mean_itl_ms", "mean_e2e_ms", "mean_input_tokens", "mean_output_tokens",
                "achieved_concurrency"):  # fmt: skip
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
    for key in ("ttft_ms", "itl_ms", "e2e_ms"):
        assert b["distributions"][key]["values"] == pytest.approx(a["distributions"][key]["values"])
    again = _import(db, tmp_path / "v.json")
    assert again["runs"] == [] and "already run 2" in again["skipped"][0]
    # beside the run it came from, in compare and in the HTML report
    cmp = perfbench("compare", "1", "2", "--db", str(db), "--json")
    assert cmp.returncode == 0, cmp.stderr
    result = json.loads(cmp.stdout)
    assert any("imported from vllm" in d for d in result["differences"])
    html = tmp_path / "r.html"
    done = perfbench("report", "1", "2", "--db", str(db), "--html", str(html))
    assert done.returncode == 0, done.stderr
    assert "vllm:v" in html.read_text()
    # a file from a vLLM that wrote no send times: durations per request, the window its own
    data = json.loads((tmp_path / "v.json").read_text())
    for key in ("start_times", "latencies", "queue_times"):
        del data[key]
    (tmp_path / "old.json").write_text(json.dumps(data))
    (r,) = _import(db, tmp_path / "old.json")["runs"]
    c = _summary(db, r["run"])
    assert c["duration_s"] == pytest.approx(data["duration"]) and c["ok"] == 60
    assert c["mean_ttft_ms"] == pytest.approx(a["mean_ttft_ms"], rel=1e-6)
    assert c["mean_e2e_ms"] <= a["mean_e2e_ms"]  # it ends at the last token without latencies
    assert "gives no send times" in c["warnings"][0]
    cmp = perfbench("compare", "1", str(r["run"]), "--db", str(db), "--json")
    assert cmp.returncode == 0, cmp.stderr
    assert any("without send times" in w for w in json.loads(cmp.stdout)["warnings"])


def test_vllm_result_without_detail_and_json_lines(tmp_path):
    data = {
        "date": "20261206-101500", "endpoint_type": "openai-chat", "backend": "openai-chat",
        "label": None, "model_id": "Qwen3-8B", "tokenizer_id": "Qwen3-8B", "num_prompts": 100,
        "request_rate": 10.0, "burstiness": 1.0, "max_concurrency": None, "duration": 10.5,
        "completed": 98, "failed": 2, "total_input_tokens": 9800, "total_output_tokens": 12544,
        "request_throughput": 9.333, "request_goodput": None, "output_throughput": 1194.7,
        "total_token_throughput": 2128.0, "mean_ttft_ms": 41.5, "median_ttft_ms": 40.1,
        "std_ttft_ms": 3.2, "p99_ttft_ms": 55.0, "mean_tpot_ms": 7.2, "median_tpot_ms": 7.1,
        "std_tpot_ms": 0.4, "p99_tpot_ms": 8.8, "mean_itl_ms": 7.2, "median_itl_ms": 7.0,
        "std_itl_ms": 1.1, "p99_itl_ms": 12.0,
    }  # fmt: skip
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(data) + "\n" + json.dumps({**data, "request_rate": 20.0}))
    db = tmp_path / "i.db"
    out = _import(db, path)["runs"]
    assert [r["part"] for r in out] == ["line 1: openai-chat", "line 2: openai-chat"]
    s = _summary(db, out[0]["run"])
    assert (s["ok"], s["failed"], s["rate"], s["model"]) == (98, 2, 10.0, "Qwen3-8B")
    assert s["mean_ttft_ms"] == 41.5 and s["distributions"]["ttft_ms"]["values"]["p50"] == 40.1
    assert s["distributions"]["tpot_ms"]["values"]["p99"] == 8.8 and s["req_per_s"] == 9.333
    assert _summary(db, out[1]["run"])["rate"] == 20.0


# -- bad input ---------------------------------------------------------------------------------


def test_bad_files_are_one_line_and_write_nothing(tmp_path):
    db = tmp_path / "i.db"
    _import(db, FIXTURES / "aiperf")  # a database with one run in it
    before = rows(db, "SELECT count(*) FROM runs")
    truncated = tmp_path / "cut.json"
    whole = (FIXTURES / "guidellm" / "benchmarks.json").read_text()
    truncated.write_text(whole[: len(whole) // 2])
    unknown = tmp_path / "other.json"
    unknown.write_text(json.dumps({"accuracy": 0.8, "model": "x"}))
    lengths = tmp_path / "v.json"
    lengths.write_text(json.dumps({"completed": 2, "duration": 1.0, "request_throughput": 2.0,
                                   "output_throughput": 9.0, "ttfts": [0.1, 0.2], "itls": [[]],
                                   "input_lens": [1, 2], "output_lens": [1, 1]}))  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    half = tmp_path / "half"
    shutil.copytree(_level("1.14.1", "run1-stream"), half)
    for f in half.rglob("benchmark_summary.json"):
        f.write_text('{"Concurrency": 2}')
    cases = [
        ([truncated], "truncated"),
        ([unknown], "not a result file"),
        ([lengths], "differ in length"),
        ([empty], "without a result file"),
        ([tmp_path / "nope.json"], "no such file"),
        ([half], "Test Duration"),
        ([FIXTURES / "aiperf" / "with_errors", truncated], "truncated"),  # a good file first
    ]
    for paths, says in cases:
        done = perfbench("import", *map(str, paths), "--db", str(db))
        assert done.returncode == 2, (paths, done.stderr)
        assert done.stderr.count("\n") == 1 and says in done.stderr, (paths, done.stderr)
        assert "Traceback" not in done.stderr
    assert rows(db, "SELECT count(*) FROM runs") == before
    done = perfbench("import", str(truncated), "--db", str(tmp_path / "new.db"))
    assert done.returncode == 2 and not (tmp_path / "new.db").exists()
    done = perfbench("import", str(FIXTURES / "aiperf"), "--tool", "nothing", "--db", str(db))
    assert done.returncode == 2 and "--tool" in done.stderr


def test_python_api(tmp_path):
    from perfbench import ImportResult, import_results, summarize
    from perfbench.store import Store

    result = import_results(tmp_path / "i.db", [FIXTURES / "guidellm" / "benchmarks.json"])
    assert isinstance(result, ImportResult) and len(result.runs) == 2
    store = Store(tmp_path / "i.db")
    try:
        run = store.run(result.runs[0]["run"])
        assert run.source["tool"] == "guidellm" and run.source["version"] == "0.8.1"
        assert summarize(store, run).ok == 8
    finally:
        store.close()
