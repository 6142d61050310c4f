"""Mooncake's ``hash_ids`` honoured: two trace rows share exactly the leading blocks the trace
says, and no more. perfbench used to ignore them and give every row of one input length the
same text, so rows of equal length were full cache hits and rows that shared blocks were none.
"""

from __future__ import annotations

import json

import pytest

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.load import read_trace
from perfbench.sim.prefix import BLOCK_TOKENS
from perfbench.workload.replay import trace_prompts
from perfbench.workload.tokenizers import load_tokenizer
from tests.conftest import perfbench, rows

BLOCK = 64  # tokens per hash id in these traces (Mooncake's are 512)
# (hash_ids, input_length): shares with earlier rows as the comments say
ROWS = [
    ([0, 1, 2], 192),  # 3 full blocks
    ([0, 1, 3], 170),  # blocks 0-1 with row 0, then its own (partial) block 3
    ([0, 1, 2], 150),  # row 0's first 150 tokens, its block 2 cut at 22 tokens
    ([4, 5], 128),  # nothing in common with anyone
    ([0, 6], 100),  # block 0
    (None, 192),  # no hash_ids: its own text (the old code gave it row 0's: same length)
    ([7, 8, 9], 192),  # the same length as row 0, nothing in common
    ([0, 1, 2], 192),  # row 0 again, whole
]


def _write(path, rows_):
    with path.open("w") as f:
        for k, (ids, n) in enumerate(rows_):
            row = {"timestamp": 300 * k, "input_length": n, "output_length": 3}
            if ids is not None:
                row["hash_ids"] = ids
            f.write(json.dumps(row) + "\n")


def _common(a, b):
    """Tokens two rows have in common by the trace: their equal leading blocks, the last one
    as far as both have it."""
    (ids_a, n_a), (ids_b, n_b) = a, b
    if ids_a is None or ids_b is None:
        return 0
    common = 0
    for j, (x, y) in enumerate(zip(ids_a, ids_b)):
        if x != y:
            break
        la, lb = min(BLOCK, n_a - j * BLOCK), min(BLOCK, n_b - j * BLOCK)
        common += min(la, lb)
        if la != lb:
            break
    return common


def _prefix_tokens(a: str, b: str) -> int:
    """Whole words two texts share from the start (each word is one token)."""
    wa, wb = a.split(" "), b.split(" ")
    n = 0
    while n < min(len(wa), len(wb)) and wa[n] == wb[n]:
        n += 1
    return n


def test_blocks_make_exact_lengths_and_share_exactly_what_the_trace_says(tmp_path):
    path = tmp_path / "t.jsonl"
    _write(path, ROWS)
    trace = read_trace(path, block_size=BLOCK)
    prompts = trace_prompts(trace, WorkloadSpec())
    tok = load_tokenizer(None)
    texts = [p.composed.text(7) for p in prompts]
    for text, (_, n) in zip(texts, ROWS):
        assert tok.count(text) == n and len(text.split(" ")) == n
    for b in range(len(ROWS)):
        for a in range(b):
            assert _prefix_tokens(texts[a], texts[b]) == _common(ROWS[a], ROWS[b]), (a, b)
    # another run's salt: the same sharing, other words (a second replay finds no cache)
    again = [p.composed.text(8) for p in prompts]
    assert _prefix_tokens(again[0], again[7]) == 192
    assert all(_prefix_tokens(x, y) <= 1 for x, y in zip(texts, again))
    # the shared part of the trace: tokens of blocks an earlier row had sent
    assert trace.reuse(len(ROWS)) == {
        "block_size": BLOCK,
        "reusable_tokens": 128 + 150 + 64 + 192,
        "prompt_tokens": sum(n for _, n in ROWS),
    }


