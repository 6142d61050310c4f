"""Scale-out: what worker processes buy on this machine, and what the one writer absorbs.

Part 1, workers: the burst workload (``perfbench sim --burst``: whole 256-token streams written
as fast as the socket takes them, 64 in flight) driven by this process alone (``--workers 1``)
and by 2 worker processes, in one benchmark run. Reports requests/s, tokens/s, the ratio of 2 to
1, and the client's CPU per streamed token summed over every process that drives the load (the
coordinator and its workers; the simulator is a separate process and is not counted).

Part 2, ingest: the path into the database. Synthetic records shaped like a 256-token stream
(256 chunk stamps, about 1 KB of output text) are encoded into rows as a worker does (its cost
per core is reported), then ``--senders`` processes ship them over pipes, as workers do, to
one reader thread each and the run's one writer thread, which inserts them. The path's
records/s is the ceiling of a run's request rate, whatever the number of workers (20 workers ×
2,000 req/s needs 40,000/s).

    .venv/bin/python benchmarks/scale_out.py                   # both parts, ~1 minute
    .venv/bin/python benchmarks/scale_out.py --part 2 --records 200000

Traffic stays on 127.0.0.1; every loop is bounded by --requests / --records.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import platform
import resource
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from perfbench import ClientSpec, LoadSpec, PerfSpec, WorkloadSpec, run
from perfbench.client import RequestRecord
from perfbench.sim.embedded import EmbeddedSim
from perfbench.store import RecordWriter, Store
from perfbench.store.writer import encode


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def workers(requests: int, concurrency: int, tokens: int, tmp: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    with EmbeddedSim(("--burst", "--seed", "1")) as sim:
        client = ClientSpec(url=sim.url, max_tokens=tokens, min_tokens=tokens)
        workload = WorkloadSpec(dataset="random", input_len=32, output_len=tokens)
        for n in (1, 2, 1, 2):  # each twice, interleaved, the first pair as warm-up
            spec = PerfSpec(
                client=client,
                loads=(LoadSpec(parallel=concurrency, number=requests),),
                db_path=tmp / f"w{n}.db",
                workload=workload,
                workers=n,
            )
            cpu0 = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
            result = run(spec)  # the workers are reaped when it returns; the simulator is not
            cpu = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - cpu0
            s = result.runs[0].summary
            total_tokens = s.mean_output_tokens * s.ok
            out[f"workers_{n}"] = {
                "requests": s.ok,
                "failed": s.failed,
                "req_per_s": round(s.req_per_s, 1),
                "tokens_per_s": round(s.output_tok_per_s),
                "cpu_us_per_token": round(1e6 * cpu / total_tokens, 2),
            }
    one, two = out["workers_1"], out["workers_2"]
    out["ratio_2_to_1"] = round(two["req_per_s"] / one["req_per_s"], 2)  # type: ignore[index]
    return out


def _records(n: int, tokens: int, seed: int = 0) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    text = "lorem " * (tokens * 4 // 6)  # ~4 characters per token
    out = []
    t = 1_000_000_000
    for i in range(n):
        stamps = t + np.cumsum(rng.integers(2_000_000, 30_000_000, tokens))
        out.append(
            RequestRecord(
                index=i,
                warmup=False,
                prompt_id=f"p{i % 1000}",
                status="ok",
                intended_ns=t,
                sent_ns=t + 1000,
                ttfb_ns=int(stamps[0]) - 100,
                first_token_ns=int(stamps[0]),
                first_content_ns=int(stamps[0]),
                last_token_ns=int(stamps[-1]),
                end_ns=int(stamps[-1]) + 500,
                chunk_ns=stamps.tolist(),
                prompt_tokens=128,
                completion_tokens=tokens,
                token_source="usage",
                output_text=text,
                finish_reason="length",
                http_status=200,
                response_id=f"chatcmpl-{i}",
            )
        )
        t += 500_000
    return out


def _sender(conn: Any, worker: int, records: int, tokens: int, batch: int, go: Any) -> None:
    """A stand-in worker: its rows encoded up front, then shipped as fast as the pipe takes them."""
    made = _records(records, tokens, seed=worker)
    made = [replace(r, index=r.index * 64 + worker) for r in made]  # indices unique per sender
    batches = [encode(made[i : i + batch], 1, 0, worker=worker) for i in range(0, records, batch)]
    go.wait()
    for rows in batches:
        conn.send(("drained", rows))
    conn.send(("done", None))
    conn.close()


def _writer_alone(records: int, tokens: int, batch: int, tmp: Path) -> float:
    """The writer thread inserting rows already in this process (no pipes, no senders)."""
    made = _records(records, tokens)
    batches = [encode(made[i : i + batch], 1, 0) for i in range(0, records, batch)]
    del made
    db = tmp / "alone.db"
    store = Store(db, create=True)
    run_id = store.create_run(t0_ns=0)
    store.close()
    writer = RecordWriter(db, run_id, 0).start()
    start = time.perf_counter()
    for rows in batches:
        writer.add_rows(rows)
    written = writer.close()
    took = time.perf_counter() - start
    db.unlink()
    assert written == records
    return records / took


def ingest(records: int, tokens: int, batch: int, senders: int, tmp: Path) -> dict[str, float]:
    # one core: what a worker spends turning its records into rows
    made = _records(min(records, 20_000), tokens)
    start = time.perf_counter()
    encode(made, 1, 0, worker=0)
    encode_rate = len(made) / (time.perf_counter() - start)
    wire = len(pickle.dumps(encode(made[:batch], 1, 0), protocol=pickle.HIGHEST_PROTOCOL)) / batch
    alone = _writer_alone(records, tokens, batch, tmp)
    # the path: sender processes -> pipes -> a reader thread each -> the run's one writer
    db = tmp / "ingest.db"
    store = Store(db, create=True)
    run_id = store.create_run(t0_ns=0)
    store.close()
    writer = RecordWriter(db, run_id, 0).start()
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    share = records // senders
    pipes, procs = [], []
    for w in range(senders):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_sender, args=(child, w, share, tokens, batch, go))
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)

    def read(conn: Any) -> None:
        while True:
            kind, rows = conn.recv()
            if kind == "done":
                return
            writer.add_rows(rows)

    readers = [threading.Thread(target=read, args=(c,)) for c in pipes]
    time.sleep(max(3.0, records / 20_000))  # let the senders build their rows first
    for t in readers:
        t.start()
    start = time.perf_counter()
    go.set()
    for t in readers:
        t.join()
    written = writer.close()
    path_s = time.perf_counter() - start
    for proc in procs:
        proc.join(10)
    assert written == share * senders, written
    return {
        "records": written,
        "chunk_gaps_each": tokens - 1,
        "senders": senders,
        "encode_per_s_one_core": round(encode_rate),
        "wire_bytes_per_record": round(wire),
        "writer_alone_per_s": round(alone),
        "path_per_s": round(written / path_s),
        "database_mb": round(db.stat().st_size / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", type=int, choices=(1, 2), help="1 workers, 2 ingest")
    ap.add_argument("--requests", type=int, default=6000, help="part 1 (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=64, help="part 1 (default: %(default)s)")
    ap.add_argument("--tokens", type=int, default=256, help="stream length (default: %(default)s)")
    ap.add_argument("--records", type=int, default=100_000, help="part 2 (default: %(default)s)")
    ap.add_argument(
        "--batch", type=int, default=500, help="part 2 records per shipment (default: %(default)s)"
    )
    ap.add_argument(
        "--senders", type=int, default=2, help="part 2 sender processes (default: %(default)s)"
    )
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.part in (None, 1):
            result = workers(args.requests, args.concurrency, args.tokens, tmp)
            print("workers", json.dumps(result, indent=1))
        if args.part in (None, 2):
            result = ingest(args.records, args.tokens, args.batch, args.senders, tmp)
            print("ingest", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
