"""Each fault the simulator injects ends as the right status on its row, and scheduled = recorded."""

from __future__ import annotations

import dataclasses
import json

import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from tests.conftest import rows

FAST = ("--preset", "instant", "--seed", "7")

CASES = [
    # (simulator flags, client overrides, expected status, expected http status)
    (("--error-rate", "1", "--error-status", "503"), {}, "http", 503),
    (("--rate-limit-rate", "1"), {}, "http", 429),
    (("--disconnect-rate", "1"), {}, "disconnect", 200),
    (("--malformed-rate", "1"), {}, "malformed", 200),
    (("--error-event-rate", "1"), {}, "stream_error", 200),
    (("--stall-rate", "1", "--stall-ms", "2000"), {"read_timeout": 0.3}, "timeout", 200),
]


def _run(url: str, db, number: int = 6, warmup: int = 0, **client: object):
    spec = PerfSpec(
        client=ClientSpec(url=url, max_tokens=16, min_tokens=16, **client),  # type: ignore[arg-type]
        loads=(LoadSpec(parallel=3, number=number, warmup=warmup),),
        db_path=db,
    )
    return run(spec)


@pytest.mark.parametrize(
    ("flags", "client", "status", "http"), CASES, ids=[c[2] + str(c[3]) for c in CASES]
)
def test_fault_gives_typed_rows(sim, tmp_path, flags, client, status, http):
    url = sim(*FAST, *flags)
    result = _run(url, tmp_path / "f.db", warmup=2, **client)
    (r,) = result.runs
    got = rows(
        tmp_path / "f.db",
        "SELECT status, http_status, error FROM requests WHERE run_id = ?",
        (r.run_id,),
    )
    assert len(got) == 8  # 6 measured + 2 warm-up: every scheduled request has its row
    assert {(s, h) for s, h, _ in got} == {(status, http)}, got
    assert all(e for _, _, e in got), "every failure carries a message"
    run_row = rows(
        tmp_path / "f.db", "SELECT scheduled, recorded, status FROM runs WHERE id = ?", (r.run_id,)
    )[0]
    assert run_row == (8, 8, "completed")
    assert r.summary.ok == 0 and r.summary.failed == 6 and r.summary.errors == {status: 6}
    assert result.exit_code == 1  # no request succeeded: the run could not do its work
    assert any("failed" in w for w in r.summary.warnings)


def test_http_error_message_is_the_servers(sim, tmp_path):
    url = sim(*FAST, "--error-rate", "1", "--error-status", "500")
    result = _run(url, tmp_path / "f.db", number=2)
    (msg,) = {e for (e,) in rows(tmp_path / "f.db", "SELECT error FROM requests")}
    assert msg.startswith("HTTP 500: ") and len(msg) <= 210
    assert result.runs[0].summary.errors == {"http": 2}


def test_partial_failures_are_counted_and_figures_cover_the_rest(sim, tmp_path):
    url = sim(*FAST, "--error-rate", "0.3", "--disconnect-rate", "0.2")
    result = _run(url, tmp_path / "f.db", number=60)
    s = result.runs[0].summary
    got = dict(rows(tmp_path / "f.db", "SELECT status, count(*) FROM requests GROUP BY status"))
    assert sum(got.values()) == 60
    assert got.get("ok", 0) == s.ok and 0 < s.ok < 60
    assert s.errors == {k: v for k, v in got.items() if k != "ok"}
    assert s.distributions["ttft_ms"].n == s.ok  # latency figures over successful requests only
    # about half failed: more than the default --max-error-rate (0.25), so the run exits 1,
    # naming the share; the figures are still there
    share = s.failed / s.measured
    assert share > 0.25  # seeded: 30% errors and 20% disconnects
    (line,) = result.too_many_errors()
    assert f"{s.failed} of 60 requests failed" in line and "--max-error-rate 0.25" in line
    assert result.exit_code == 1
    tolerant = dataclasses.replace(result, max_error_rate=1.0)
    assert tolerant.too_many_errors() == [] and tolerant.exit_code == 0


def test_stall_shorter_than_read_timeout_shows_as_an_itl_gap(sim, tmp_path):
    url = sim(*FAST, "--stall-rate", "1", "--stall-ms", "300")
    result = _run(url, tmp_path / "f.db", number=3)
    s = result.runs[0].summary
    assert s.ok == 3
    assert s.distributions["itl_ms"].values["p99.9"] >= 290


def test_a_writer_that_falls_behind_holds_sending_back(sim, tmp_path, monkeypatch):
    """While the database is locked by another process's transaction the writer cannot insert:
    once more than WRITER_BACKLOG records wait, no request starts until it catches up, so the
    client's memory stays bounded, and the run says the client limited it."""
    import sqlite3
    import threading
    import time

    from perfbench import report, runner

    limit = 200
    monkeypatch.setattr(runner, "WRITER_BACKLOG", limit)
    url = sim(*FAST)
    db = tmp_path / "w.db"
    _run(url, db, number=3)  # the database exists, so that it can be locked
    window: list[int] = []

    def lock_for_two_seconds() -> None:
        conn = sqlite3.connect(db, check_same_thread=False, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the second run has written some rows
            n = conn.execute("SELECT count(*) FROM requests WHERE run_id = 2").fetchone()[0]
            if n >= 50:
                break
            time.sleep(0.01)
        conn.execute("BEGIN IMMEDIATE")
        window.append(time.perf_counter_ns())
        time.sleep(2.0)
        window.append(time.perf_counter_ns())
        conn.execute("COMMIT")
        conn.close()

    locker = threading.Thread(target=lock_for_two_seconds)
    locker.start()
    spec = PerfSpec(
        client=ClientSpec(url=url, max_tokens=16, min_tokens=16),
        loads=(LoadSpec(parallel=32, number=4_000),),
        db_path=db,
    )
    result = run(spec)
    locker.join(timeout=60)
    (r,) = result.runs
    assert r.status == "completed" and r.summary.ok == 4_000
    ((health, t0),) = rows(db, "SELECT health, t0_ns FROM runs WHERE id = 2")
    waits = json.loads(health)["writer_waits"]
    assert waits["count"] >= 1 and waits["seconds"] >= 0.5, waits
    # no request started while the backlog was over the limit: during the lock, at most the
    # limit's worth (and those in flight) went out after the writer stopped
    lo, hi = window[0] - t0, window[1] - t0
    during = rows(
        db,
        "SELECT count(*) FROM requests WHERE run_id = 2 AND sent_ns > ? AND sent_ns < ?",
        (lo + 500_000_000, hi),
    )[0][0]
    assert during <= limit + 32, during
    warnings = report(db, ["2"]).to_dict()["runs"][0]["warnings"]
    assert any("database writer fell behind" in w for w in warnings), warnings
