"""sweep, plan and compare from the command line, as a user runs them, against real simulators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import perfbench, rows

SHORT = ("--dataset", "random", "--input-len", "16", "--output-len", "16", "--max-tokens", "16")


def test_sweep_finds_a_kv_bound_knee_and_plan_uses_it(sim: Any, tmp_path: Path) -> None:
    """A simulator whose KV cache holds four requests: the sweep's knee is at four and says the
    cache is full there; plan --from-sweep recommends a concurrency from the same curve."""
    db = tmp_path / "s.db"
    url = sim(
        "--kv-tokens", "140", "--max-model-len", "64", "--max-num-seqs", "64", "--ttft-ms", "5",
        "--itl-ms", "4",
        "--itl-ms-per-seq", "0", "--prefill-us-per-token", "0",
    )  # fmt: skip
    done = perfbench(
        "sweep", "--url", url, *SHORT, "--parallel", "1", "2", "4", "8", "16", "--number", "48",
        "--slo", "ttft_p95<=1s", "--name", "kv", "--db", str(db), "--json",
        "--server-metrics-interval", "0.2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["knee"] in (4, 8), out["answer"]  # the cache holds 4: the knee, ± one level
    assert "KV cache, which is full there" in out["answer"]
    assert rows(db, "SELECT count(DISTINCT run_id) FROM server_metrics")[0][0] >= 4
    assert {r[0] for r in rows(db, "SELECT name FROM runs")} == {"kv"}

    plan = perfbench(
        "plan", "--from-sweep", "kv", "--prompts", "64", "--output-len", "16", "--db", str(db)
    )
    assert plan.returncode == 0, plan.stderr
    assert "Run the eval at concurrency" in plan.stdout


def test_sweep_rejects_bad_slos_in_one_line(tmp_path: Path) -> None:
    done = perfbench("sweep", "--slo", "ttft_p99 under 2s", "--db", str(tmp_path / "x.db"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "ttft_p99" in done.stderr


def test_compare_gates_a_slower_server_with_exit_1(sim: Any, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    timing = ("--itl-ms-per-seq", "0", "--prefill-us-per-token", "0")
    fast = sim("--ttft-ms", "40", "--itl-ms", "4", *timing)
    slow = sim("--ttft-ms", "52", "--itl-ms", "5.2", *timing)
    for url in (fast, slow):
        done = perfbench(
            "perf", "--url", url, *SHORT, "--parallel", "8", "--number", "160", "--warmup", "8",
            "--db", str(db), "--quiet",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    gate = perfbench(
        "compare", "1", "2", "--threshold", "tpot_mean=10%", "--db", str(db), "--markdown"
    )
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "| TPOT mean" in gate.stdout and "worse" in gate.stdout
    report = json.loads(
        perfbench("compare", "1", "2", "--db", str(db), "--json", "--metric", "tpot").stdout
    )
    assert report["schema_version"] == 1
    assert {f["key"]: f["verdict"] for f in report["figures"]}["tpot_mean"] == "worse"
    # a new version that answers nothing fails every gate, whatever the figure
    broken = sim("--error-rate", "1")
    done = perfbench(
        "perf", "--url", broken, *SHORT, "--parallel", "8", "--number", "40", "--db", str(db),
        "--quiet",
    )  # fmt: skip
    assert done.returncode == 1  # no request succeeded; the run is stored all the same
    gate = perfbench("compare", "1", "3", "--threshold", "ttft_p99=10%", "--db", str(db), "--json")
    assert gate.returncode == 1
    ttft = {f["key"]: f for f in json.loads(gate.stdout)["figures"]}["ttft_p99"]
    assert ttft["gate"] == "fail" and ttft["note"] == "no request of the new run succeeded"
    other = perfbench("perf", "--number", "20", "--db", str(db), "--quiet")
    assert other.returncode == 0
    refused = perfbench("compare", "1", "4", "--db", str(db))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_a_rate_sweep_runs_open_loop_levels(sim: Any, tmp_path: Path) -> None:
    """Open-loop levels against a simulator that serves about 4 / 70 ms = 57 requests/s: the
    low rates are met, the highest is not (the server cannot keep up, so requests queue)."""
    db = tmp_path / "r.db"
    url = sim(
        "--max-num-seqs", "4", "--ttft-ms", "10", "--itl-ms", "4", "--itl-ms-per-seq", "0",
        "--prefill-us-per-token", "0",
    )  # fmt: skip
    done = perfbench(
        "sweep", "--url", url, *SHORT, "--rate", "10", "30", "120", "--duration", "2",
        "--slo", "ttft_p50<=100ms", "--db", str(db), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    levels = {lv["level"]: lv for lv in out["levels"]}
    assert set(levels) == {10, 30, 120}
    assert levels[10]["passed"] and levels[30]["passed"] and not levels[120]["passed"]
    assert out["slo_limit"] == 30
    assert {r[0] for r in rows(db, "SELECT json_extract(load, '$.rate') FROM runs")} == {
        10,
        30,
        120,
    }
