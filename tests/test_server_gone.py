"""A server that goes away mid-run ends the run honestly: scheduling stops, the requests never
attempted get no invented rows, the run says why and exits 1; or, with --wait-for-server, the
run waits for it and goes on. The server here is a real simulator process, killed with
SIGKILL (by its pid) and restarted on the same port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, children, gone_within, perfbench, rows, start_perfbench, wait_for

FLAGS = ("--ttft-ms", "50", "--itl-ms", "5", "--itl-ms-per-seq", "0", "--seed", "4")


class Server:
    """A simulator on a fixed port that a test can kill and start again."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "perfbench", "sim", "--host", "127.0.0.1",
             "--port", str(self.port), *FLAGS],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert b"listening on" in self.proc.stdout.readline()

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture()
def server() -> Iterator[Server]:
    s = Server()
    s.start()
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.kill()


def _health(db: Path) -> dict:
    return json.loads(rows(db, "SELECT health FROM runs")[0][0])


def test_a_server_that_dies_stops_the_run_without_inventing_rows(server, tmp_path):
    db = tmp_path / "gone.db"
    proc = start_perfbench(
        "perf", "--url", server.url, "--parallel", "16", "--number", "3000", "--max-tokens", "20",
        "--min-tokens", "20", "--db", str(db), "--quiet",
    )  # fmt: skip
    wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 30)
    server.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    assert "stopped: the server went away" in err
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert status == "failed" and scheduled == recorded == n < 3000
    by_status = dict(rows(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    # in flight at the kill: disconnects; then at most a threshold (16) of refused connections
    # and the requests that were connecting when the run stopped, not the 2,900 left to send
    assert by_status.get("connect", 0) <= 2 * 16, by_status
    assert set(by_status) <= {"ok", "disconnect", "connect", "cancelled"}
    assert "went away" in _health(db)["stopped"]
    report = perfbench("report", "--db", str(db))
    assert "the run stopped early: the server went away" in report.stdout


def test_wait_for_server_pauses_and_goes_on_when_it_comes_back(server, tmp_path):
    db = tmp_path / "wait.db"
    proc = start_perfbench(
        "perf", "--url", server.url, "--parallel", "8", "--number", "400", "--max-tokens", "20",
        "--min-tokens", "20", "--wait-for-server", "30", "--db", str(db), "--quiet",
    )  # fmt: skip
    wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 30)
    server.kill()
    time.sleep(2.0)
    server.start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    assert status == "completed" and scheduled == recorded == 400
    (gap,) = _health(db)["server_gaps"]
    assert gap["end_ns"] - gap["start_ns"] >= 1.5e9
    by_status = dict(rows(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    assert set(by_status) <= {"ok", "disconnect", "connect"}, by_status
    # failed: those in flight at the kill, the refused ones that made it suspect, and as many
    # again on pooled connections to the dead server and through the gate as it closed
    assert by_status["ok"] >= 400 - 4 * 8, by_status
    assert "the server was away 1 time(s)" in perfbench("report", "--db", str(db)).stdout


def test_open_loop_does_not_send_what_fell_due_while_the_server_was_away(server, tmp_path):
    db = tmp_path / "open.db"
    proc = start_perfbench(
        "perf", "--url", server.url, "--rate", "40", "--number", "400", "--max-tokens", "10",
        "--min-tokens", "10", "--wait-for-server", "30", "--db", str(db), "--quiet",
    )  # fmt: skip
    wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 30)
    server.kill()
    time.sleep(2.5)
    server.start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    scheduled, recorded = rows(db, "SELECT scheduled, recorded FROM runs")[0]
    skipped = _health(db)["skipped"]
    assert scheduled == recorded and scheduled + skipped == 400
    assert skipped >= 40  # about 2.5 s at 40/s fell due while it was away
    assert "fell due meanwhile and were not sent" in perfbench("report", "--db", str(db)).stdout


def test_a_server_that_dies_stops_a_multi_worker_run(server, tmp_path):
    db = tmp_path / "workers.db"
    proc = start_perfbench(
        "perf", "--url", server.url, "--workers", "2", "--parallel", "8", "--number", "3000",
        "--max-tokens", "20", "--min-tokens", "20", "--db", str(db), "--quiet",
    )  # fmt: skip
    wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 30)
    server.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "stopped: the server went away" in err and "Traceback" not in err
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert status == "failed" and scheduled == recorded == n < 3000


def test_max_error_rate(sim, tmp_path):
    url = sim("--preset", "instant", "--error-rate", "0.5", "--seed", "5")
    args = ("perf", "--url", url, "--number", "40", "--parallel", "4", "--quiet")
    failing = perfbench(*args, "--db", str(tmp_path / "a.db"))
    assert failing.returncode == 1
    assert "more than --max-error-rate 0.25" in failing.stderr
    tolerant = perfbench(*args, "--db", str(tmp_path / "b.db"), "--max-error-rate", "1")
    assert tolerant.returncode == 0, tolerant.stderr
    percent = perfbench(*args, "--db", str(tmp_path / "c.db"), "--max-error-rate", "60%")
    assert percent.returncode == 0, percent.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-error-rate", "-0.1"), ("--max-error-rate", "2"), ("--wait-for-server", "-1")],
)
def test_bad_fault_flags_are_one_line(tmp_path, flag, value):
    done = perfbench("perf", flag, value, "--number", "2", "--outputs-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert flag in done.stderr
    assert not (tmp_path / "perfbench.db").exists()


def test_a_run_whose_process_was_killed_reads_as_killed(server, tmp_path):
    db = tmp_path / "killed.db"
    proc = start_perfbench(
        "perf", "--url", server.url, "--parallel", "4", "--number", "3000", "--db", str(db),
        "--quiet",
    )  # fmt: skip
    wait_for(db, "SELECT count(*) FROM requests", 8)
    listed = perfbench("runs", "--db", str(db), "--json")
    assert json.loads(listed.stdout)["runs"][0]["status"] == "running"  # alive: still running
    proc.kill()
    proc.communicate(timeout=30)
    assert rows(db, "SELECT status FROM runs")[0][0] == "running"  # what the row still says
    listed = perfbench("runs", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["runs"][0]["status"] == "killed"
    report = perfbench("report", "--db", str(db))
    assert report.returncode == 0, report.stderr
    assert "the run was killed" in report.stdout


def test_the_embedded_simulator_does_not_outlive_a_killed_perfbench(tmp_path):
    db = tmp_path / "embedded.db"
    proc = start_perfbench(
        "perf", "--parallel", "2", "--number", "5000", "--db", str(db), "--quiet"
    )
    wait_for(db, "SELECT count(*) FROM requests", 4)
    (sim_pid,) = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=30)
    if not gone_within([sim_pid], 10):
        os.kill(sim_pid, signal.SIGKILL)  # do not leave it behind, then fail
        raise AssertionError("the embedded simulator outlived perfbench")


def test_a_full_disk_stops_the_run_and_keeps_what_was_written(tmp_path):
    """A real write failure: the process may not grow any file past 3 MB (RLIMIT_FSIZE; Python
    ignores SIGXFSZ, so the write fails with EFBIG and SQLite reports it)."""
    import resource
    import sqlite3

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))

    db = tmp_path / "full.db"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "perfbench", "perf", "--parallel", "16", "--number", "20000",
         "--sim-args", "--preset instant", "--db", str(db), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, preexec_fn=limited, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot write to {db}" in line and "rows written before are kept" in line
    assert time.monotonic() - start < 60  # it stopped, rather than sending all 20,000
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        status, recorded, health = conn.execute(
            "SELECT status, recorded, health FROM runs"
        ).fetchone()
        ended = conn.execute("SELECT count(*) FROM requests WHERE status != 'in_flight'")
        n = ended.fetchone()[0]
    # recorded counts the ends written; a request whose end could not be written may still
    # have the row it got when it started (in_flight)
    assert status == "failed" and recorded == n > 0
    assert "cannot write" in json.loads(health)["stopped"]
    assert perfbench("report", "--db", str(db)).returncode == 0  # it still opens and reports


