"""Determinism under load (perf --determinism, report --determinism) and the simulator's
--batch-variance: real HTTP against the simulator on 127.0.0.1, real SQLite, the real CLI.

The truth the figures are checked against is the simulator's own: its timing log records, per
request, the step where --batch-variance changed the text (``diverged_at``). A tokenizer whose
vocabulary is the simulator's (one token per simulated token) makes that step and the reported
first-difference position the same number.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.compare.determinism import determinism, first_difference
from perfbench.config import DeterminismSpec, WorkloadSpec
from perfbench.errors import ConfigError
from perfbench.sim import PRESETS, build_app
from perfbench.sim.tokens import VOCAB
from perfbench.workload.tokenizers import load_tokenizer
from tests.conftest import perfbench

# Timed, so that concurrent requests share the batch; 1 ms a token keeps a pass short.
TIMED = ("--ttft-ms", "1", "--itl-ms", "1", "--itl-ms-per-seq", "0", "--prefill-us-per-token", "0")
PROMPTS = 24
TOKENS = 32


@pytest.fixture(scope="module")
def sim_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiktoken rank file in which every simulated token (a word with its space, or one
    punctuation mark) is one token: the single bytes, then each word's prefixes."""
    ranks = {bytes([b]): None for b in range(256)}
    for text, _ in VOCAB:
        spelled = text.encode()
        ranks.update((spelled[:end], None) for end in range(2, len(spelled) + 1))
    path = tmp_path_factory.mktemp("tok") / "sim-words.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(ranks)))
    return f"tiktoken:{path}"


def _spec(db: Path, *levels: int, sim_args: tuple[str, ...] = (), **kw: Any) -> PerfSpec:
    workload = kw.pop("workload", WorkloadSpec(dataset="openqa"))
    number = kw.pop("number", PROMPTS)
    return PerfSpec(
        ClientSpec(max_tokens=TOKENS),
        loads=tuple(LoadSpec(parallel=p, number=number) for p in levels),
        workload=workload,
        db_path=db,
        sim_args=(*TIMED, *sim_args),
        determinism=kw.pop("determinism", DeterminismSpec()),
        **kw,
    )


def _diverged(log: Path) -> dict[str, int]:
    """response id -> the step the simulator changed the text at, from its timing log."""
    out = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if "diverged_at" in record:
            out[record["id"]] = record["diverged_at"]
    return out


