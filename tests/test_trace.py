"""Trace replay: the trace's timing and lengths, reproduced against the simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.errors import DatasetError
from perfbench.load import read_trace
from tests.conftest import perfbench, rows

INSTANT = ("--preset", "instant", "--seed", "1")


def _mooncake(path, n=30, seed=3):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(40.0, size=n)).round()  # ms, ~25 req/s
    with path.open("w") as f:
        for k in range(n):
            row = {
                "timestamp": int(t[k]),
                "input_length": int(rng.integers(20, 200)),
                "output_length": int(rng.integers(4, 30)),
                "hash_ids": [k],
            }
            f.write(json.dumps(row) + "\n")
    return t - t[0]


def test_replay_keeps_the_traces_times_and_lengths(sim, tmp_path):
    trace = tmp_path / "trace.jsonl"
    times_ms = _mooncake(trace)
    spec = PerfSpec(
        client=ClientSpec(url=sim(*INSTANT), max_tokens=999),
        loads=(LoadSpec(parallel=None, number=None, trace=str(trace), trace_speed=2.0),),
        db_path=tmp_path / "t.db",
    )
    (r,) = run(spec).runs
    s = r.summary
    assert s.shape == "trace" and s.ok == 30
    got = rows(
        tmp_path / "t.db",
        "SELECT intended_ns, sent_ns, completion_tokens, expected_tokens, "
        "prompt_tokens FROM requests ORDER BY idx",
    )
    intended = np.array([g[0] for g in got], dtype=float)
    sent = np.array([g[1] for g in got], dtype=float)
    # the plan is the trace at double speed, to the nanosecond
    assert np.allclose((intended - intended[0]) / 1e6, times_ms / 2.0, atol=1e-3)
    # and requests went out on time: within a few ms of the plan on a busy CI machine
    assert np.median(sent - intended) / 1e6 < 3 and np.max(sent - intended) / 1e6 < 50
    rows_in = [json.loads(line) for line in trace.read_text().splitlines()]
    order = np.argsort([row["timestamp"] for row in rows_in], kind="stable")
    for g, k in zip(got, order):
        assert g[2] == g[3] == rows_in[k]["output_length"]  # exact output, honoured by the sim
    assert s.exact_output == {"asked": 30, "honoured": 30}


def test_azure_csv_layout(tmp_path):
    csv_path = tmp_path / "azure.csv"
    csv_path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:47.0000000,879,20\n"
    )
    t = read_trace(csv_path)
    assert t.input_lens == [374, 879, 396]  # sorted by time
    assert t.offsets.tolist() == pytest.approx([0.0, 0.31941, 4.314579])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"timestamp": 1, "input_length": 5}\n', "output_length"),
        ("a,b\n1,2\n", "ContextTokens"),
        ("", "empty"),
    ],
)
def test_bad_traces_are_one_line(tmp_path, text, needle):
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(DatasetError, match=needle):
        read_trace(path)


def test_trace_from_the_cli(sim, tmp_path):
    trace = tmp_path / "trace.jsonl"
    _mooncake(trace, n=8)
    proc = perfbench(
        "perf",
        "--url",
        sim(*INSTANT),
        "--trace",
        str(trace),
        "--trace-speed",
        "4",
        "--json",
        "--outputs-dir",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    (run_,) = json.loads(proc.stdout)["runs"]
    assert run_["shape"] == "trace" and run_["ok"] == 8
    bad = perfbench(
        "perf", "--trace", str(tmp_path / "missing.jsonl"), "--outputs-dir", str(tmp_path)
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_random_dataset_exact_lengths_and_the_honoured_check(sim, tmp_path):
    url = sim("--preset", "instant", "--seed", "5", "--output-len-mean", "8")
    args = (
        "perf",
        "--url",
        url,
        "--dataset",
        "random",
        "--input-len",
        "300",
        "--output-len",
        "20",
        "--number",
        "12",
        "--json",
    )
    proc = perfbench(*args, "--outputs-dir", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["runs"]
    # the simulator counts ~4 characters per token, as the fallback tokenizer does
    assert r["mean_input_tokens"] == 300 and r["mean_output_tokens"] == 20
    assert r["exact_output"] == {"asked": 12, "honoured": 12}
    assert not any("different output length" in w for w in r["warnings"])
    # a server that ignores the request for an exact length is caught by the report
    deaf = sim(
        "--preset", "instant", "--seed", "5", "--output-len-mean", "8", "--ignore-length-hints"
    )
    args = (*args[:2], deaf, *args[3:])
    proc = perfbench(*args, "--outputs-dir", str(tmp_path / "b"))
    (r,) = json.loads(proc.stdout)["runs"]
    assert r["exact_output"]["honoured"] < 12
    assert any("different output length" in w for w in r["warnings"])


def test_taking_back_the_exact_length_request_is_not_counted_as_asked(sim, tmp_path):
    proc = perfbench(
        "perf",
        "--url",
        sim("--preset", "instant", "--seed", "5", "--output-len-mean", "8"),
        "--dataset",
        "random",
        "--input-len",
        "50",
        "--output-len",
        "20",
        "--number",
        "6",
        "--extra-body",
        '{"min_tokens": null, "ignore_eos": false}',
        "--json",
        "--outputs-dir",
        str(tmp_path),
    )
    (r,) = json.loads(proc.stdout)["runs"]
    assert r["exact_output"] == {} and not any(
        "different output length" in w for w in r["warnings"]
    )
