"""``perf --resume RUN`` finishes a run that was killed, interrupted or stopped, in place: it
sends, into the same run, only the planned measured requests without an ``ok`` row, keeps the
rows it replaces in table ``resent``, lists itself in ``runs.health.resumes``, grades an eval as
a run that was never stopped would, and counts the time the run lay stopped for no throughput.
Bad resumes are one line, exit 2, and leave the database as it was.

Every run here is the real CLI in a subprocess (the Python API test resumes in-process), with
the embedded simulator over real HTTP on 127.0.0.1, slowed so that a run can be stopped mid-way
(about 70 ms a request). Everything started is stopped by its pid; every wait is bounded."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.errors import ConfigError
from tests.conftest import (
    ROOT,
    alive,
    children,
    gone_within,
    perfbench,
    rows,
    start_perfbench,
    wait_for,
)

SLOW = "--ttft-ms 20 --itl-ms 5 --itl-ms-per-seq 0 --seed 3"  # 10 tokens: about 70 ms a request
SHORT = ("--max-tokens", "10", "--min-tokens", "10")
N = 120  # planned measured requests: about 2 s at --parallel 4


# -- helpers -------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> tuple[str, str]:
    """Send ``sig`` to the CLI by its pid (0: none, let it end), reap it (SIGKILL after 60 s),
    and check that the embedded simulator it started went with it (it watches its parent)."""
    kids = children(proc.pid)
    if sig and proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert gone_within(kids, 20), f"processes left behind by pid {proc.pid}: {kids}"
    return out, err


def _started(*args: str) -> subprocess.Popen[str]:
    proc = start_perfbench(*args)
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True, scope="module")
def _nothing_left_running() -> Iterator[None]:
    """Whatever a failed test left running is killed by its pid when the module ends."""
    yield
    for proc in _STARTED:
        if proc.returncode is None:
            _stop(proc)


def _one_line(done: subprocess.CompletedProcess[str], *says: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in says:
        assert needle in lines[0], lines[0]


def _state(db: Path) -> tuple[object, ...]:
    """Everything a refused resume must leave as it was: the runs rows, the request rows by
    run, status and warm-up, the resent rows and the grades."""
    return (
        rows(db, "SELECT * FROM runs ORDER BY id"),
        rows(
            db,
            "SELECT run_id, status, warmup, count(*), min(idx), max(idx), sum(coalesce(end_ns, 0)) "
            "FROM requests GROUP BY run_id, status, warmup ORDER BY 1, 2, 3",
        ),
        rows(db, "SELECT count(*) FROM resent") if _has(db, "resent") else None,
        rows(db, "SELECT count(*) FROM grades") if _has(db, "grades") else None,
    )


def _has(db: Path, table: str) -> bool:
    return bool(rows(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)))


def _measured(db: Path, run_id: int = 1) -> dict[int, str]:
    return dict(
        rows(db, "SELECT idx, status FROM requests WHERE run_id = ? AND warmup = 0", (run_id,))
    )


def _health(db: Path, run_id: int = 1) -> dict:
    return json.loads(rows(db, "SELECT health FROM runs WHERE id = ?", (run_id,))[0][0] or "{}")


def _report(db: Path, run_id: int = 1) -> dict:
    done = perfbench("report", str(run_id), "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    (one,) = json.loads(done.stdout)["runs"]
    return one


@dataclass
class Stopped:
    """A run stopped mid-way and then resumed, as the tests find it."""

    db: Path
    first: tuple[int, str, str]  # the stopped run's exit code, stdout and stderr
    before: dict[int, tuple[int, str]]  # its rows before the resume: idx → (warmup, status)
    resumed: subprocess.CompletedProcess[str]
    planned: int
    warmup: int = 0
    graded_before: int = 0  # grades stored before the resume

    @property
    def lacking(self) -> list[int]:
        """The planned measured indices that had no ok row before the resume."""
        first = self.warmup
        return [
            i
            for i in range(first, first + self.planned)
            if self.before.get(i, (0, "")) != (0, "ok")
        ]

    @property
    def set_aside(self) -> dict[int, str]:
        """The measured rows, other than ok, that the resume had to replace."""
        return {i: s for i, (w, s) in self.before.items() if not w and s != "ok"}


def _stop_and_resume(
    db: Path, args: tuple[str, ...], *, sig: int, at_least: int, pause: float = 0.0
) -> Stopped:
    """Start ``perf ARGS``, send it ``sig`` once ``at_least`` measured requests are ok, wait
    ``pause`` seconds, then ``perf --resume 1``."""
    proc = _started("perf", *args, "--db", str(db), "--quiet")
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok' AND warmup = 0", at_least)
    finally:
        out, err = _stop(proc, sig)
    before = {
        i: (w, s)
        for i, w, s in rows(db, "SELECT idx, warmup, status FROM requests WHERE run_id = 1")
    }
    graded = rows(db, "SELECT count(*) FROM grades")[0][0]
    load = json.loads(rows(db, "SELECT load FROM runs WHERE id = 1")[0][0])
    ok_before = sum(1 for w, s in before.values() if not w and s == "ok")
    assert ok_before < load["planned"], "the run ended before it was stopped: make it slower"
    time.sleep(pause)
    resumed = perfbench("perf", "--resume", "1", "--db", str(db), "--json")
    return Stopped(
        db, (proc.returncode, out, err), before, resumed, load["planned"], load["warmup"], graded
    )


def _check_finished(s: Stopped) -> None:
    """What every resumed run must be: completed, one ok row per planned measured request, the
    replaced rows in ``resent``, the resume in ``runs.health``, every row counted."""
    db = s.db
    assert s.resumed.returncode == 0, s.resumed.stderr
    assert "Traceback" not in s.resumed.stderr
    (printed,) = json.loads(s.resumed.stdout)["runs"]
    assert printed["run_id"] == 1 and printed["status"] == "completed"
    assert rows(db, "SELECT count(*) FROM runs") == [(1,)]  # the same run, no new one

    measured = _measured(db)
    assert sorted(measured) == list(range(s.warmup, s.warmup + s.planned))  # one row each
    assert set(measured.values()) == {"ok"}
    assert rows(db, "SELECT count(*) FROM requests WHERE status = 'in_flight'") == [(0,)]

    # the rows replaced, kept as they were; and only those
    resent = {
        i: json.loads(row)
        for i, resume, row in rows(db, "SELECT idx, resume, row FROM resent WHERE run_id = 1")
        if resume == 1
    }
    assert rows(db, "SELECT count(*) FROM resent") == [(len(s.set_aside),)]
    assert {i: r["status"] for i, r in resent.items()} == s.set_aside
    assert all(r["warmup"] == 0 for r in resent.values())

    (entry,) = _health(db)["resumes"]
    assert entry["resume"] == 1
    assert entry["resent"] == len(s.lacking)  # never sent, in flight, cancelled: all again
    counts: dict[str, int] = {}
    for status in s.set_aside.values():
        counts[status] = counts.get(status, 0) + 1
    assert entry["set_aside"] == counts
    assert entry["clock"] == "same"  # the same boot of this machine: the times are true

    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    n = rows(db, "SELECT count(*) FROM requests WHERE run_id = 1")[0][0]
    assert status == "completed" and scheduled == recorded == n

    report = _report(db)
    assert report["status"] == "completed"
    assert report["measured"] == report["ok"] == s.planned and report["failed"] == 0
    (said,) = [w for w in report["warnings"] if "resumed" in w]
    assert "resumed 1 time(s)" in said and f"{len(s.lacking)} requests were sent again" in said


# -- kill -9, then resume ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    db = tmp_path_factory.mktemp("killed") / "k.db"
    args = ("--sim-args", SLOW, "--parallel", "4", "--number", str(N), *SHORT)
    # 3 s stopped: the throughput window must not count them
    return _stop_and_resume(db, args, sig=signal.SIGKILL, at_least=10, pause=3.0)


def test_a_killed_run_resumes_to_one_ok_row_per_planned_request(killed):
    assert killed.first[0] == -signal.SIGKILL
    assert set(killed.set_aside.values()) <= {"in_flight"}, killed.set_aside
    _check_finished(killed)


def test_the_window_of_a_resumed_run_leaves_out_the_time_it_lay_stopped(killed):
    db = killed.db
    report = _report(db)
    sent, end = rows(db, "SELECT min(sent_ns), max(end_ns) FROM requests WHERE warmup = 0")[0]
    wall = (end - sent) / 1e9  # first send to last end, the 3 s stop and the restart in it
    window = report["duration_s"]
    assert wall > 3.0
    assert 0 < window < wall - 2.0, (window, wall)
    assert report["req_per_s"] == pytest.approx(N / window)
    # the resume is stamped between the killed run's last end and its own first send
    (entry,) = _health(db)["resumes"]
    kept = [i for i, (w, s) in killed.before.items() if s == "ok"]
    last_end = max(
        e for i, e in rows(db, "SELECT idx, end_ns FROM requests WHERE warmup = 0") if i in kept
    )
    first_new = min(
        t for i, t in rows(db, "SELECT idx, sent_ns FROM requests WHERE warmup = 0")
        if i not in kept
    )  # fmt: skip
    assert last_end < entry["at_ns"] < first_new


# -- SIGINT with a warm-up, then resume ---------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    db = tmp_path_factory.mktemp("interrupted") / "i.db"
    args = ("--sim-args", SLOW, "--parallel", "4", "--number", str(N), "--warmup", "4", *SHORT)
    return _stop_and_resume(db, args, sig=signal.SIGINT, at_least=10)


def test_an_interrupted_run_resumes_and_its_figures_count_measured_rows_only(interrupted):
    s = interrupted
    code, out, err = s.first
    assert code == 130 and "Traceback" not in err, err
    assert rows(s.db, "SELECT count(*) FROM resent") == [(len(s.set_aside),)]
    assert set(s.set_aside.values()) <= {"cancelled", "in_flight"}, s.set_aside
    _check_finished(s)
    report = _report(s.db)
    assert report["warmup"] == 4
    assert report["measured"] == N  # the warm-up, first and again, is in no figure
    assert report["distributions"]["ttft_ms"]["n"] == N
    assert report["distributions"]["e2e_ms"]["n"] == N
    # the first warm-up's rows are kept as they were
    assert rows(
        s.db, "SELECT idx, status FROM requests WHERE warmup = 1 AND idx < 4 ORDER BY idx"
    ) == [(i, "ok") for i in range(4)]


def test_the_warmup_sent_again_keeps_its_rows_after_the_runs_last_index(interrupted):
    s = interrupted
    warm = rows(s.db, "SELECT idx, status FROM requests WHERE warmup = 1 ORDER BY idx")
    again = [(i, st) for i, st in warm if i >= 4]
    assert len(again) == 4, warm  # four warm-up requests were sent again: four rows
    assert all(i >= 4 + N and st == "ok" for i, st in again), warm  # after every planned index
    status, scheduled, recorded = rows(s.db, "SELECT status, scheduled, recorded FROM runs")[0]
    assert scheduled == recorded == N + 8  # both warm-ups and the measured requests


def test_a_run_killed_in_its_warmup_resumes_with_no_row_left_in_flight(tmp_path):
    db = tmp_path / "w.db"
    proc = _started(
        "perf", "--sim-args", "--ttft-ms 400 --itl-ms 5 --seed 3", "--parallel", "4",
        "--number", "16", "--warmup", "8", *SHORT, "--db", str(db), "--quiet",
    )  # fmt: skip
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE warmup = 1", 4)
    finally:
        _stop(proc)
    assert rows(db, "SELECT count(*) FROM requests WHERE warmup = 0") == [(0,)]
    done = perfbench("perf", "--resume", "1", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    assert set(_measured(db).values()) == {"ok"} and len(_measured(db)) == 16
    assert rows(db, "SELECT count(*) FROM requests WHERE status = 'in_flight'") == [(0,)]
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    assert status == "completed" and scheduled == recorded


# -- an eval: grades cover every (question, sample) once ----------------------------------------


def test_a_resumed_eval_is_graded_as_a_run_never_stopped(tmp_path):
    args = (
        "--dataset", "synthetic_math", "--n", "2", "--grade", "--number", "100",
        "--parallel", "8", "--max-tokens", "30", "--sim-args", SLOW,
    )  # fmt: skip
    whole_db = tmp_path / "whole.db"
    whole = _started("perf", *args, "--db", str(whole_db), "--quiet")  # the same, never stopped
    try:
        s = _stop_and_resume(tmp_path / "eval.db", args, sig=signal.SIGINT, at_least=16)
    finally:
        _stop(whole, 0)
    assert whole.returncode == 0
    assert s.first[0] == 130
    assert s.graded_before == 0  # a stopped run is not graded
    assert s.resumed.returncode == 0, s.resumed.stderr
    assert rows(s.db, "SELECT count(*) FROM requests WHERE status != 'ok'") == [(0,)]

    def graded(db: Path) -> list[tuple[object, ...]]:
        return rows(db, "SELECT idx, prompt_id, sample FROM grades WHERE run_id = 1 ORDER BY idx")

    mine = graded(s.db)
    assert mine == graded(whole_db)  # the same requests, questions and sample numbers
    assert [i for i, _, _ in mine] == list(range(100))  # every measured request once
    pairs = [(p, k) for _, p, k in mine]
    assert len(set(pairs)) == 100 and {k for _, k in pairs} == {0, 1}  # 50 questions × 2
    scores = json.loads(s.resumed.stdout)["grades"]["runs"][0]
    assert scores["samples"] == 100
    nums = {(x["metric"], x["subset"]): x["num"] for x in scores["scores"]}
    assert nums[("AveragePass@1", "OVERALL")] == 100 and nums[("pass@2", "OVERALL")] == 50


# -- an open loop ---------------------------------------------------------------------------------

RATE = 50


@pytest.fixture(scope="module")
def open_loop(tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    db = tmp_path_factory.mktemp("open") / "o.db"
    args = ("--sim-args", SLOW, "--rate", str(RATE), "--number", "100", *SHORT)
    return _stop_and_resume(db, args, sig=signal.SIGKILL, at_least=10, pause=2.0)


def test_a_killed_open_loop_run_resumes_every_planned_request(open_loop):
    _check_finished(open_loop)
    report = _report(open_loop.db)
    assert report["mode"] == "open" and report["rate"] == RATE


def test_the_rates_of_a_resumed_open_loop_leave_out_the_stop(open_loop):
    report = _report(open_loop.db)
    # about 50/s within each segment (100 seeded Poisson arrivals: some 10% either way);
    # across the 2 s stop and the restart it reads under 20/s
    assert report["planned_rate"] > 0.6 * RATE, report["planned_rate"]
    assert report["achieved_send_rate"] > 0.6 * RATE, report["achieved_send_rate"]


# -- bad resumes: one line, exit 2, nothing changed ---------------------------------------------


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("completed") / "c.db"
    done = perfbench(
        "perf", "--sim-args", "--preset instant", "--number", "4", "--db", str(db), "--quiet"
    )
    assert done.returncode == 0, done.stderr
    return db


@pytest.mark.parametrize(
    ("run", "says"),
    [("99", "no run 99"), ("1", "run 1 completed: nothing to resume")],
    ids=["no-such-run", "completed"],
)
def test_a_run_that_cannot_be_resumed_is_refused(completed, run, says):
    before = _state(completed)
    _one_line(perfbench("perf", "--resume", run, "--db", str(completed)), says)
    assert _state(completed) == before


def test_resume_with_no_database_creates_none(tmp_path):
    db = tmp_path / "none.db"
    _one_line(perfbench("perf", "--resume", "1", "--db", str(db)), "no database at", "--db")
    assert not db.exists() and not list(tmp_path.iterdir())


def test_a_run_still_running_is_not_resumed_from_another_process(tmp_path):
    db = tmp_path / "r.db"
    proc = _started(
        "perf", "--sim-args", SLOW, "--parallel", "2", "--number", "5000", *SHORT,
        "--db", str(db), "--quiet",
    )  # fmt: skip
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 4)
        done = perfbench("perf", "--resume", "1", "--db", str(db))
        assert alive(proc.pid)  # untouched: still sending
        (status, health, owner) = rows(db, "SELECT status, health, owner FROM runs")[0]
    finally:
        out, err = _stop(proc, signal.SIGINT)
    _one_line(done, "run 1 is still running", f"pid {proc.pid}", "stop it first")
    assert status == "running" and json.loads(owner)["pid"] == proc.pid
    assert health is None and rows(db, "SELECT count(*) FROM resent") == [(0,)]
    assert proc.returncode == 130, err
    (status, health) = rows(db, "SELECT status, health FROM runs")[0]
    assert status == "interrupted" and "resumes" not in json.loads(health)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run sent with --api-key (the simulator takes any key), killed mid-way."""
    db = tmp_path_factory.mktemp("keyed") / "a.db"
    proc = _started(
        "perf", "--api-key", "SECRET-7", "--sim-args", SLOW, "--parallel", "4",
        "--number", str(N), *SHORT, "--db", str(db), "--quiet",
    )  # fmt: skip
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 4)
    finally:
        _stop(proc)
    return db


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "pass --api-key again"),
        (("--parallel", "3"), "drop --parallel"),
        (
            ("--api-key", "K", "--number", "5", "--sim-args", "--ttft-ms 1"),
            "drop --number, --sim-args",
        ),
        (("--repeat", "0"), "--repeat"),
        (("--max-error-rate", "-1"), "--max-error-rate"),
    ],
    ids=["no-api-key", "parallel", "number-sim-args", "repeat-0", "max-error-rate-negative"],
)
def test_a_bad_resume_of_a_killed_run_changes_nothing(keyed, args, says):
    assert "SECRET-7" not in rows(keyed, "SELECT command FROM runs")[0][0]  # never stored
    assert rows(keyed, "SELECT count(*) FROM requests WHERE status = 'ok'")[0][0] >= 4
    before = _state(keyed)
    _one_line(perfbench("perf", "--resume", "1", *args, "--db", str(keyed)), says)
    assert _state(keyed) == before