@pytest.mark.parametrize("workers", [None, "2"])
def test_kill_9_keeps_a_row_for_every_request_the_server_had_for_over_a_second(
    server, tmp_path, workers
):
    """Requests in flight at a SIGKILL were written when they started: they stay as in_flight
    rows, and every request started more than a second before the kill has a row. With worker
    processes the coordinator writes that row when a shipment (every 0.25 s) shows the request
    still in flight."""
    db = tmp_path / "k9.db"
    scale = ("--workers", workers) if workers else ()
    proc = start_perfbench(
        "perf", "--url", server.url, "--parallel", "8", "--number", "3000", "--max-tokens", "100",
        "--min-tokens", "100", "--db", str(db), "--quiet", *scale,
    )  # fmt: skip
    wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 16)
    time.sleep(1.5)
    proc.kill()
    proc.communicate(timeout=30)
    by_status = dict(rows(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    # each request takes 50 + 99 × 5 ms ≈ 0.55 s, 8 at a time: the 8 in flight at the kill, and
    # those that ended in the writer's last half second, are in_flight rows; none is missing
    assert 1 <= by_status.get("in_flight", 0) <= 8 + 16, by_status
    idx = [i for (i,) in rows(db, "SELECT idx FROM requests ORDER BY idx")]
    if workers is None:
        assert idx == list(range(len(idx)))  # no gaps: every started request has its row
    else:  # a request started in the last shipment's 0.25 s may lack its row: the newest only
        missing = sorted(set(range(idx[-1] + 1)) - set(idx))
        assert not missing or missing[0] > idx[-1] - 2 * 8, missing
    report = perfbench("report", "--db", str(db), "--json")
    run = json.loads(report.stdout)["runs"][0]
    assert run["status"] == "killed" and run["errors"].get("in_flight", 0) >= 1
