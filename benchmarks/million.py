"""One million requests in one run: memory, throughput drift and reports of a very long run.

Starts ``perfbench sim --burst`` (each whole stream written as fast as the socket takes it;
16-token outputs so the client, not the tokens, is the work) and ``perfbench perf --number
1000000 --parallel 64`` against it, each a subprocess in its own process group, and measures:

- resident memory (VmRSS) of perfbench perf and its child processes, every 0.5 s from start to
  exit, its end-of-run report included: the maximum (target < 300 MB), the maximum until the
  simulator has served the last request, and samples along the run beside the requests the
  simulator served (its /metrics) and the requests with a row in the database;
- requests/s of the last tenth of the completions against the first tenth, from the database
  (``requests.end_ns`` of the measured requests in completion order; target ≥ 95%);
- ``perfbench report --json`` run on the database when the simulator has served 30% and 60% of
  the requests, while the run writes it (target: succeeds), and its time;
- the final ``perfbench report`` after the run, end to end (target < 30 s), and its peak RSS;
- the database size, the run's wall time and its requests/s.

    .venv/bin/python benchmarks/million.py                          # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/million.py --requests 20000 --out m.json

Traffic stays on 127.0.0.1; everything started is stopped by its process group, and the whole
benchmark by --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

PERFBENCH = [sys.executable, "-m", "perfbench"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
    """A subprocess in a process group of its own (so that it and its children stop together)."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        return subprocess.Popen(args, stdout=out, stderr=err, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _tree_rss_mb(root: int, exclude: int) -> float:
    """VmRSS summed over ``root`` and its descendants, leaving out the ``exclude`` pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid == exclude:
            continue
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
        except OSError:
            pass
    return total


def _served(url: str) -> int:
    """Requests the simulator finished (its vllm:request_success_total): the run's true progress,
    whether or not their rows are in the database yet."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
            lines = resp.read().decode().splitlines()
    except OSError:
        return 0
    return int(sum(float(x.split()[-1]) for x in lines if x.startswith("vllm:request_success")))


def _rows(db: Path) -> int:
    """Requests of the latest run with a row in the database (ended, or in flight)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            sql = "SELECT coalesce(max(idx) + 1, 0) FROM requests WHERE run_id = (SELECT max(id) FROM runs)"
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


class Timed:
    """A ``perfbench report`` subprocess: wall time, exit code and peak RSS (from wait4)."""

    def __init__(self, args: list[str], out: Path) -> None:
        self.out, self.start = out, time.perf_counter()
        self.proc = _spawn([*PERFBENCH, "report", *args], out, out.with_suffix(".err"))
        self.result: dict[str, Any] | None = None

    def poll(self, block: bool = False) -> dict[str, Any] | None:
        if self.result is None:
            pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.result = {
                    "exit": self.proc.returncode,
                    "seconds": round(time.perf_counter() - self.start, 2),
                    "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                }
        return self.result


def _tenths(db: Path) -> dict[str, Any]:
    """Requests/s of each tenth of the measured completions, in completion order: the first
    from the first send to the 10% completion, each next from the last one's end to its own."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT sent_ns, end_ns FROM requests WHERE warmup = 0 AND status = 'ok' "
            "AND run_id = (SELECT max(id) FROM runs)"
        ).fetchall()
    sent, end = np.array(rows, dtype=np.float64).T
    end.sort()
    cuts = np.arange(11) * len(end) // 10
    edges = np.concatenate([[sent.min()], end[cuts[1:] - 1]])
    rates = np.diff(cuts) / (np.diff(edges) / 1e9)
    return {
        "tenths_req_per_s": rates.round(1).tolist(),
        "last_over_first": round(rates[-1] / rates[0], 3),
    }