def test_a_killed_run_sent_with_an_api_key_resumes_with_it_given_again(keyed):
    # after the refusals above (module order); on its own it is a plain resume
    done = perfbench("perf", "--resume", "1", "--api-key", "SECRET-7", "--db", str(keyed), "--json")
    assert done.returncode == 0, done.stderr
    measured = _measured(keyed)
    assert len(measured) == N and set(measured.values()) == {"ok"}
    assert "SECRET-7" not in json.dumps(rows(keyed, "SELECT * FROM runs"))


def test_a_run_whose_url_carried_a_password_asks_for_the_url_again(sim, tmp_path):
    url = sim("--ttft-ms", "20", "--itl-ms", "5", "--itl-ms-per-seq", "0", "--seed", "3")
    db = tmp_path / "u.db"
    proc = _started(
        "perf", "--url", url.replace("http://", "http://user:pw@"), "--parallel", "4",
        "--number", str(N), *SHORT, "--db", str(db), "--quiet",
    )  # fmt: skip
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 4)
    finally:
        _stop(proc)
    assert "pw" not in rows(db, "SELECT command FROM runs")[0][0]
    before = _state(db)
    _one_line(perfbench("perf", "--resume", "1", "--db", str(db)), "--url")
    assert _state(db) == before


def test_a_run_graded_with_a_judge_key_asks_for_the_key_again(tmp_path):
    db = tmp_path / "j.db"
    proc = _started(
        "perf", "--dataset", "synthetic_math", "--think", "--judge-api-key", "JUDGE-7",
        "--sim-args", SLOW, "--parallel", "4", "--number", str(N), *SHORT, "--db", str(db),
        "--quiet",
    )  # fmt: skip
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 4)
    finally:
        _stop(proc)
    before = _state(db)
    _one_line(perfbench("perf", "--resume", "1", "--db", str(db)), "--judge-api-key")
    assert _state(db) == before


