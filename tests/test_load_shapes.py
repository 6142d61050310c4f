"""Load shapes end to end against the simulator: duration bounds, concurrency caps, warm-up."""

from __future__ import annotations

import signal
import time

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from tests.conftest import rows, start_perfbench, wait_for

SLOW = ("--ttft-ms", "20", "--itl-ms", "10", "--itl-ms-per-seq", "0", "--seed", "2")


def test_duration_ends_a_closed_loop_run(sim, tmp_path):
    spec = PerfSpec(
        client=ClientSpec(url=sim(*SLOW), max_tokens=10, min_tokens=10),
        loads=(LoadSpec(parallel=2, number=None, duration=1.0),),
        db_path=tmp_path / "d.db",
    )
    start = time.monotonic()
    (r,) = run(spec).runs
    elapsed = time.monotonic() - start
    # each request takes ~110 ms: two workers fit about 18 in one second, then stop
    assert 10 <= r.summary.ok <= 24, r.summary.ok
    assert elapsed < 5
    (last_sent,) = rows(tmp_path / "d.db", "SELECT max(sent_ns) - min(sent_ns) FROM requests")[0]
    assert last_sent < 1.05e9  # nothing was started after the duration


def test_max_concurrency_caps_an_open_loop_and_shows_as_schedule_lag(sim, tmp_path):
    spec = PerfSpec(
        client=ClientSpec(url=sim(*SLOW), max_tokens=20, min_tokens=20),
        loads=(LoadSpec(parallel=None, rate=float("inf"), number=12, max_concurrency=3),),
        db_path=tmp_path / "c.db",
    )
    (r,) = run(spec).runs
    s = r.summary
    assert s.ok == 12 and s.mode == "open"
    assert s.achieved_concurrency <= 3.05
    # everything was planned at t=0; the last requests waited for three rounds of ~210 ms
    lags = sorted(x for (x,) in rows(tmp_path / "c.db", "SELECT schedule_lag_ms FROM requests"))
    assert lags[0] < 5 and lags[-1] > 500
    assert any("late against the plan" in w and "--max-concurrency" in w for w in s.warnings)


def test_warmup_is_recorded_but_left_out(sim, tmp_path):
    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "1"), max_tokens=8),
        loads=(LoadSpec(parallel=2, number=10, warmup=4),),
        db_path=tmp_path / "w.db",
    )
    (r,) = run(spec).runs
    assert r.summary.measured == 10 and r.summary.warmup == 4
    assert rows(tmp_path / "w.db", "SELECT count(*), sum(warmup) FROM requests") == [(14, 4)]
    # warm-up ran first: every measured request was sent after the last warm-up one ended
    (first_measured,) = rows(
        tmp_path / "w.db", "SELECT min(sent_ns) FROM requests WHERE warmup = 0"
    )[0]
    (last_warm_end,) = rows(tmp_path / "w.db", "SELECT max(end_ns) FROM requests WHERE warmup = 1")[
        0
    ]
    assert first_measured >= last_warm_end


def test_sigint_in_an_open_loop_records_waiting_and_flying_requests(sim, tmp_path):
    url = sim(*SLOW)
    proc = start_perfbench(
        "perf",
        "--url",
        url,
        "--rate",
        "inf",
        "--number",
        "40",
        "--max-concurrency",
        "4",
        "--max-tokens",
        "100",
        "--min-tokens",
        "100",
        "--outputs-dir",
        str(tmp_path),
        "--quiet",
    )
    db = tmp_path / "perfbench.db"
    wait_for(db, "SELECT count(*) FROM runs", 1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    assert status == "interrupted" and scheduled == recorded
    by_status = dict(rows(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    assert sum(by_status.values()) == recorded
    # four were in flight and one waited for a slot when the signal came: all have rows
    assert by_status.get("cancelled", 0) >= 4
    waited = rows(
        db, "SELECT count(*) FROM requests WHERE status = 'cancelled' AND sent_ns IS NULL"
    )
    assert waited[0][0] >= 1


def test_constant_arrivals_are_evenly_spaced(sim, tmp_path):
    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "1"), max_tokens=4),
        loads=(LoadSpec(parallel=None, rate=20.0, number=21, arrival="constant"),),
        db_path=tmp_path / "k.db",
    )
    (r,) = run(spec).runs
    assert r.summary.shape == "constant" and r.summary.ok == 21
    intended = [
        x for (x,) in rows(tmp_path / "k.db", "SELECT intended_ns FROM requests ORDER BY idx")
    ]
    gaps = {round((b - a) / 1e6, 3) for a, b in zip(intended, intended[1:])}
    assert gaps == {50.0}  # exactly 1/rate apart, in the plan
    sent = [x for (x,) in rows(tmp_path / "k.db", "SELECT sent_ns FROM requests ORDER BY idx")]
    assert abs((sent[-1] - sent[0]) / 1e9 - 1.0) < 0.05


