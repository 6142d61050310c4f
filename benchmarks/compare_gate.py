"""The compare gate's false-alarm and detection rates, with and without replicates.

Identical pairs: ``--pairs`` times, one simulator, the same configuration run ``--repeat``
times as "base" and again as "new" (one ``perfbench perf --repeat R`` each). Every pair is
compared twice: with all its replicates, and with only the first run of each side (what a
single run per side sees). An *alarm* is any figure called worse or better at the defaults
(family-wise 95%, 5% floor); a *gate failure* is ``--threshold 10%`` failing (exit 1).

Slower server: ``--slow-pairs`` times, "new" runs against a second simulator whose every time
(TTFT, inter-token gap, prefill) is 15% longer. Detected = the 10% gate fails.

    .venv/bin/python benchmarks/compare_gate.py                  # ~6 minutes
    .venv/bin/python benchmarks/compare_gate.py --busy           # with one core kept busy

``--busy`` starts one process spinning on a core for the whole benchmark (stopped by its pid,
and bounded in time by itself). Traffic stays on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from perfbench import ClientSpec, LoadSpec, PerfSpec, WorkloadSpec, run
from perfbench.compare.runs import CompareSpec, compare_stored
from perfbench.sim.embedded import EmbeddedSim
from perfbench.store import Store

BASE_SIM = {"--ttft-ms": 50.0, "--itl-ms": 5.0, "--prefill-us-per-token": 20.0}


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _sim_args(slower: float) -> list[str]:
    args = ["--itl-ms-per-seq", "0", "--seed", "1"]
    for flag, value in BASE_SIM.items():
        args += [flag, f"{value * slower:g}"]
    return args


def _side(url: str, db: Path, name: str, args: argparse.Namespace) -> list[int]:
    tokens = args.tokens
    spec = PerfSpec(
        client=ClientSpec(url=url, max_tokens=tokens, min_tokens=tokens),
        loads=(LoadSpec(parallel=args.parallel, number=args.requests, warmup=args.parallel),),
        workload=WorkloadSpec(dataset="random", input_len=128, output_len=tokens),
        db_path=db,
        name=name,
        repeat=args.repeat,
    )
    return [r.run_id for r in run(spec).runs]


def _verdicts(store: Store, base: list[int], new: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, b, n in (("replicates", base, new), ("single", base[:1], new[:1])):
        result = compare_stored(
            store,
            [store.run(i) for i in b],
            [store.run(i) for i in n],
            CompareSpec(thresholds={"*": 0.10}),
        )
        flagged = [
            f"{f.key} {f.change:+.1%}" for f in result.figures if f.verdict in ("worse", "better")
        ]
        out[label] = {"alarms": flagged, "gate_failed": bool(result.gate_failures)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--slow-pairs", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--requests", type=int, default=240)
    p.add_argument("--parallel", type=int, default=16)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()

    busy = None
    if args.busy:
        busy = multiprocessing.get_context("spawn").Process(target=_spin, args=(3600.0,))
        busy.start()
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "gate.db"
            with EmbeddedSim(_sim_args(1.0)) as same, EmbeddedSim(_sim_args(1.15)) as slow:
                for k in range(args.pairs + args.slow_pairs):
                    identical = k < args.pairs
                    base = _side(same.url, db, f"base{k}", args)
                    new = _side(same.url if identical else slow.url, db, f"new{k}", args)
                    store = Store(db)
                    try:
                        row = {"pair": k, "identical": identical, **_verdicts(store, base, new)}
                    finally:
                        store.close()
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        if busy is not None:
            busy.kill()  # by its own handle (its pid)
            busy.join()

    def rate(identical: bool, label: str, what: str) -> str:
        chosen = [r for r in rows if r["identical"] is identical]
        hits = sum(bool(r[label][what]) for r in chosen)
        return f"{hits}/{len(chosen)}"

    summary = {
        "pairs": args.pairs,
        "slow_pairs": args.slow_pairs,
        "repeat": args.repeat,
        "requests": args.requests,
        "busy": args.busy,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "identical, replicates: any alarm": rate(True, "replicates", "alarms"),
        "identical, replicates: 10% gate failed": rate(True, "replicates", "gate_failed"),
        "identical, single runs: any alarm": rate(True, "single", "alarms"),
        "identical, single runs: 10% gate failed": rate(True, "single", "gate_failed"),
        "15% slower, replicates: 10% gate failed": rate(False, "replicates", "gate_failed"),
        "15% slower, single runs: 10% gate failed": rate(False, "single", "gate_failed"),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "pairs": rows}, indent=2))


if __name__ == "__main__":
    main()
