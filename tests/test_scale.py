"""Scale-out with worker processes (``--workers N``): one plan, the same requests and figures
whatever N, every row naming its worker, clocks mapped, and nothing lost when the coordinator
is stopped or a worker dies. Everything runs against the real simulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from pathlib import Path

import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from tests.conftest import gone_within, perfbench, rows, start_perfbench, wait_for

TTFT_MS, ITL_MS, TOKENS = 100.0, 10.0, 30
SIM_FLAGS = (
    "--ttft-ms",
    str(TTFT_MS),
    "--itl-ms",
    str(ITL_MS),
    "--itl-ms-per-seq",
    "0",
    "--prefill-us-per-token",
    "0",
    "--seed",
    "1",
)


def _spec(url: str, db: Path, workers: int | None, **load: object) -> PerfSpec:
    return PerfSpec(
        client=ClientSpec(url=url, max_tokens=TOKENS, min_tokens=TOKENS),
        loads=(LoadSpec(**load),),  # type: ignore[arg-type]
        db_path=db,
        workers=workers,
    )


def test_open_loop_sends_the_same_plan_and_measures_the_same_for_1_2_4_workers(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    seen = {}
    for n in (1, 2, 4):
        db = tmp_path / f"w{n}.db"
        result = run(_spec(url, db, n, rate=30.0, number=90, seed=7))
        (only,) = result.runs
        s = only.summary
        assert only.status == "completed" and s.ok == 90, s.errors
        got = rows(
            db,
            "SELECT idx, prompt_id, intended_ns, worker, ttft_ms, itl_ms FROM requests ORDER BY idx",
        )
        (scheduled, recorded) = rows(db, "SELECT scheduled, recorded FROM runs")[0]
        assert scheduled == recorded == 90
        first = got[0][2]
        seen[n] = {
            "requests": [(i, p) for i, p, *_ in got],
            "planned_ms": [(t - first) / 1e6 for _, _, t, *_ in got],
            "ttft": statistics.median(r[4] for r in got),
            "itl": statistics.median(r[5] for r in got),
            "workers": {r[3] for r in got},
        }
    assert seen[1]["workers"] == {None}  # one process: no worker named
    assert seen[2]["workers"] == {0, 1} and seen[4]["workers"] == {0, 1, 2, 3}
    for n in (2, 4):
        assert seen[n]["requests"] == seen[1]["requests"]
        # the same planned instants, mapped through each worker's measured clock offset
        drift = max(abs(a - b) for a, b in zip(seen[n]["planned_ms"], seen[1]["planned_ms"]))
        assert drift < 1.0, drift
        # the same server timing, measured within noise (2-core machine: several ms of slack)
        assert abs(seen[n]["ttft"] - seen[1]["ttft"]) < 8, (n, seen[n]["ttft"], seen[1]["ttft"])
        assert abs(seen[n]["itl"] - seen[1]["itl"]) < 1.5, (n, seen[n]["itl"], seen[1]["itl"])
    for n in (1, 2, 4):
        assert TTFT_MS - 1 <= seen[n]["ttft"] <= TTFT_MS + 10, seen[n]["ttft"]


def test_closed_loop_splits_the_slots_and_sends_the_same_requests(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    one = tmp_path / "one.db"
    four = tmp_path / "four.db"
    run(_spec(url, one, None, parallel=6, number=60, warmup=4))
    result = run(_spec(url, four, 4, parallel=6, number=60, warmup=4))
    assert result.runs[0].status == "completed"
    query = "SELECT idx, prompt_id, warmup FROM requests ORDER BY idx"
    assert rows(four, query) == rows(one, query)
    # slots 6 over 4 workers: 2, 2, 1, 1; request k goes to the owner of slot (k - 4) mod 6
    per_worker = dict(
        rows(four, "SELECT worker, count(*) FROM requests WHERE warmup = 0 GROUP BY worker")
    )
    assert per_worker == {0: 20, 1: 20, 2: 10, 3: 10}
    (workers_json, scheduled, recorded, health) = rows(
        four, "SELECT workers, scheduled, recorded, health FROM runs"
    )[0]
    assert scheduled == recorded == 64
    workers = json.loads(workers_json)
    assert [w["worker"] for w in workers] == [0, 1, 2, 3]
    assert len({w["pid"] for w in workers}) == 4 and os.getpid() not in {w["pid"] for w in workers}
    for w in workers:
        # one machine, one monotonic clock: the true offset is 0, so the measured offset must
        # lie within its stated uncertainty (half the probe's round trip)
        assert abs(w["offset_ns"]) <= w["offset_uncertainty_ns"], w
        assert w["offset_uncertainty_ns"] < 50_000_000
    assert json.loads(health)["loop_lag_ms"]["samples"] > 0
    summary = result.runs[0].summary
    assert [w["requests"] for w in summary.workers] == [20, 20, 10, 10]


def test_closed_loop_bounded_by_duration_ends_on_time_with_every_row(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    db = tmp_path / "d.db"
    start = time.monotonic()
    result = run(_spec(url, db, 2, parallel=4, duration=1.5))
    assert time.monotonic() - start < 30
    (only,) = result.runs
    assert only.status == "completed"
    scheduled, recorded = rows(db, "SELECT scheduled, recorded FROM runs")[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert scheduled == recorded == n >= 8
    assert {w for (w,) in rows(db, "SELECT DISTINCT worker FROM requests")} == {0, 1}


def _workers_of(db: Path) -> list[dict]:
    wait_for(db, "SELECT count(*) FROM runs WHERE workers IS NOT NULL", 1)
    return json.loads(rows(db, "SELECT workers FROM runs")[0][0])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_coordinator_stops_every_worker_and_keeps_every_row(sim, tmp_path, sig, code):
    url = sim(*SIM_FLAGS)
    proc = start_perfbench(
        "perf", "--url", url, "--workers", "2", "--parallel", "6", "--number", "500",
        "--max-tokens", "40", "--min-tokens", "40", "--outputs-dir", str(tmp_path), "--quiet",
    )  # fmt: skip
    db = tmp_path / "perfbench.db"
    pids = [w["pid"] for w in _workers_of(db)]
    wait_for(db, "SELECT count(DISTINCT worker) FROM requests", 2)  # both are sending
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "interrupted" in out, err
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert status == "interrupted" and scheduled == recorded == n and 6 <= n < 500
    by_status = dict(rows(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    assert set(by_status) <= {"ok", "cancelled"} and by_status.get("cancelled", 0) >= 1
    assert gone_within(pids, 10)


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_a_worker_killed_mid_run_costs_only_its_requests_in_flight(sim, tmp_path, policy):
    url = sim(*SIM_FLAGS)
    proc = start_perfbench(
        "perf", "--url", url, "--workers", "2", "--parallel", "4", "--number", "60",
        "--max-tokens", "40", "--min-tokens", "40", "--on-worker-loss", policy,
        "--outputs-dir", str(tmp_path), "--quiet",
    )  # fmt: skip
    db = tmp_path / "perfbench.db"
    victim = _workers_of(db)[1]
    wait_for(db, "SELECT count(*) FROM requests WHERE worker = 1", 2)  # it is mid-run
    os.kill(victim["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    assert "Traceback" not in err, err
    status, scheduled, recorded, workers = rows(
        db, "SELECT status, scheduled, recorded, workers FROM runs"
    )[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert scheduled == recorded == n
    lost = rows(db, "SELECT worker, error FROM requests WHERE status = 'worker_lost'")
    assert 1 <= len(lost) <= 2  # its two streams in flight, no more
    assert all(w == 1 and "worker 1 was lost" in e for w, e in lost)
    entry = json.loads(workers)[1]
    assert "exit code -9" in entry["lost"] and entry["lost_requests"] == len(lost)
    named = f"worker 1 (pid {victim['pid']}"
    if policy == "continue":
        assert proc.returncode == 0, err
        assert status == "completed"
        # worker 0 finished its own share: its 30 requests (slots 0-1 of 4)
        assert (
            rows(db, "SELECT count(*) FROM requests WHERE worker = 0 AND status = 'ok'")[0][0] == 30
        )
    else:
        assert proc.returncode == 1, err
        assert status == "failed"
        assert "--on-worker-loss stop" in err
    assert named in err and "was lost" in err  # one line names it
    report = perfbench("report", "--db", str(db))
    assert named in report.stdout  # and so does the report's warning


def test_a_killed_coordinator_leaves_no_worker_sending(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    proc = start_perfbench(
        "perf", "--url", url, "--workers", "2", "--parallel", "4", "--number", "500",
        "--outputs-dir", str(tmp_path), "--quiet",
    )  # fmt: skip
    db = tmp_path / "perfbench.db"
    pids = [w["pid"] for w in _workers_of(db)]
    wait_for(db, "SELECT count(*) FROM requests", 4)
    proc.kill()
    proc.communicate(timeout=30)
    assert gone_within(pids, 15)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "two"], "--workers"),
    ],
)
def test_bad_worker_counts_are_one_line_and_exit_2(tmp_path, args, says):
    done = perfbench("perf", *args, "--outputs-dir", str(tmp_path), "--number", "5")
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "perfbench.db").exists()  # nothing sent, nothing recorded


def test_sweep_report_and_html_work_on_multi_worker_runs(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    db = tmp_path / "s.db"
    done = perfbench(
        "sweep", "--url", url, "--workers", "2", "--parallel", "2", "4", "--number", "16",
        "--max-tokens", "10", "--min-tokens", "10", "--db", str(db), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {w for (w,) in rows(db, "SELECT DISTINCT worker FROM requests")} == {0, 1}
    report = perfbench("report", "1", "2", "--db", str(db), "--json")
    assert report.returncode == 0, report.stderr
    runs = json.loads(report.stdout)["runs"]
    assert [sum(w["requests"] for w in r["workers"]) for r in runs] == [16, 16]
    page = tmp_path / "r.html"
    html = perfbench("report", "--db", str(db), "--html", str(page))
    assert html.returncode == 0, html.stderr
    assert page.stat().st_size > 10_000


def test_grading_and_compare_work_on_a_multi_worker_run(tmp_path):
    db = tmp_path / "g.db"
    graded = perfbench(
        "perf", "--workers", "2", "--dataset", "synthetic_math", "--number", "24",
        "--parallel", "4", "--grade", "--db", str(db), "--json",
    )  # fmt: skip
    assert graded.returncode == 0, graded.stderr
    document = json.loads(graded.stdout)
    assert document["grades"]["runs"][0]["samples"] == 24
    assert {w for (w,) in rows(db, "SELECT DISTINCT worker FROM requests")} == {0, 1}
    single = perfbench(
        "perf", "--dataset", "synthetic_math", "--number", "24", "--parallel", "4",
        "--db", str(db), "--quiet",
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    compared = perfbench("compare", "2", "1", "--db", str(db), "--json")
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["figures"]


def test_auto_stays_in_one_process_for_a_light_load(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    db = tmp_path / "auto.db"
    result = run(
        PerfSpec(
            client=ClientSpec(url=url, max_tokens=5, min_tokens=5),
            loads=(LoadSpec(parallel=4, number=8),),
            db_path=db,
            workers="auto",
        )
    )
    assert result.runs[0].summary.ok == 8
    assert rows(db, "SELECT workers FROM runs")[0][0] is None  # 4 streams: one loop is enough


def test_auto_sizes_workers_by_streams_and_caps_them_at_the_spare_cores():
    from perfbench.scale import STREAMS_PER_WORKER, auto_workers, spare_cores

    def need(**load: object) -> int:
        return auto_workers((LoadSpec(**load),), embedded=False, local=False)  # type: ignore[arg-type]

    assert need(parallel=STREAMS_PER_WORKER) == 1
    assert need(parallel=STREAMS_PER_WORKER + 1) == 2
    assert need(parallel=1000) == 8
    assert need(parallel=None, rate=600.0, number=100) == 5  # uncapped: its rate, as streams
    assert need(parallel=None, rate=600.0, number=100, max_concurrency=64) == 1
    assert need(parallel=None, rate=float("inf"), number=300) == 3  # all at once: 300 streams
    local = auto_workers((LoadSpec(parallel=10_000),), embedded=True)
    assert local == spare_cores(embedded=True) >= 1


def test_every_worker_lost_fails_the_run_even_when_told_to_continue(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    proc = start_perfbench(
        "perf", "--url", url, "--workers", "2", "--parallel", "4", "--number", "400",
        "--max-tokens", "40", "--min-tokens", "40", "--on-worker-loss", "continue",
        "--outputs-dir", str(tmp_path), "--quiet",
    )  # fmt: skip
    db = tmp_path / "perfbench.db"
    pids = [w["pid"] for w in _workers_of(db)]
    wait_for(db, "SELECT count(DISTINCT worker) FROM requests", 2)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    assert "every worker was lost" in err
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert status == "failed" and scheduled == recorded == n < 400
    lost = dict(
        rows(
            db, "SELECT worker, count(*) FROM requests WHERE status = 'worker_lost' GROUP BY worker"
        )
    )
    assert set(lost) <= {0, 1} and 1 <= sum(lost.values()) <= 4
