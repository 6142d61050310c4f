"""Sweeps against a simulated engine of known capacity: the knee and the SLO limit land where
the simulator's model puts them.

The engine: at most 8 sequences at once (``--max-num-seqs 8``), a first token 10 ms after
admission, then 4 ms per token whatever the batch (``--itl-ms-per-seq 0``); 16-token outputs.
A request takes 10 + 15 × 4 = 70 ms, so a closed loop of c ≤ 8 serves c / 70 ms: throughput
grows in proportion to c up to 8 and is flat beyond it, where each extra request waits in the
queue (TTFT ≈ 10 ms up to 8 concurrent, then 10 + 70 ms for whoever waits a turn: at 9, one
request in 8). So the knee is at 8, and ``ttft_p95<=60ms`` holds up to exactly 8. (A p95, not a
p99: on a busy 2-core machine one request in a few dozen can be late by tens of milliseconds,
and the p99 of a few dozen samples is their maximum.)
"""

from __future__ import annotations

import json
import math
import re

import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec
from perfbench.capacity.slo import parse_slos
from perfbench.capacity.sweep import SweepSpec, find_knee, roofline, sweep
from perfbench.errors import ConfigError
from tests.conftest import rows

CAP8 = ("--max-num-seqs", "8", "--ttft-ms", "10", "--itl-ms", "4", "--itl-ms-per-seq", "0",
        "--prefill-us-per-token", "0", "--seed", "1")  # fmt: skip


def _base(url: str, db, name: str = "cap8") -> PerfSpec:
    return PerfSpec(
        client=ClientSpec(url=url, max_tokens=16, min_tokens=16),
        loads=(LoadSpec(),),
        db_path=db,
        name=name,
    )


def test_auto_search_finds_the_knee_and_the_slo_limit(sim, tmp_path):
    db = tmp_path / "s.db"
    spec = SweepSpec(slos=parse_slos(["ttft_p95<=60ms"]), per_unit=8, min_number=16)
    result = sweep(_base(sim(*CAP8), db), spec)
    levels = [x.level for x in result.levels]
    assert levels[:3] == [1, 2, 4] and {8, 16} <= set(levels)  # doubled…
    assert {x.phase for x in result.levels} >= {"double", "bisect-slo", "bisect-knee"}  # …bisected
    knee, limit = result.knee, result.slo_limit
    assert knee is not None and limit is not None
    assert abs(knee.level - 8) <= 1, levels
    assert abs(limit.level - 8) <= 1
    assert result.knee_fit == pytest.approx(8, rel=0.15)
    # throughput: proportional below the knee, flat above it (within 10%)
    per_level = {x.level: x.summary.req_per_s for x in result.levels}
    assert per_level[4] == pytest.approx(4 / 0.070, rel=0.15)
    assert per_level[16] == pytest.approx(per_level[8], rel=0.1)
    assert re.match(
        r"Meets every SLO up to (7|8|9) concurrent requests \(goodput [0-9.]+ req/s\); "
        r"throughput saturates at about (7|8|9) \(the knee, [0-9,]+ output tok/s\), beyond "
        r"which latency is queueing\.",
        result.answer,
    ), result.answer
    assert result.exit_code == 0
    # every level is a run of the same name in the same database
    names = rows(db, "SELECT DISTINCT name FROM runs")
    assert names == [("cap8",)]
    assert len(rows(db, "SELECT id FROM runs")) == len(result.levels)
    data = json.loads(result.to_json())
    assert data["knee"] == knee.level and data["slo_limit"] == limit.level
    assert data["levels"][0]["slo"][0]["slo"] == "ttft_p95<=60ms"


def test_given_levels_stop_once_a_level_fails_badly(sim, tmp_path):
    # at 32 concurrent, four waves of 70 ms: E2E p50 ≈ 280 ms, past 2 × 100 ms; 64 is skipped
    spec = SweepSpec(levels=(1, 4, 32, 64), number=64, slos=parse_slos(["e2e_p50<=100ms"]))
    result = sweep(_base(sim(*CAP8), tmp_path / "g.db", "given"), spec)
    assert [x.level for x in result.levels] == [1, 4, 32]
    assert result.stopped_early is not None and "e2e_p50" in result.stopped_early
    assert [x.passed for x in result.levels] == [True, True, False]
    assert result.slo_limit is not None and result.slo_limit.level == 4
    assert "Stopped climbing" in result.answer


def test_find_knee_and_roofline_on_known_points():
    # throughput ∝ level up to 8, then flat; latency flat, then climbing
    pts = [(1, 100, 70), (2, 200, 70), (4, 400, 71), (8, 790, 72), (16, 800, 140), (32, 805, 280)]
    assert find_knee(pts) == 3
    assert roofline([(x, t) for x, t, _ in pts], 8) == pytest.approx(8.05, rel=0.01)
    # still growing: no knee
    assert find_knee([(1, 100, 70), (2, 200, 70), (4, 400, 70)]) is None
    # flat but latency does not climb (a client-bound curve): not a knee
    assert find_knee([(1, 100, 70), (2, 101, 71)]) is None
    assert find_knee([(1, math.nan, math.nan)]) is None


def test_sweep_spec_builds_each_level_from_the_template():
    template = LoadSpec(parallel=3, number=5, warmup=2, seed=7)
    closed = SweepSpec(per_unit=10, min_number=20).load(template, 8)
    assert (closed.parallel, closed.number, closed.warmup, closed.seed) == (8, 80, 2, 7)
    assert SweepSpec(per_unit=10, min_number=20).load(template, 1).number == 20
    opened = SweepSpec(mode="rate", duration=5.0).load(LoadSpec(arrival="constant"), 2.5)
    assert (opened.rate, opened.number, opened.duration, opened.arrival) == (
        2.5,
        None,
        5.0,
        "constant",
    )


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"levels": (1, 2.5)}, "whole numbers"),
        ({"levels": (0,)}, "positive"),
        ({"start": 64, "max_level": 8}, "--start"),
        ({"precision": 0}, "--precision"),
        ({"stop_ratio": 1}, "--stop-ratio"),
        ({"mode": "tokens"}, "concurrency"),
    ],
)
def test_bad_sweep_specs(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        SweepSpec(**kwargs)
