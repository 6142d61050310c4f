"""Commands pasted from evalscope perf and vllm bench serve run as written (perfbench.interop.flags)."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
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


# A file `vllm bench serve --save-result --save-detailed` 0.33.0 wrote (tests/fixtures/vllm/
# README.md), with --metadata gpu=none --percentile-metrics ttft,tpot,itl,e2el
# --metric-percentiles 50,90,99 and --goodput
VLLM_FILE = next((Path(__file__).parent / "fixtures" / "vllm").glob("openai-chat-*.json"))


def test_save_result_writes_vllms_file_key_for_key_with_true_figures(sim, tmp_path):
    """Against a simulator whose every stream is 50 ms + 31 × 5 ms, 8 at a time."""
    url = sim("--ttft-ms", "50", "--itl-ms", "5", "--itl-ms-per-seq", "0",
              "--prefill-us-per-token", "0", "--seed", "2")  # fmt: skip
    out = tmp_path / "results"
    done = perfbench(
        "perf", "--base-url", url, "--endpoint", "/v1/chat/completions", "--backend",
        "openai-chat", "--dataset-name", "random", "--random-input-len", "32",
        "--random-output-len", "32", "--max-concurrency", "8", "--num-prompts", "80",
        "--save-result", "--save-detailed", "--result-dir", str(out), "--metadata", "gpu=none",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
        "--goodput", "ttft:200", "e2el:1", "--db", str(tmp_path / "r.db"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.json")
    assert path.name.startswith("openai-chat-infqps-concurrency8-perfbench-sim-")
    data = json.loads(path.read_text())
    real = json.loads(VLLM_FILE.read_text())
    assert list(data) == list(real)  # every key, in vLLM's order
    assert {k: type(v) for k, v in data.items()} == {k: type(v) for k, v in real.items()}
    assert data["completed"] == 80 and data["failed"] == 0 and data["gpu"] == "none"
    assert data["request_rate"] == "inf" and data["max_concurrency"] == 8
    assert data["total_output_tokens"] == 80 * 32 and data["output_lens"] == [32] * 80
    # the timing is known: TTFT 50 ms, TPOT 5 ms, E2E 50 + 31 × 5 = 205 ms (client overhead on
    # top, a few ms at most on a busy machine)
    assert 45 <= data["median_ttft_ms"] < 60 and 45 <= data["mean_ttft_ms"] < 65
    assert 4.9 <= data["median_tpot_ms"] < 5.6 and 4.9 <= data["mean_itl_ms"] < 5.6
    assert 200 <= data["median_e2el_ms"] < 230
    assert data["std_ttft_ms"] >= 0 and data["p99_e2el_ms"] >= data["p50_e2el_ms"]
    assert data["median_ttft_ms"] == data["p50_ttft_ms"]
    assert all(0.2 <= x < 0.23 for x in data["latencies"]) and len(data["start_times"]) == 80
    assert max(data["start_times"]) - min(data["start_times"]) < data["duration"]
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


# -- evalscope perf's output folder ------------------------------------------------------------

FIXTURE_LEVEL = next(
    (Path(__file__).parent / "fixtures" / "evalscope" / "1.14.1" / "run5-errors").glob(
        "*/*/parallel_2_number_12"
    )
)


def test_evalscope_outputs_match_the_real_files_key_for_key_with_true_figures(sim, tmp_path):
    """Against a simulator whose every stream is 50 ms + 31 × 5 ms; the layout, keys, key
    order, value types and row labels are those of a folder EvalScope 1.14.1 wrote."""
    url = sim("--ttft-ms", "50", "--itl-ms", "5", "--itl-ms-per-seq", "0",
              "--prefill-us-per-token", "0", "--seed", "3")  # fmt: skip
    done = perfbench(
        "perf", "--url", f"{url}/v1/chat/completions", "--parallel", "2", "4", "--number", "12",
        "40", "--dataset", "random", "--input-len", "32", "--output-len", "32",
        "--outputs-dir", str(tmp_path), "--evalscope-outputs", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (top,) = tmp_path.glob("2*/perfbench-sim")
    assert sorted(p.name for p in top.iterdir()) == ["parallel_2_number_12", "parallel_4_number_40"]
    real = {name: json.loads((FIXTURE_LEVEL / name).read_text())
            for name in ("benchmark_summary.json", "benchmark_percentile.json")}  # fmt: skip
    level = top / "parallel_4_number_40"
    summary = json.loads((level / "benchmark_summary.json").read_text())
    rows_ = json.loads((level / "benchmark_percentile.json").read_text())
    assert list(summary) == list(real["benchmark_summary.json"])
    assert {k: type(v) for k, v in summary.items()} == {
        k: type(v) for k, v in real["benchmark_summary.json"].items()
    }
    assert [r["Percentiles"] for r in rows_] == [
        r["Percentiles"] for r in real["benchmark_percentile.json"]
    ]
    assert [list(r) for r in rows_] == [list(r) for r in real["benchmark_percentile.json"]]
    # the timing is known (client overhead on top: a few ms at most on a busy machine)
    assert summary["Total Requests"] == summary["Success Requests"] == 40
    assert summary["Concurrency"] == 4 and summary["Request Rate (req/s)"] == -1.0
    assert 50 <= summary["Avg TTFT (ms)"] < 65 and 4.9 <= summary["Avg TPOT (ms)"] < 5.6
    assert 0.2 <= summary["Avg Latency (s)"] < 0.23 and summary["Avg Output Tokens"] == 32
    assert summary["Req Throughput (req/s)"] == pytest.approx(
        40 / summary["Test Duration (s)"], rel=1e-3
    )
    # percentiles by nearest rank, data[ceil(n p / 100) - 1], from the database's own rows
    (run,) = rows(tmp_path / "perfbench.db", "SELECT max(id) FROM runs")[0]
    e2e = np.sort([r[0] for r in rows(tmp_path / "perfbench.db",
                  f"SELECT e2e_ms FROM requests WHERE run_id = {run} AND warmup = 0")])  # fmt: skip
    by = {r["Percentiles"]: r for r in rows_}
    for label, p in (("10%", 10), ("50%", 50), ("99%", 99)):
        assert by[label]["Latency (s)"] == round(e2e[math.ceil(40 * p / 100) - 1] / 1e3, 4)
    assert by["min"]["Latency (s)"] == round(e2e[0] / 1e3, 4)
    assert by["max"]["Latency (s)"] == round(e2e[-1] / 1e3, 4)
    args = json.loads((level / "benchmark_args.json").read_text())
    assert (args["parallel"], args["number"], args["model"]) == (4, 40, "perfbench-sim")


def test_evalscope_outputs_open_loop_no_timestamp_and_import_back(sim, tmp_path):
    url = sim("--preset", "instant", "--seed", "8")
    done = perfbench(
        "perf", "--url", url, "--rate", "50", "--number", "30", "--name", "nightly/a",
        "--outputs-dir", str(tmp_path), "--evalscope-outputs", "--no-timestamp", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    level = tmp_path / "nightly_a" / "rate_50.0_number_30"
    summary = json.loads((level / "benchmark_summary.json").read_text())
    assert summary["Concurrency"] == -1 and summary["Request Rate (req/s)"] == 50.0
    back = perfbench(
        "import", str(tmp_path / "nightly_a"), "--db", str(tmp_path / "b.db"), "--json"
    )
    assert back.returncode == 0, back.stderr
    (imported,) = json.loads(back.stdout)["runs"]
    assert imported["figures"] == "its summary" and imported["part"] == "rate_50.0_number_30"
    report = perfbench("report", str(imported["run"]), "--db", str(tmp_path / "b.db"), "--json")
    (s,) = json.loads(report.stdout)["runs"]
    assert s["ok"] == 30 and s["rate"] == 50.0
    assert s["mean_ttft_ms"] == summary["Avg TTFT (ms)"]
    assert s["duration_s"] == summary["Test Duration (s)"]


def test_every_flag_without_a_meaning_here_is_one_line(tmp_path, capsys):
    """Each of the other tools' flags that perfbench cannot honour stops the command before
    anything is recorded (exit 2, one line saying why and what to use); each that changes
    nothing here is a one-line note, and the command goes on."""
    from perfbench.cli import main
    from perfbench.interop.flags import NO_MEANING, UNSUPPORTED

    db = tmp_path / "none.db"
    for flag, why in UNSUPPORTED.items():
        assert main(["perf", flag, "1", "--number", "1", "--db", str(db)]) == 2, flag
        err = capsys.readouterr().err
        assert err == f"perfbench: error: {flag} is not supported here: {why}\n"
    assert not db.exists()
    done = perfbench("perf", "--ramp-up-strategy", "linear", "--lora-modules", "a=b",
                     "--db", str(db))  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--ramp-from" in done.stderr
    assert not db.exists()
    notes = [f for f in NO_MEANING if f not in ("--profile",)][:12]
    done = perfbench("perf", "--number", "2", *notes, "--db", str(db), "--quiet",
                     "--sim-args", "--preset instant")  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "has no meaning here" in line]
    assert len(said) == len(notes) and all(f in " ".join(said) for f in notes)


def test_sleep_interval_workers_and_body_flags(sim, tmp_path):
    url = sim("--preset", "instant", "--seed", "6")
    db = tmp_path / "s.db"
    done = perfbench(
        "perf", "--url", url, "--parallel", "1", "2", "--number", "4", "4", "--sleep-interval",
        "1.5", "--num-workers", "2", "--chat-template-kwargs", '{"enable_thinking": false}',
        "--use-beam-search", "--db", str(db), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (a, b) = rows(db, "SELECT t0_ns, duration_s, workers, client FROM runs ORDER BY id")
    assert b[0] - (a[0] + a[1] * 1e9) >= 1.4e9  # the pause between the levels
    assert len(json.loads(a[2])) == 2  # --num-workers: two load-generating processes
    assert json.loads(a[3])["extra_body"] == {
        "use_beam_search": True,
        "chat_template_kwargs": {"enable_thinking": False},
    }


@pytest.mark.parametrize("tool", ["evalscope-perf-1.14.1", "vllm-bench-serve-0.33.0"])
def test_every_flag_of_the_other_tools_is_accepted_and_mapped_in_the_docs(tool):
    """The option strings the real tools' --help printed (tests/fixtures/flags/): perfbench perf
    knows each one, and docs/drop-in.md names each one (or its family, `--hf-*`)."""
    import re

    from perfbench.cli import build_parser

    flags = (Path(__file__).parent / "fixtures" / "flags" / f"{tool}.txt").read_text().split()
    perf = build_parser()._subparsers._group_actions[0].choices["perf"]  # type: ignore[union-attr]
    known = {s for action in perf._actions for s in action.option_strings}
    assert [f for f in flags if f not in known] == []
    doc = (Path(__file__).parents[1] / "docs" / "drop-in.md").read_text()
    families = re.findall(r"`(--[a-z0-9-]+)\*`", doc)
    unmapped = [
        f for f in flags
        if not re.search(re.escape("`" + f) + r"[`\s=/]", doc)
        and not any(f.startswith(family) for family in families)
    ]  # fmt: skip
    assert unmapped == []