def _requests(db: Path, run_id: int) -> list[tuple[str, str]]:
    """(prompt_id, response_id) of a run's measured requests, by idx."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT prompt_id, response_id FROM requests WHERE run_id = ? AND warmup = 0 "
            "ORDER BY idx",
            [run_id],
        ).fetchall()
    return [(str(p), str(r)) for p, r in rows]


# -- the simulator ----------------------------------------------------------------------------


def _texts(config: Any, bodies: list[dict[str, Any]]) -> list[str]:
    async def main() -> list[str]:
        runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        out = []
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as s:
                for body in bodies:
                    async with s.post("/v1/chat/completions", json=body) as r:
                        out.append((await r.json())["choices"][0]["message"]["content"])
        finally:
            await runner.cleanup()
        return out

    return asyncio.run(main())


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 40, **extra}


def test_greedy_output_is_a_function_of_the_prompt_not_of_arrival() -> None:
    """Temperature 0 is greedy: the same prompt gets the same text whatever came before it
    (the sim used to seed every request by its arrival number)."""
    config = dataclasses.replace(PRESETS["instant"], seed=1)  # one model for the servers below
    a, b = "What is the capital of France?", "Name a prime above 100."
    first = _texts(config, [_chat(a, temperature=0), _chat(b, temperature=0)])
    later = _texts(
        config, [_chat(b, temperature=0), _chat(b, temperature=0), _chat(a, temperature=0)]
    )
    assert first[0] == later[2] and first[1] == later[0] == later[1]
    assert first[0] != first[1]
    # a longer cap extends the same greedy text; sampling still draws by arrival
    longer = _texts(config, [_chat(a, temperature=0, max_tokens=80, min_tokens=80)])[0]
    assert longer.startswith(first[0]) and len(longer) > len(first[0])
    sampled = _texts(config, [_chat(a), _chat(a), _chat(a, temperature=0.7)])
    assert len(set(sampled)) == 3


def test_estimate_positions_are_shared_characters_over_four() -> None:
    tok = load_tokenizer(None)
    assert first_difference(" the river ran", " the river was", tok) == 11 // 4
    assert first_difference(" same", " same and more", tok) == 5 // 4


# -- perf --determinism against the simulator ---------------------------------------------------


def test_switch_off_every_level_matches_the_reference(tmp_path: Path) -> None:
    """Without --batch-variance the sim is batch-invariant: no level differs. Were greedy
    requests still seeded by arrival, every later pass would differ everywhere."""
    db = tmp_path / "p.db"
    result = run(_spec(db, 4, 16))
    d = result.determinism
    assert d is not None and result.exit_code == 0
    assert [lv.label for lv in d.levels] == ["1 (reference)", "4", "16", "1 (again)"]
    assert [lv.parallel for lv in d.levels] == [1, 4, 16, 1]
    for lv in d.levels:
        assert lv.overall.compared == PROMPTS and lv.overall.differ == 0, lv
        assert lv.failed == lv.no_reference == lv.not_sent == lv.extra == 0
    assert result.notes == ["concurrency 1 was added as the reference (--parallel did not list it)"]
    assert d.verdict() is not None and "did not depend on the load" in d.verdict()  # type: ignore[operator]
    # every run sent the same prompts in the same order
    sent = {lv.run_id: [p for p, _ in _requests(db, lv.run_id)] for lv in d.levels}
    assert len({tuple(v) for v in sent.values()}) == 1


def test_switch_on_levels_differ_where_the_sim_diverged(tmp_path: Path, sim_tokenizer: str) -> None:
    db, log = tmp_path / "p.db", tmp_path / "sim.jsonl"
    spec = _spec(
        db,
        1,
        8,
        sim_args=("--batch-variance", "0.05", "--timing-log", str(log)),
        workload=WorkloadSpec(dataset="openqa", tokenizer=sim_tokenizer),
        determinism=DeterminismSpec(rerun=12),
    )
    result = run(spec)
    d = result.determinism
    assert d is not None and result.exit_code == 0
    reference, eight, again = d.levels
    assert (reference.role, eight.role, again.role) == ("reference", "level", "again")
    assert reference.overall.differ == 0
    assert again.overall.compared == 12 and again.overall.differ == 0
    assert again.not_sent == PROMPTS - 12
    assert result.notes == []
    # the truth: which requests the sim changed, and at which token
    truth = _diverged(log)
    assert not any(rid in truth for _, rid in _requests(db, reference.run_id))
    assert not any(rid in truth for _, rid in _requests(db, again.run_id))
    changed = {p: truth[rid] for p, rid in _requests(db, eight.run_id) if rid in truth}
    assert changed, "a batch of 8 at 5% a step flips some of 24 outputs"
    assert eight.overall.differ == len(changed) > 0
    assert sorted(eight.overall.positions) == sorted(changed.values())
    assert sum(b.compared for b in eight.buckets) == PROMPTS
    assert sum(b.differ for b in eight.buckets) == len(changed)
    assert "come with the batch" in (d.verdict() or "")
    # the same figures afterwards, from the stored runs
    again_d = determinism(db, [str(lv.run_id) for lv in d.levels])
    assert again_d.to_dict() == d.to_dict()


def test_grade_gives_accuracy_per_level(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    from perfbench.config import GradeSpec

    spec = _spec(
        db,
        1,
        8,
        number=16,
        sim_args=("--batch-variance", "0.2"),
        workload=WorkloadSpec(dataset="synthetic_math"),
        determinism=DeterminismSpec(rerun=0),
        grade=GradeSpec(workers=1),
    )
    result = run(spec)
    d = result.determinism
    assert d is not None and result.grade_error is None
    assert [lv.label for lv in d.levels] == ["1 (reference)", "8"]
    for lv in d.levels:
        assert lv.graded == 16 and lv.accuracy is not None
    for lv in d.levels:  # the grading pass's own figure, read from its table
        (mean,) = (
            sqlite3.connect(db)
            .execute("SELECT avg(correct) FROM grades WHERE run_id = ?", [lv.run_id])
            .fetchone()
        )
        assert lv.accuracy == pytest.approx(mean)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"client": ClientSpec(temperature=0.7)}, "--temperature 0.7"),
        ({"loads": (LoadSpec(parallel=None, rate=5.0, number=10),)}, "drop --rate"),
        (
            {"loads": (LoadSpec(parallel=1, number=5), LoadSpec(parallel=8, number=10))},
            "one --number",
        ),
        ({"loads": (LoadSpec(parallel=8, duration=5.0),)}, "drop --duration"),
        ({"repeat": 2}, "drop --repeat"),
        ({"determinism": DeterminismSpec(rerun=0)}, "nothing to compare"),
    ],
)
def test_spec_refuses_what_it_cannot_compare(kw: dict[str, Any], needle: str) -> None:
    base: dict[str, Any] = {
        "client": ClientSpec(),
        "loads": (LoadSpec(parallel=1, number=5),),
        "determinism": DeterminismSpec(),
    }
    with pytest.raises(ConfigError, match=needle.replace("-", r"\-")):
        PerfSpec(**{**base, **kw})


def test_temperature_zero_is_set_for_the_levels() -> None:
    spec = PerfSpec(ClientSpec(), loads=(LoadSpec(parallel=8),), determinism=DeterminismSpec())
    assert spec.client.temperature == 0


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_perf_then_report_determinism(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    sim_args = " ".join((*TIMED, "--batch-variance", "0.05"))
    proc = perfbench(
        "perf", "--determinism", "--parallel", "1", "8", "--number", "16", "--max-tokens", "24",
        "--rerun", "8", "--sim-args", sim_args, "--db", str(db), "--json", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    det = doc["determinism"]
    assert det["schema_version"] == doc["perf"]["schema_version"] == 1
    labels = [lv["label"] for lv in det["levels"]]
    assert labels == ["1 (reference)", "8", "1 (again)"]
    assert [lv["compared"] for lv in det["levels"]] == [16, 16, 8]
    assert det["levels"][0]["differ"] == det["levels"][2]["differ"] == 0
    for lv in det["levels"]:  # every compared request falls in exactly one length bucket
        assert sum(b["compared"] for b in lv["by_prompt_length"]) == lv["compared"]
        assert sum(b["differ"] for b in lv["by_prompt_length"]) == lv["differ"]
    assert all(
        json.loads(c)["temperature"] == 0
        for (c,) in sqlite3.connect(db).execute("SELECT client FROM runs")
    )
    ids = [str(lv["run_id"]) for lv in det["levels"]]
    later = perfbench("report", "--determinism", *ids, "--db", str(db), "--json")
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["levels"] == det["levels"]
    table = perfbench("report", "--determinism", "--db", str(db))  # the latest batch
    assert table.returncode == 0, table.stderr
    assert "1 (again)" in table.stdout and "By prompt length" in table.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--determinism", "--temperature", "0.7"), "drop --temperature 0.7"),
        (("--determinism", "--rate", "5"), "drop --rate"),
        (("--determinism", "--parallel", "1", "--rerun", "0"), "nothing to compare"),
        (("--determinism", "--parallel", "1", "8", "--number", "5", "10"), "one --number"),
        (("--rerun", "3"), "--rerun goes with --determinism"),
    ],
)
def test_cli_bad_input_is_one_line_and_sends_nothing(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    db = tmp_path / "p.db"
    proc = perfbench("perf", *args, "--db", str(db))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not db.exists()  # refused before the database, the simulator or any request


def test_cli_report_determinism_needs_a_reference(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    made = perfbench("perf", "--parallel", "2", "--number", "4", "--sim-args", "--preset instant",
                     "--db", str(db), "--quiet")  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = perfbench("report", "--determinism", "--db", str(db))
    assert proc.returncode == 2
    assert "no concurrency-1 run" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    tok = perfbench("report", "--tokenizer", "x", "--db", str(db))
    assert tok.returncode == 2 and "--tokenizer goes with --determinism" in tok.stderr
