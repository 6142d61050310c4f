"""Commands pasted from evalscope perf and vllm bench serve run as written (perfbench.interop.flags)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import numpy as np
import pytest

from tests.conftest import perfbench, rows

FAST = ("--preset", "instant", "--seed", "5")


def _run(db: Any) -> dict[str, Any]:
    (load, client, workload, command) = rows(
        db, "SELECT load, client, workload, command FROM runs ORDER BY id DESC LIMIT 1"
    )[0]
    return {
        "load": json.loads(load),
        "client": json.loads(client),
        "workload": json.loads(workload),
        "command": command,
    }


def test_the_evalscope_best_practice_command_runs_as_written(sim, tmp_path):
    url = sim(*FAST, "--served-model-name", "Qwen3-32B")
    db = tmp_path / "e.db"
    done = perfbench(
        "perf", "--url", f"{url}/v1/chat/completions", "--parallel", "5", "--model", "Qwen3-32B",
        "--number", "20", "--api", "openai", "--dataset", "openqa", "--stream",
        "--db", str(db), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    assert summary["ok"] == 20 and summary["parallel"] == 5 and summary["model"] == "Qwen3-32B"
    assert _run(db)["client"]["api"] == "openai-chat"  # openai: whichever endpoint --url names


def test_evalscope_short_number_and_query_log(sim, tmp_path):
    url = sim(*FAST, "--ttft-ms", "20", "--served-model-name", "Qwen3-32B")  # ≥ 2 s in all
    db = tmp_path / "e.db"
    done = perfbench(
        "perf", "--url", f"{url}/v1/chat/completions", "--model", "Qwen3-32B",
        "--log-every-n-query", "5", "--connect-timeout", "6000", "--read-timeout", "6000",
        "--api", "openai", "--prompt", "Write a haiku about load tests.", "-n", "100",
        "--db", str(db), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    assert summary["ok"] == 100 and summary["measured"] == 100
    lines = [line for line in done.stderr.splitlines() if "/100 requests" in line]
    assert len(lines) >= 3 and all(line.startswith("perfbench: run ") for line in lines), lines
    counts = [int(line.split(": ")[2].split("/")[0]) for line in lines]
    assert counts == sorted(set(counts)) and counts[0] >= 5 and counts[-1] <= 100, counts


def test_a_vllm_bench_serve_command_runs_as_written(sim, tmp_path):
    url = sim(*FAST)
    port = url.rsplit(":", 1)[1].split("/")[0]
    db = tmp_path / "v.db"
    done = perfbench(
        "perf", "--backend", "openai-chat", "--host", "127.0.0.1", "--port", port,
        "--endpoint", "/v1/chat/completions", "--model", "perfbench-sim",
        "--dataset-name", "random", "--random-input-len", "64", "--random-output-len", "16",
        "--random-range-ratio", "0.25", "--num-prompts", "40", "--request-rate", "200",
        "--max-concurrency", "8", "--ignore-eos", "--num-warmups", "2",
        "--header", "X-Team=search", "Authorization=Bearer sk-NOT-STORED", "--temperature", "0",
        "--trust-remote-code", "--presence-penalty", "0.5", "--db", str(db), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    assert summary["ok"] == 40 and summary["mode"] == "open" and summary["warmup"] == 2
    notes = [line for line in done.stderr.splitlines() if "no meaning here" in line]
    assert len(notes) == 1 and "--trust-remote-code" in notes[0]
    run = _run(db)
    assert run["load"]["rate"] == 200 and run["load"]["number"] == 40
    assert run["load"]["max_concurrency"] == 8 and run["load"]["warmup"] == 2
    assert run["client"]["api"] == "openai-chat"
    assert run["client"]["extra_body"] == {"presence_penalty": 0.5, "ignore_eos": True}
    assert run["workload"]["dataset"] == "random" and run["workload"]["input_len"] == 64
    assert run["workload"]["output_len"] == 16 and run["workload"]["range_ratio"] == 0.25
    headers = dict(run["client"]["headers"])
    assert headers["X-Team"] == "search" and headers["Authorization"] == "<redacted>"
    assert "sk-NOT-STORED" not in run["command"]
    words = shlex.split(run["command"])
    assert words[words.index("--header") + 2] == "Authorization=<redacted>"


def test_vllm_defaults_to_its_completions_endpoint(sim, tmp_path):
    url = sim(*FAST)
    db = tmp_path / "v.db"
    done = perfbench(
        "perf", "--base-url", url, "--num-prompts", "10", "--db", str(db), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = _run(db)
    assert run["client"]["api"] == "openai-completions"
    assert rows(db, "SELECT endpoint FROM runs")[0][0].endswith("/v1/completions")


def test_evalscope_headers_warmup_share_and_prompt_lengths(sim, tmp_path):
    url = sim(*FAST)
    db = tmp_path / "e.db"
    done = perfbench(
        "perf", "--url", url, "--headers", "X-A=1", "token=sk-NO", "--dataset", "random",
        "--min-prompt-length", "40", "--max-prompt-length", "120", "--number", "20",
        "--warmup-num", "0.25", "--extra-args", '{"ignore_eos": true}', "--wandb-api-key", "w-NO",
        "--db", str(db), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--wandb-api-key has no meaning here" in done.stderr
    run = _run(db)
    assert run["load"]["warmup"] == 5  # a quarter of --number
    assert run["workload"]["input_len"] == 80 and run["workload"]["range_ratio"] == 0.5
    assert run["client"]["extra_body"] == {"ignore_eos": True}
    assert dict(run["client"]["headers"]) == {"X-A": "1", "token": "<redacted>"}
    assert "sk-NO" not in run["command"] and "w-NO" not in run["command"]


def test_our_samples_flag_keeps_its_old_name(sim, tmp_path):
    url = sim(*FAST)
    db = tmp_path / "s.db"
    for flag in ("--samples", "--n"):
        done = perfbench(
            "perf", "--url", url, "--dataset", "synthetic_math", "--number", "6", flag, "2",
            "--db", str(db), "--quiet",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert _run(db)["workload"]["n"] == 2


def test_aliases_that_disagree_and_bad_values_are_one_line(tmp_path):
    cases = [
        (["--number", "5", "-n", "7"], "--number 5 and -n 7 disagree"),
        (["--rate", "2", "--request-rate", "3"], "--rate 2.0 and --request-rate 3.0 disagree"),
        (["--request-rate", "abc"], "--request-rate"),
        (["--backend", "tgi"], "--backend"),
        (["-n", "0"], "-n"),
        (["--extra-args", "{nope"], "--extra-args is not JSON"),
        (["--min-prompt-length", "10"], "--min-prompt-length/--max-prompt-length filter"),
    ]
    for args, says in cases:
        done = perfbench("perf", *args, "--outputs-dir", str(tmp_path))
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and says in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "perfbench.db").exists()  # nothing was recorded
    same = perfbench("perf", "--number", "3", "-n", "3", "--outputs-dir", str(tmp_path), "--quiet")
    assert same.returncode == 0, same.stderr


# The keys `vllm bench serve --save-result --save-detailed` writes for a chat run with
# --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99.9 and --goodput, in its
# order: main_async's header, --metadata, the traffic, then benchmark()'s result
# (vllm-project/vllm, vllm/benchmarks/serve.py at def9ce85ba1079af970a58ed3d42dd861ae35d58).
VLLM_KEYS = [
    "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
    "team", "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
    "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls",
    "generated_texts", "errors", "max_output_tokens_per_s", "max_concurrent_requests",
    *(
        f"{stat}_{m}_ms"
        for m in ("ttft", "tpot", "itl", "e2el")
        for stat in ("mean", "median", "std", "p50", "p99.9")
    ),
]  # fmt: skip


def test_save_result_writes_vllms_file_key_for_key_with_true_figures(sim, tmp_path):
    """Against a simulator whose every stream is 50 ms + 31 × 5 ms, 8 at a time."""
    url = sim("--ttft-ms", "50", "--itl-ms", "5", "--itl-ms-per-seq", "0",
              "--prefill-us-per-token", "0", "--seed", "2")  # fmt: skip
    out = tmp_path / "results"
    done = perfbench(
        "perf", "--base-url", url, "--endpoint", "/v1/chat/completions", "--backend",
        "openai-chat", "--dataset-name", "random", "--random-input-len", "32",
        "--random-output-len", "32", "--max-concurrency", "8", "--num-prompts", "80",
        "--save-result", "--save-detailed", "--result-dir", str(out), "--metadata", "team=search",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99.9",
        "--goodput", "ttft:200", "e2el:1", "--db", str(tmp_path / "r.db"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.json")
    assert path.name.startswith("openai-chat-infqps-concurrency8-perfbench-sim-")
    data = json.loads(path.read_text())
    assert list(data) == VLLM_KEYS
    assert data["completed"] == 80 and data["failed"] == 0 and data["team"] == "search"
    assert data["request_rate"] == "inf" and data["max_concurrency"] == 8
    assert data["total_output_tokens"] == 80 * 32 and data["output_lens"] == [32] * 80
    # the timing is known: TTFT 50 ms, TPOT 5 ms, E2E 50 + 31 × 5 = 205 ms (client overhead on
    # top, a few ms at most on a busy machine)
    assert 45 <= data["median_ttft_ms"] < 60 and 45 <= data["mean_ttft_ms"] < 65
    assert 4.9 <= data["median_tpot_ms"] < 5.6 and 4.9 <= data["mean_itl_ms"] < 5.6
    assert 200 <= data["median_e2el_ms"] < 230
    assert data["std_ttft_ms"] >= 0 and data["p99.9_e2el_ms"] >= data["p50_e2el_ms"]
    assert data["request_goodput"] == 0  # no request ends within 1 ms
    assert data["request_throughput"] == pytest.approx(80 / data["duration"])
    assert all(len(gaps) == 31 for gaps in data["itls"])  # 32 chunks: 31 gaps, in seconds
    assert 0.004 < float(np.median(np.concatenate(data["itls"]))) < 0.006
    assert all(0.045 <= t < 0.07 for t in data["ttfts"]), data["ttfts"]
    assert data["errors"] == [""] * 80 and all(data["generated_texts"])


def test_result_flags_with_bad_values_are_one_line(tmp_path):
    for args, says in [
        (["--goodput", "ttft=5"], "--goodput"),
        (["--percentile-metrics", "ttft,foo"], "--percentile-metrics"),
        (["--metric-percentiles", "100"], "--metric-percentiles"),
        (["--metadata", "novalue"], "--metadata"),
    ]:
        done = perfbench("perf", "--save-result", *args, "--outputs-dir", str(tmp_path))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "perfbench.db").exists()
