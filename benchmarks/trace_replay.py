"""What replaying a large Mooncake-style trace costs the client: reading it, and building each
request's body from its ``hash_ids`` as the run sends it.

Writes a trace shaped like Mooncake's conversation trace (``--rows`` rows of about
``--input-len`` tokens in 512-token blocks; each row continues an earlier one's blocks with
probability ``--share``, as a conversation's next turn does), then builds every request's body
with the estimate tokenizer, in trace order, and reports the time per request and how much the
process grew (peak RSS). Offline; nothing is sent.

    .venv/bin/python benchmarks/trace_replay.py --rows 12000 --input-len 12000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import tempfile
import time
from pathlib import Path

from perfbench.config import ClientSpec, WorkloadSpec
from perfbench.execute import Templates
from perfbench.load import read_trace
from perfbench.workload.replay import trace_prompts

BLOCK = 512


def _write_trace(path: Path, rows: int, input_len: int, share: float, seed: int) -> int:
    rng = random.Random(seed)
    sent: list[list[int]] = []
    next_id = 0
    with path.open("w") as f:
        for k in range(rows):
            n = max(1, int(rng.gauss(input_len, input_len / 4)))
            blocks = math.ceil(n / BLOCK)
            ids: list[int] = []
            if sent and rng.random() < share:  # the next turn of an earlier conversation
                ids = rng.choice(sent)[: blocks - 1]
            while len(ids) < blocks:
                ids.append(next_id)
                next_id += 1
            sent.append(ids)
            row = {"timestamp": 100 * k, "input_length": n, "output_length": 100, "hash_ids": ids}
            f.write(json.dumps(row) + "\n")
    return next_id


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=12000)
    ap.add_argument("--input-len", type=int, default=12000)
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.jsonl"
        ids = _write_trace(path, args.rows, args.input_len, args.share, args.seed)
        base = _rss_mb()
        t = time.perf_counter()
        trace = read_trace(path)
        prompts = trace_prompts(trace, WorkloadSpec())
        read_s = time.perf_counter() - t
        templates = Templates(ClientSpec(url="http://127.0.0.1:1"), "m", prompts, salt=12345)
        t = time.perf_counter()
        size = 0
        for k in range(len(prompts)):
            size += len(templates.request(k, 0, False, k).body)
        build_s = time.perf_counter() - t
    tokens = sum(trace.input_lens)
    reuse = trace.reuse(len(trace))
    print(
        f"{args.rows:,} rows, {tokens / 1e6:.1f}M prompt tokens in {ids:,} blocks of {BLOCK} "
        f"({100 * reuse['reusable_tokens'] / tokens:.0f}% of tokens in blocks sent before)\n"
        f"read and made prompts: {read_s:.2f} s\n"
        f"built {size / 1e9:.2f} GB of bodies: {build_s:.2f} s, "
        f"{1e6 * build_s / len(prompts):.0f} µs a request, {1e6 * build_s / tokens * 1e3:.2f} µs "
        f"per 1,000 tokens\n"
        f"peak RSS grew {_rss_mb() - base:.0f} MB (holding every body would take "
        f"{size / 1e6:.0f} MB)"
    )


if __name__ == "__main__":
    main()
