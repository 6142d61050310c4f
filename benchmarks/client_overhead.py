"""How much the client costs, and how true its timing is, against ``perfbench sim``.

Part 1, throughput: the client against ``perfbench sim --burst`` (whole 256-token streams written
as fast as the socket takes them), 64 requests in flight. Reports the requests/s and chunks/s
the client sustains and its CPU time per streamed token (this process only: the client, its
SQLite writer thread and the report; the simulator is a separate process).

Part 3, memory: peak RSS after a short run and after a long one in the same process; records
leave the process once written, so the difference per request should be near zero.

Part 2, timing truth: 256 concurrent streams against a simulator set to TTFT 200 ms and ITL
10 ms, which logs when it received each request and wrote each first token (same monotonic
clock). Reports the reported TTFT minus 200 ms; the reported TTFT minus the simulator's own
arrival→first-write time; and that error split at the two ends of the wire: the client's read
delay (its stamp of the first token minus the simulator's write of it) and the send-to-arrival
time (the simulator's arrival stamp minus the client's send stamp: the simulator's own loop lag
plus the loopback transit).

    .venv/bin/python benchmarks/client_overhead.py            # both parts, ~1 minute
    .venv/bin/python benchmarks/client_overhead.py --part 1 --requests 20000

Traffic stays on 127.0.0.1; every loop is bounded by --requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.sim.embedded import EmbeddedSim


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def throughput(requests: int, concurrency: int, tokens: int, tmp: Path) -> dict[str, float]:
    with EmbeddedSim(("--burst", "--seed", "1")) as sim:
        client = ClientSpec(url=sim.url, max_tokens=tokens, min_tokens=tokens)
        spec = PerfSpec(
            client=client,
            loads=(LoadSpec(parallel=concurrency, number=requests),),
            db_path=tmp / "burst.db",
            workload=_workload(),
        )
        run(
            PerfSpec(
                client=client,
                loads=(LoadSpec(parallel=concurrency, number=concurrency * 4),),
                db_path=tmp / "warm.db",
                workload=_workload(),
            )
        )  # imports, caches, JIT-free warm-up
        cpu0, wall0 = _cpu(), time.perf_counter()
        result = run(spec)
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    s = result.runs[0].summary
    total_tokens = s.mean_output_tokens * s.ok
    chunks = total_tokens / s.tokens_per_chunk
    return {
        "requests": s.ok,
        "failed": s.failed,
        "window_s": s.duration_s,
        "req_per_s": s.req_per_s,
        "chunks_per_s": chunks / s.duration_s,
        "tokens_per_s": s.output_tok_per_s,
        "cpu_us_per_token": 1e6 * cpu / total_tokens,
        "cpu_share_of_wall": cpu / wall,
    }


def timing(
    concurrency: int,
    rounds: int,
    tokens: int,
    tmp: Path,
    pin: bool = False,
    workers: int | None = None,
) -> dict[str, float]:
    log = tmp / "sim-timing.jsonl"
    log.unlink(missing_ok=True)
    flags = (
        "--ttft-ms",
        "200",
        "--itl-ms",
        "10",
        "--itl-ms-per-seq",
        "0",
        "--prefill-us-per-token",
        "0",
        "--max-num-seqs",
        str(concurrency),
        "--seed",
        "1",
        "--timing-log",
        str(log),
    )
    db = tmp / f"timing-{concurrency}.db"
    with EmbeddedSim(flags) as sim:
        if pin:  # the client on CPU 0, the simulator on CPU 1: no turn-taking on one core
            assert sim._proc is not None
            os.sched_setaffinity(0, {0})
            os.sched_setaffinity(sim._proc.pid, {1})
        client = ClientSpec(url=sim.url, max_tokens=tokens, min_tokens=tokens)
        result = run(
            PerfSpec(
                client=client,
                workload=_workload(),
                db_path=db,
                loads=(LoadSpec(parallel=concurrency, number=concurrency * rounds),),
                workers=workers,
            )
        )
    s = result.runs[0].summary
    truth = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        truth[entry["id"]] = entry
    with sqlite3.connect(db) as conn:
        (t0,) = conn.execute("SELECT t0_ns FROM runs").fetchone()
        measured = conn.execute(
            "SELECT response_id, ttft_ms, sent_ns, first_token_ns FROM requests "
            "WHERE status = 'ok' AND warmup = 0"
        ).fetchall()
    ttft = np.array([m[1] for m in measured])
    own = np.array(
        [(truth[m[0]]["first_token_ns"] - truth[m[0]]["recv_ns"]) / 1e6 for m in measured]
    )
    # the same monotonic clock in both processes: split the error at the two ends of the wire
    arrival = np.array([(truth[m[0]]["recv_ns"] - (m[2] + t0)) / 1e6 for m in measured])
    delivery = np.array([((m[3] + t0) - truth[m[0]]["first_token_ns"]) / 1e6 for m in measured])

    def stats(name: str, a: np.ndarray) -> dict[str, float]:
        return {f"{name}_mean": float(a.mean()), f"{name}_p99": float(np.percentile(a, 99))}

    return {
        "streams": concurrency,
        "requests": len(measured),
        **stats("ttft_minus_200", ttft - 200),
        **stats("ttft_minus_sim_own", ttft - own),
        **stats("client_read_delay", delivery),
        **stats("send_to_sim_arrival", arrival),
        **stats("sim_own_ttft_minus_200", own - 200),
        "client_loop_lag_p99_ms": s.loop_lag_ms.get("p99", float("nan")),
    }


def memory(requests: int, tmp: Path) -> dict[str, float]:
    """Resident memory while a long run goes: sampled every 100 ms from a thread.

    Growth is measured between 10% and 90% of the run's wall time, which leaves out start-up
    and the report at the end (the report reads figures back from the database in batches).
    """
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not stop.wait(0.1):
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page / 2**20
            samples.append((time.perf_counter(), rss))

    with EmbeddedSim(("--burst", "--seed", "1")) as sim:
        client = ClientSpec(url=sim.url, max_tokens=256, min_tokens=256)
        thread = threading.Thread(target=sample, daemon=True)
        start = time.perf_counter()
        thread.start()
        result = run(
            PerfSpec(
                client=client,
                loads=(LoadSpec(parallel=64, number=requests),),
                db_path=tmp / "memory.db",
                workload=_workload(),
            )
        )
        stop.set()
        thread.join()
    window = result.runs[0].summary.duration_s
    t10, t90 = start + 0.1 * window, start + 0.9 * window
    rss10 = min((abs(t - t10), r) for t, r in samples)[1]
    rss90 = min((abs(t - t90), r) for t, r in samples)[1]
    return {
        "requests": requests,
        "rss_mib_at_10pct": rss10,
        "rss_mib_at_90pct": rss90,
        "growth_bytes_per_request": (rss90 - rss10) * 2**20 / (0.8 * requests),
        "peak_rss_mib": max(r for _, r in samples),
    }


def _workload():  # noqa: ANN202 - a short fixed prompt keeps the request cost constant
    from perfbench.config import WorkloadSpec

    return WorkloadSpec(prompt="Write a long story about a lighthouse keeper.")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", type=int, choices=(1, 2, 3), help="1 throughput, 2 timing, 3 memory")
    ap.add_argument(
        "--requests", type=int, default=10_000, help="part 1 requests (default: %(default)s)"
    )
    ap.add_argument("--concurrency", type=int, default=64, help="part 1 (default: %(default)s)")
    ap.add_argument(
        "--tokens", type=int, default=256, help="part 1 stream length (default: %(default)s)"
    )
    ap.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=[64, 256],
        help="part 2 concurrency (default: %(default)s)",
    )
    ap.add_argument(
        "--pin", action="store_true", help="part 2: client on CPU 0, simulator on CPU 1"
    )
    ap.add_argument(
        "--workers", type=int, help="part 2: worker processes (default: this process alone)"
    )
    ap.add_argument(
        "--stream-tokens", type=int, default=64, help="part 2 stream length (default: %(default)s)"
    )
    ap.add_argument(
        "--rounds", type=int, default=4, help="part 2 requests per stream (default: %(default)s)"
    )
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.part in (None, 1):
            print(
                "throughput",
                json.dumps(throughput(args.requests, args.concurrency, args.tokens, tmp), indent=1),
            )
        if args.part in (None, 2):
            for streams in args.streams:
                figures = timing(
                    streams,
                    args.rounds,
                    args.stream_tokens,
                    tmp,
                    pin=args.pin,
                    workers=args.workers,
                )
                print("timing", json.dumps(figures, indent=1))
        if args.part in (None, 3):
            print("memory", json.dumps(memory(args.requests * 2, tmp), indent=1))


if __name__ == "__main__":
    main()