def measure(args: argparse.Namespace, tmp: Path, db: Path) -> dict[str, Any]:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    out: dict[str, Any] = {"machine": machine, "load_avg_before": round(os.getloadavg()[0], 2)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    sim_args = f"sim --burst --port {port} --seed 1 --output-len-dist fixed --output-len-mean {args.tokens}"
    sim = _spawn([*PERFBENCH, *sim_args.split()], tmp / "sim.out", tmp / "sim.log")
    perf: subprocess.Popen[bytes] | None = None
    live: list[Timed] = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:  # not listening yet
                time.sleep(0.1)
        cmd = (
            f"perf --url {url} --number {args.requests} --parallel {args.parallel} --max-tokens "
            f"{args.tokens} --seed 1 --db {db} --quiet --json --prompt"
        ).split() + ["Say something short."]
        out["command"] = "perfbench " + " ".join(f"'{a}'" if " " in a else a for a in cmd)
        start = time.perf_counter()
        perf = _spawn([*PERFBENCH, *cmd], tmp / "perf.json", tmp / "perf.log")
        samples: list[tuple[float, float, int, int]] = []  # (s, RSS MB, served, rows in the db)
        marks, served, rows = [30, 60], 0, 0
        while perf.poll() is None and time.perf_counter() - start < args.timeout:
            if len(samples) % 2 == 0:  # once a second
                served, rows = _served(url), _rows(db)
            rss = _tree_rss_mb(perf.pid, sim.pid)
            samples.append((round(time.perf_counter() - start, 1), round(rss, 1), served, rows))
            if marks and served >= marks[0] / 100 * args.requests:
                live.append(Timed(["--db", str(db), "--json"], tmp / f"live{marks.pop(0)}.json"))
            for t in live:
                t.poll()
            time.sleep(0.5)
        out["wall_s"] = round(time.perf_counter() - start, 1)
        out["timed_out"] = perf.poll() is None
        _stop(perf)
        out["perf_exit"] = perf.returncode
        for t in live if not out["timed_out"] else ():
            t.poll(block=True)
    finally:
        for proc in [perf, *(t.proc for t in live), sim]:
            if proc is not None:
                _stop(proc)
    sending = [s[1] for s in samples if s[2] < args.requests]
    out["max_rss_mb"] = max((s[1] for s in samples), default=0.0)
    out["max_rss_mb_until_all_served"] = max(sending, default=0.0)
    shown = samples[:: max(1, len(samples) // 20)] + samples[-1:]  # and the peak among them:
    shown += [s for s in samples if s[1] == out["max_rss_mb"]][:1]
    out["rss_samples"] = [list(s) for s in sorted(set(shown))]
    for t, pct in zip(live, (30, 60)):
        r = dict(t.result or {"exit": "killed at --timeout"})
        try:
            got = json.loads(t.out.read_text())["runs"][0]
            r["run_status"], r["measured"] = got["status"], got["measured"]
        except (ValueError, KeyError, IndexError):
            r["output"] = t.out.read_text()[-300:] + t.out.with_suffix(".err").read_text()[-300:]
        out[f"report_at_{pct}pct"] = r
    try:
        summary = json.loads((tmp / "perf.json").read_text())["runs"][0]
        out["perf_req_per_s"] = round(summary["req_per_s"], 1)
        out["ok"], out["failed"] = summary["ok"], summary["failed"]
    except (ValueError, KeyError, IndexError):
        pass
    if stderr := (tmp / "perf.log").read_text():  # nothing, unless something went wrong
        out["perf_stderr"] = stderr[-600:]
    files = [Path(f"{db}{s}") for s in ("", "-wal", "-shm")]
    out["db_mb"] = round(sum(f.stat().st_size for f in files if f.exists()) / 1e6, 1)
    if not out["timed_out"]:
        out["final_report"] = Timed(["--db", str(db)], tmp / "final.txt").poll(block=True)
        out.update(_tenths(db))
    out["load_avg_after"] = round(os.getloadavg()[0], 2)  # other load on the cores skews it all
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=1_000_000, help="(default: %(default)s)")
    ap.add_argument("--parallel", type=int, default=64, help="(default: %(default)s)")
    ap.add_argument("--tokens", type=int, default=16, help="output length (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=2400, help="seconds (default: %(default)s)")
    ap.add_argument("--db", type=Path, help="keep the database here (default: a temporary one)")
    ap.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    args = ap.parse_args()
    if args.db is not None and args.db.exists():
        ap.error(
            f"--db {args.db} exists: name a new file (this benchmark's run must be its only one)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="million-"))
    db = args.db or tmp / "million.db"
    try:
        out = measure(args, tmp, db)
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    live = [out.get(f"report_at_{p}pct", {}) for p in (30, 60)]
    checks = {
        "max RSS < 300 MB": out["max_rss_mb"] < 300,
        "last tenth ≥ 95% of the first": out.get("last_over_first", 0) >= 0.95,
        "report works while the run runs": all(
            r.get("exit") == 0 and r.get("run_status") == "running" for r in live
        ),
        "final report < 30 s": (out.get("final_report") or {}).get("seconds", 1e9) < 30,
    }
    out["targets"] = {k: "pass" if v else "FAIL" for k, v in checks.items()}
    for key, value in out.items():
        if key not in ("targets", "rss_samples"):
            print(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    print("rss_samples [s, MB, requests served, rows in the db]:", *out["rss_samples"])
    for k, v in out["targets"].items():
        print(f"{v:>4}  {k}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
