"""Commands pasted from evalscope perf and vllm bench serve run as written (perfbench.compat)."""

from __future__ import annotations

import json
import shlex
from typing import Any

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
