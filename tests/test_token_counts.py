"""Token counts by the local tokenizer: the fallback without usage, and the check against usage."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.client.record import RequestRecord
from perfbench.config import WorkloadSpec
from perfbench.store import RecordWriter, Store
from perfbench.workload.tokenizers import load_tokenizer
from tests.conftest import rows


def _tiktoken_file(tmp_path):
    ranks = {bytes([b]): None for b in range(256)}
    for word in ("the", "river", "stone", "light", "water"):
        spelled = f" {word}".encode()
        ranks.update((spelled[:end], None) for end in range(2, len(spelled) + 1))
    path = tmp_path / "tiny.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(ranks)))
    return path


def _record(i: int, source: str, tokens: int, text: str) -> RequestRecord:
    return RequestRecord(
        index=i,
        warmup=False,
        prompt_id="p",
        status="ok",
        intended_ns=0,
        sent_ns=1,
        first_token_ns=2,
        last_token_ns=3,
        end_ns=4,
        chunk_ns=(2, 3),
        completion_tokens=tokens,
        token_source=source,
        output_text=text,
    )


def test_outputs_without_usage_are_counted_by_the_local_tokenizer(tmp_path):
    db = tmp_path / "w.db"
    store = Store(db, create=True)
    run_id = store.create_run(t0_ns=0)
    store.close()
    writer = RecordWriter(db, run_id, 0, count=lambda text: len(text.split())).start()
    writer.add(_record(0, "chunks", 2, "one two three four five"))
    writer.add(_record(1, "usage", 7, "one two"))
    assert writer.close() == 2
    got = rows(db, "SELECT idx, completion_tokens, token_source FROM requests ORDER BY idx")
    assert got == [(0, 5, "tokenizer"), (1, 7, "usage")]


def test_server_counts_are_checked_against_the_tokenizer(sim, tmp_path):
    name = f"tiktoken:{_tiktoken_file(tmp_path)}"
    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "2"), max_tokens=30),
        loads=(LoadSpec(parallel=2, number=10),),
        workload=WorkloadSpec(tokenizer=name),
        db_path=tmp_path / "c.db",
    )
    (r,) = run(spec).runs
    check = r.summary.token_check
    assert check["n"] == 10 and check["tokenizer"] == name
    count = load_tokenizer(name).count
    server, local = zip(
        *[
            (n, count(reasoning + text))
            for n, reasoning, text in rows(
                tmp_path / "c.db",
                "SELECT completion_tokens, reasoning_text, output_text FROM requests",
            )
        ]
    )
    diff = (np.array(server) - np.array(local)) / np.array(server) * 100
    assert check["mean_diff_pct"] == float(diff.mean())
    # the simulator's tokens are words; this byte-level tokenizer splits most words into several
    assert check["mean_diff_pct"] < -5
    assert any("differ from tokenizer" in w for w in r.summary.warnings)
    # the prompt's local count is what the input figure falls back on; usage was given here
    assert r.summary.token_sources == {"usage": 10}


def test_server_input_counts_are_checked_against_the_tokenizer_too(sim, tmp_path):
    """A server that counts the prompts very differently (here: the simulator counts words, the
    byte-level tokenizer splits most words into several tokens) is flagged, where before only
    output counts were compared."""
    name = f"tiktoken:{_tiktoken_file(tmp_path)}"
    spec = PerfSpec(
        client=ClientSpec(url=sim("--preset", "instant", "--seed", "2"), max_tokens=30),
        loads=(LoadSpec(parallel=2, number=10),),
        workload=WorkloadSpec(tokenizer=name),
        db_path=tmp_path / "i.db",
    )
    (r,) = run(spec).runs
    inputs = r.summary.token_check["input"]
    count = load_tokenizer(name).count
    pairs = rows(
        tmp_path / "i.db",
        "SELECT r.prompt_tokens, p.text, p.messages FROM requests r JOIN prompts p "
        "ON p.run_id = r.run_id AND p.prompt_id = r.prompt_id ORDER BY r.idx",
    )
    local = [
        count(text if text is not None else "\n".join(m["content"] for m in json.loads(msgs)))
        for _, text, msgs in pairs
    ]
    server = [n for n, _, _ in pairs]
    assert inputs["n"] == 10
    assert inputs["mean_diff_tokens"] == pytest.approx(float(np.mean(np.subtract(server, local))))
    assert inputs["mean_diff_pct"] < -10 and abs(inputs["mean_diff_tokens"]) > 32
    assert any("input tokens per request" in w for w in r.summary.warnings)