def test_the_simulators_cache_hits_are_the_traces(sim, tmp_path):
    """Replayed one at a time against the sim's vLLM-like cache (whole 16-token blocks, of all
    but the last token at most): each row's cached tokens are what it shares with an earlier
    row by the trace, cut to whole cache blocks."""
    path = tmp_path / "t.jsonl"
    _write(path, ROWS)
    url = sim("--preset", "instant", "--seed", "61", "--enable-prompt-tokens-details")
    done = perfbench(
        "perf", "--url", url, "--api", "openai-completions", "--trace", str(path),
        "--trace-block-size", str(BLOCK), "--trace-speed", "10", "--max-concurrency", "1",
        "--db", str(tmp_path / "t.db"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    got = rows(tmp_path / "t.db", "SELECT prompt_tokens, cached_tokens FROM requests ORDER BY idx")
    want = []
    for b, (_, n) in enumerate(ROWS):
        shared = max([_common(ROWS[a], ROWS[b]) for a in range(b)], default=0)
        want.append((n, min(shared, n - 1) // BLOCK_TOKENS * BLOCK_TOKENS))
    assert got == want
    reuse = summary["trace_reuse"]
    assert reuse["block_size"] == BLOCK and reuse["reusable_tokens"] == 128 + 150 + 64 + 192
    assert not summary["shared_prefix"]
    metadata = rows(tmp_path / "t.db", "SELECT text, metadata FROM prompts ORDER BY rowid")
    assert metadata[0] == (None, json.dumps({"input_len": 192, "output_len": 3,
                                             "hash_ids": [0, 1, 2]}))  # fmt: skip


def test_the_reusable_share_counts_only_what_was_sent(tmp_path):
    """A block an earlier row sent in part (its last, partial block) shares only that part;
    a row that brings its own prompt sends no block."""
    path = tmp_path / "t.jsonl"
    rows_ = [{"timestamp": 0, "input_length": 100, "output_length": 1, "hash_ids": [0]},
             {"timestamp": 1, "input_length": 512, "output_length": 1, "hash_ids": [0]},
             {"timestamp": 2, "input_length": 600, "output_length": 1, "hash_ids": [5, 6],
              "prompt": "its own text"},
             {"timestamp": 3, "input_length": 1024, "output_length": 1, "hash_ids": [0, 5]}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows_))
    trace = read_trace(path)
    assert trace.reuse(4) == {"block_size": 512, "reusable_tokens": 100 + 512,
                              "prompt_tokens": 100 + 512 + 600 + 1024}  # fmt: skip


def test_rows_of_one_length_no_longer_share_a_text(tmp_path):
    path = tmp_path / "t.jsonl"
    _write(path, [(None, 300)] * 3 + [([0], 300)] * 2)
    prompts = trace_prompts(read_trace(path, block_size=512), WorkloadSpec())
    texts = [p.composed.text(1) for p in prompts]
    assert len(set(texts[:3])) == 3 and texts[3] == texts[4]
    assert max(_prefix_tokens(texts[0], t) for t in texts[1:]) <= 1


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ({"input_length": 2000, "hash_ids": [0, 1, 2]}, "hash_ids names 3 blocks, but "
         "input_length 2000 fills 4 of 512 tokens"),
        ({"input_length": 100, "hash_ids": [0, 1]}, "names 2 blocks"),
        ({"input_length": 100, "hash_ids": [-1]}, "non-negative integers"),
        ({"input_length": 100, "hash_ids": "0"}, "non-negative integers"),
    ],
)  # fmt: skip
def test_hash_ids_that_disagree_with_the_length_are_one_line(tmp_path, row, says):
    path = tmp_path / "bad.jsonl"
    good = {"timestamp": 0, "input_length": 512, "output_length": 2, "hash_ids": [0]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"timestamp": 5, "output_length": 2,
                                                          **row}) + "\n")  # fmt: skip
    with pytest.raises(DatasetError, match="bad.jsonl:2: "):
        read_trace(path)
    done = perfbench("perf", "--trace", str(path), "--db", str(tmp_path / "x.db"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing sent, nothing recorded


def test_the_block_size_flag_changes_the_check(tmp_path):
    path = tmp_path / "t.jsonl"
    _write(path, [([0, 1], 100)])
    assert read_trace(path, block_size=64).hash_ids == [(0, 1)]
    with pytest.raises(DatasetError, match="fills 1 of 512"):
        read_trace(path)