def test_ramp_raises_the_rate_over_the_duration(sim, tmp_path):
    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "1"), max_tokens=4),
        loads=(
            LoadSpec(
                parallel=None, number=None, ramp_from=10.0, ramp_to=70.0, duration=2.0, seed=4
            ),
        ),
        db_path=tmp_path / "r.db",
    )
    (r,) = run(spec).runs
    assert r.summary.shape == "ramp"
    sent = [x / 1e9 for (x,) in rows(tmp_path / "r.db", "SELECT intended_ns FROM requests")]
    first = sum(1 for t in sent if t - min(sent) < 1.0)
    second = len(sent) - first
    # expected 25 arrivals in the first second and 55 in the second (rate 10 -> 70 linearly)
    assert 12 <= first <= 40 and 38 <= second <= 75 and second > first, (first, second)


def test_thinking_flag_reaches_the_request_body():
    import json

    from perfbench.client.wire import build_body
    from perfbench.config import ClientSpec, parse_extra_body

    spec = ClientSpec(
        url="http://127.0.0.1:1", thinking=False, extra_body=parse_extra_body('{"top_k": 5}')
    )
    body = json.loads(build_body(spec, "m", [{"role": "user", "content": "hi"}], None, 8))
    assert body["top_k"] == 5
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    spec = ClientSpec(url="http://127.0.0.1:1", thinking=True)
    body = json.loads(build_body(spec, "m", [{"role": "user", "content": "hi"}], None, 8))
    assert body["chat_template_kwargs"] == {"enable_thinking": True}


def test_mixed_collection_records_each_requests_dataset(sim, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("what is 2+2?\nname a colour\n")
    from perfbench.config import WorkloadSpec

    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "1"), max_tokens=4),
        loads=(LoadSpec(parallel=4, number=200),),
        workload=WorkloadSpec(
            mix=(("openqa", None, 3.0), ("line_by_line", str(lines), 1.0)), seed=9
        ),
        db_path=tmp_path / "m.db",
    )
    (r,) = run(spec).runs
    counts = dict(
        rows(tmp_path / "m.db", "SELECT dataset, count(*) FROM requests GROUP BY dataset")
    )
    assert set(counts) == {"openqa", "line_by_line"} and sum(counts.values()) == 200
    assert 120 <= counts["openqa"] <= 180  # weight 3 of 4
    by = r.summary.by_dataset
    assert (
        by["openqa"]["ok"] == counts["openqa"]
        and by["line_by_line"]["ok"] == counts["line_by_line"]
    )
    ids = [
        i
        for (i,) in rows(
            tmp_path / "m.db",
            "SELECT prompt_id FROM requests WHERE dataset = 'line_by_line' ORDER BY idx",
        )
    ]
    assert ids[:4] == ["line-1", "line-2", "line-1", "line-2"]  # each dataset's rows in turn


def test_eval_dataset_once_per_row_times_n_samples(sim, tmp_path):
    rows_in = [
        {
            "problem": f"What is {k} + {k}?",
            "answer": str(2 * k),
            "subject": "Algebra",
            "level": 1,
            "unique_id": f"q{k}",
        }
        for k in range(5)
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows_in))
    from perfbench.config import WorkloadSpec

    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "1"), max_tokens=8),
        loads=(LoadSpec(parallel=3, number=None),),
        workload=WorkloadSpec(dataset="math_500", dataset_path=str(path), n=3),
        db_path=tmp_path / "n.db",
    )
    (r,) = run(spec).runs
    ids = [i for (i,) in rows(tmp_path / "n.db", "SELECT prompt_id FROM requests ORDER BY idx")]
    assert ids == [f"q{k}" for k in range(5) for _ in range(3)]  # every row, three samples each
    assert r.summary.ok == 15
    # what a grader needs is stored once per prompt
    stored = rows(
        tmp_path / "n.db",
        "SELECT prompt_id, answer, subset, grader, dataset, messages "
        "FROM prompts ORDER BY prompt_id",
    )
    assert [s[:5] for s in stored] == [
        (f"q{k}", str(2 * k), "level 1", "math", "math_500") for k in range(5)
    ]
    assert "What is 0 + 0?" in stored[0][5]


def test_a_mix_of_eval_datasets_holds_each_row_once(tmp_path):
    import json as _json

    from perfbench.config import WorkloadSpec
    from perfbench.workload import load_prompts

    paths = []
    for name, n in (("a", 7), ("b", 3)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "".join(
                _json.dumps({"id": f"{name}{k}", "prompt": f"q {k}", "answer": str(k)}) + "\n"
                for k in range(n)
            )
        )
        paths.append(str(path))
    spec = WorkloadSpec(mix=(("jsonl", paths[0], 1.0), ("jsonl", paths[1], 5.0)), seed=3)
    ids = [p.id for p in load_prompts(spec)]
    assert sorted(ids) == sorted([f"a{k}" for k in range(7)] + [f"b{k}" for k in range(3)])
    assert [i for i in ids if i.startswith("a")] == [f"a{k}" for k in range(7)]  # own order kept
