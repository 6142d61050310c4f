"""The CLI as a user runs it: a subprocess, real flags, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import perfbench, rows, start_perfbench, wait_for

FAST = ("--preset", "instant", "--seed", "3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_embedded_default_runs_the_simulator_and_reports_json(tmp_path):
    proc = perfbench(
        "perf",
        "--parallel",
        "2",
        "--number",
        "12",
        "--warmup",
        "2",
        "--json",
        "--outputs-dir",
        str(tmp_path),
        "--sim-args",
        "--preset instant",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema_version"] == 1
    (run,) = report["runs"]
    assert run["ok"] == 12 and run["warmup"] == 2 and run["model"] == "perfbench-sim"
    assert set(run["distributions"]["ttft_ms"]["values"]) >= {"p10", "p50", "p99", "p99.9"}
    db = tmp_path / "perfbench.db"
    assert rows(db, "SELECT count(*), sum(warmup) FROM requests") == [(14, 2)]
    server = json.loads(rows(db, "SELECT server FROM runs")[0][0])
    assert server["embedded"] is True


def test_table_report_has_summary_percentiles_and_several_runs(sim, tmp_path):
    url = sim(*FAST)
    proc = perfbench(
        "perf",
        "--url",
        url,
        "--parallel",
        "1",
        "4",
        "--number",
        "8",
        "40",
        "--outputs-dir",
        str(tmp_path),
        "--name",
        "pair",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in (
        "Request throughput (req/s)",
        "Mean TTFT (ms)",
        "99.9%",
        "66%",
        "Overview",
        "closed loop, 4 in parallel",
        "too few samples",
    ):
        assert needle in out, needle
    # report and runs read the same database back
    again = perfbench("report", "--name", "pair", "--json", "--outputs-dir", str(tmp_path))
    runs = json.loads(again.stdout)["runs"]
    assert [r["parallel"] for r in runs] == [1, 4] and [r["ok"] for r in runs] == [8, 40]
    listing = json.loads(perfbench("runs", "--json", "--db", str(tmp_path / "perfbench.db")).stdout)
    assert [r["requests"] for r in listing["runs"]] == [{"ok": 8}, {"ok": 40}]
    csv_out = perfbench("report", "2", "--csv", "--outputs-dir", str(tmp_path)).stdout.splitlines()
    assert len(csv_out) == 2 and "ttft_ms_p99" in csv_out[0].split(",")


def test_open_loop_completions_and_no_stream(sim, tmp_path):
    url = sim(*FAST)
    proc = perfbench(
        "perf",
        "--url",
        url + "/v1/completions",
        "--rate",
        "50",
        "--number",
        "20",
        "--no-stream",
        "--json",
        "--outputs-dir",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)["runs"]
    assert run["mode"] == "open" and run["ok"] == 20
    assert run["distributions"]["tpot_ms"]["n"] == 0  # no streaming: no TPOT
    assert any("--no-stream" in w for w in run["warnings"])
    (endpoint,) = rows(tmp_path / "perfbench.db", "SELECT endpoint FROM runs")[0]
    assert endpoint.endswith("/v1/completions")


def test_unreachable_url_is_one_line_and_fast(tmp_path):
    port = _free_port()
    start = time.monotonic()
    proc = perfbench("perf", "--url", f"http://127.0.0.1:{port}", "--outputs-dir", str(tmp_path))
    _one_line_error(proc, "cannot reach", str(port), "--url")
    assert (
        time.monotonic() - start < 10
    )  # interpreter start included; the check itself is sub-second


def test_unknown_model(sim, tmp_path):
    proc = perfbench(
        "perf", "--url", sim(*FAST), "--model", "no-such-model", "--outputs-dir", str(tmp_path)
    )
    _one_line_error(proc, "no-such-model", "perfbench-sim", "--model")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ("--dataset", "line_by_line", "--dataset-path", "/nonexistent/prompts.txt"),
            "no such file",
        ),
        (("--dataset", "line_by_line"), "--dataset-path"),
        (("--dataset", "nope"), "unknown --dataset"),
        (("--parallel", "0"), "--parallel"),
        (("--extra-body", "{not json"), "--extra-body"),
        (("--extra-body", "[1, 2]"), "JSON object"),
        (("--rate", "0"), "--rate"),
        (("--parallel", "1", "2", "--number", "1", "2", "3"), "--number"),
        (("--header", "no-colon"), "--header"),
        (("--url", "localhost:8000"), "--url"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    proc = perfbench("perf", *args, "--outputs-dir", str(tmp_path))
    _one_line_error(proc, needle)


def test_report_without_database_is_one_line(tmp_path):
    _one_line_error(perfbench("report", "--outputs-dir", str(tmp_path)), "no database")
    _one_line_error(perfbench("runs", "--outputs-dir", str(tmp_path)), "no database")


def test_line_by_line_dataset(sim, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("first question\n\nsecond question\nthird\n")
    proc = perfbench(
        "perf",
        "--url",
        sim(*FAST),
        "--dataset",
        "line_by_line",
        "--dataset-path",
        str(prompts),
        "--number",
        "5",
        "--json",
        "--outputs-dir",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    ids = [
        r[0] for r in rows(tmp_path / "perfbench.db", "SELECT prompt_id FROM requests ORDER BY idx")
    ]
    assert ids == ["line-1", "line-3", "line-4", "line-1", "line-3"]


def test_api_key_and_secret_headers_never_reach_the_database(sim, tmp_path):
    secret, header_secret = "sk-test-DO-NOT-STORE-4242", "tok-ALSO-SECRET-9191"
    proc = perfbench(
        "perf",
        "--url",
        sim(*FAST),
        "--number",
        "4",
        "--api-key",
        secret,
        "--header",
        f"Authorization-Extra: {header_secret}",
        "--header",
        "X-Team: search",
        "--outputs-dir",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    env_proc = perfbench(
        "perf",
        "--url",
        sim(*FAST),
        "--number",
        "2",
        "--outputs-dir",
        str(tmp_path),
        env={"OPENAI_API_KEY": secret},
    )
    assert env_proc.returncode == 0, env_proc.stderr
    for path in tmp_path.iterdir():  # the database and any WAL/SHM files beside it
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert header_secret.encode() not in data, path
    assert secret not in proc.stdout + proc.stderr
    command, client = rows(
        tmp_path / "perfbench.db", "SELECT command, client FROM runs WHERE id = 1"
    )[0]
    words = shlex.split(command)  # shell-quoted, so that --resume can read it back
    assert words[words.index("--api-key") + 1] == "<redacted>" and "X-Team: search" in words
    assert "X-Team" in client


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_run_and_keeps_every_row(sim, tmp_path, sig, code):
    url = sim("--ttft-ms", "50", "--itl-ms", "20", "--seed", "5")
    proc = start_perfbench(
        "perf",
        "--url",
        url,
        "--parallel",
        "6",
        "--number",
        "500",
        "--max-tokens",
        "40",
        "--min-tokens",
        "40",
        "--outputs-dir",
        str(tmp_path),
        "--quiet",
    )
    db = tmp_path / "perfbench.db"
    wait_for(db, "SELECT count(*) FROM requests", 6)  # rows are being written
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert "interrupted" in out  # the report of what was measured is printed
    status, scheduled, recorded = rows(db, "SELECT status, scheduled, recorded FROM runs")[0]
    assert status == "interrupted"
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert scheduled == recorded == n
    assert 6 <= n < 500
    by_status = dict(rows(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    assert set(by_status) <= {"ok", "cancelled"} and by_status.get("cancelled", 0) >= 1
    cancelled_with_stamps = rows(
        db, "SELECT count(*) FROM requests WHERE status = 'cancelled' AND sent_ns IS NOT NULL"
    )
    assert cancelled_with_stamps[0][0] >= 1


def test_help_is_quick():
    start = time.monotonic()
    proc = perfbench("--help")
    assert proc.returncode == 0 and "perf" in proc.stdout
    assert time.monotonic() - start < 5


def test_report_and_compare_are_callable_whatever_was_imported_first():
    """`from perfbench import report, compare` (README) must give callables even when the
    subpackages of the same names were imported before (Python binds the package attribute to
    the subpackage then)."""
    code = (
        "import perfbench.report.progress, perfbench.compare.answers\n"
        "from perfbench import compare, report\n"
        "import sys\n"
        "try:\n"
        "    report(sys.argv[1], [])\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "print(callable(report), callable(compare))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "/nonexistent/perfbench.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True True"
    assert "StoreError" in done.stdout  # it ran the report function, which found no database