class _HeldModels:
    """A server whose model list is held until the test lets it go: a resume pointed at it is
    caught after its checks and before its first request. Everything else is a 404."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.go = threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    held.asked.set()
                    held.go.wait(30)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _HeldModels:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.go.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def test_two_resumes_of_one_run_at_once_one_is_refused(tmp_path):
    db = tmp_path / "t.db"
    proc = _started(
        "perf", "--sim-args", SLOW, "--parallel", "4", "--number", str(N), *SHORT,
        "--db", str(db), "--quiet",
    )  # fmt: skip
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 4)
    finally:
        _stop(proc)
    with _HeldModels() as held:
        # the first resume is held at the model list: past its checks, before any request
        first = _started("perf", "--resume", "1", "--url", held.url, "--db", str(db), "--quiet")
        try:
            assert held.asked.wait(60), "the first resume never asked for the model list"
            other = perfbench("perf", "--resume", "1", "--db", str(db), "--quiet")
        finally:
            held.go.set()
            _stop(first, 0)  # its model list is a 404: it ends
    _one_line(other, "run 1 is still running")


# -- the Python API -------------------------------------------------------------------------------


def _api_spec(db: str | Path, **load: object) -> PerfSpec:
    """The spec of the Python API test: made, killed, and resumed with it."""
    shape = {"parallel": 4, "number": N, **load}
    return PerfSpec(
        client=ClientSpec(max_tokens=10, min_tokens=10),
        loads=(LoadSpec(**shape),),  # type: ignore[arg-type]
        db_path=Path(db),
        sim_args=tuple(SLOW.split()),
    )


def test_the_python_api_resumes_a_run_with_the_same_spec(tmp_path):
    db = tmp_path / "p.db"
    code = "import sys; from perfbench import run; from tests.test_resume import _api_spec; run(_api_spec(sys.argv[1]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _STARTED.append(proc)
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status = 'ok'", 10)
    finally:
        _stop(proc)
    before = _state(db)
    ok_before = len([s for s in _measured(db).values() if s == "ok"])
    assert ok_before < N

    # the CLI cannot rebuild a spec it never saw
    _one_line(perfbench("perf", "--resume", "1", "--db", str(db)), "PerfSpec(resume=ID)")
    # a spec whose load is not the run's is refused, naming what differs
    with pytest.raises(ConfigError, match=r"not made with this load \(parallel differ\)"):
        run(dataclasses.replace(_api_spec(db, parallel=3), resume=1))
    assert _state(db) == before

    spec = _api_spec(db)
    result = run(dataclasses.replace(spec, resume=1))
    (one,) = result.runs
    assert one.run_id == 1 and one.status == "completed" and result.exit_code == 0
    assert one.summary.measured == one.summary.ok == N
    measured = _measured(db)
    assert sorted(measured) == list(range(N)) and set(measured.values()) == {"ok"}
    (entry,) = _health(db)["resumes"]
    assert entry["resent"] == N - ok_before
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    assert status == "completed" and scheduled == recorded == len(measured)
