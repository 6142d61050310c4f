"""Eval-time plans: the closed-loop model, and a prediction checked against a real run.

The engine: at most 4 sequences at once, a first token 20 ms after admission, then
8 ms + 1 ms per other running sequence per token (11 ms with 4 running). The sweep measures it
with 12-token outputs; the plan is for 32 requests of 32 tokens, which no sweep level ran.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.capacity.plan import PlanSpec, closed_loop, duration, plan
from perfbench.capacity.slo import parse_slos
from perfbench.capacity.sweep import SweepSpec, sweep
from perfbench.config import WorkloadSpec
from tests.conftest import rows

CAP4 = ("--max-num-seqs", "4", "--ttft-ms", "20", "--itl-ms", "8", "--itl-ms-per-seq", "1",
        "--prefill-us-per-token", "0", "--seed", "3")  # fmt: skip
TOLERANCE = 0.15  # predicted wall time within 15% of the real run's measured window


@pytest.fixture(scope="module")
def swept(sim, tmp_path_factory):
    db = tmp_path_factory.mktemp("plan") / "p.db"
    url = sim(*CAP4)
    base = PerfSpec(
        client=ClientSpec(url=url, max_tokens=12, min_tokens=12),
        loads=(LoadSpec(),),
        db_path=db,
        name="curve",
    )
    sweep(base, SweepSpec(levels=(1, 2, 4, 8), per_unit=4, min_number=12))
    return url, db


def test_prediction_matches_a_real_run_at_the_recommended_concurrency(swept):
    url, db = swept
    slos = parse_slos(["ttft_p99<=150ms"])
    p = plan(PlanSpec(curve=("curve",), prompts=32, output_len=32, slos=slos, db_path=db))
    rec = p.recommended
    assert rec is not None and rec.concurrency == 4 and p.knee == 4
    # 8 concurrent queues behind the 4 slots: as fast, but TTFT p99 misses the SLO
    eight = next(x for x in p.levels if x.concurrency == 8)
    assert not eight.passed and eight.wall_s == pytest.approx(rec.wall_s, rel=0.1)
    assert eight.slots == pytest.approx(4, rel=0.15)  # Little's law sees the cap
    # the model: 8 waves of 20 + 31 × 11 ms
    assert rec.wall_s == pytest.approx(8 * (20 + 31 * 11) / 1e3, rel=0.1)
    real = run(
        PerfSpec(
            client=ClientSpec(url=url, max_tokens=32, min_tokens=32),
            loads=(LoadSpec(parallel=rec.concurrency, number=32),),
            db_path=db,
            name="eval",
        )
    ).runs[0]
    error = real.summary.duration_s / rec.wall_s - 1
    assert abs(error) < TOLERANCE, (real.summary.duration_s, rec.wall_s)
    assert p.answer.startswith("Run the eval at concurrency 4: 32 requests of about 32 output")
    data = json.loads(p.to_json())
    assert data["recommended"] == 4 and data["requests"] == 32


def test_lengths_and_size_come_from_an_earlier_run_of_the_dataset(sim, swept):
    _, db = swept
    # an earlier run of openqa (on another engine), its output lengths left to the engine
    url = sim("--preset", "instant", "--output-len-mean", "20", "--seed", "2")
    (earlier,) = run(
        PerfSpec(
            client=ClientSpec(url=url, max_tokens=30),
            workload=WorkloadSpec(dataset="openqa"),
            loads=(LoadSpec(parallel=4, number=12),),
            db_path=db,
            name="openqa-before",
        )
    ).runs
    measured = rows(
        db,
        "SELECT completion_tokens, finish_reason FROM requests WHERE run_id = ? ORDER BY idx",
        (earlier.run_id,),
    )
    p = plan(PlanSpec(curve=("curve",), dataset="openqa", n=2, max_tokens=40, db_path=db))
    w = p.workload
    assert w.requests == 234 * 2  # openqa's rows, each twice
    assert w.source == f"lengths measured in run {earlier.run_id}"
    # request k is prompt k // 2 of the 12 measured, in the order they were sent
    expected = [float(n) for n, _ in measured]
    assert w.lengths[:24].tolist() == [x for x in expected for _ in range(2)]
    assert w.lengths[24] == expected[0]
    capped = sum(1 for _, why in measured if why == "length")
    assert capped and any(f"{capped} of run {earlier.run_id}'s outputs" in x for x in p.warnings)


def test_closed_loop_model():
    s = np.full(10, 100.0)
    waits, end = closed_loop(s, workers=4, slots=4)
    assert end == 300 and not waits.any()  # three waves
    waits, end = closed_loop(s, workers=8, slots=4)
    assert end == 300 and list(waits[:8]) == [0, 0, 0, 0, 100, 100, 100, 100]
    # list scheduling stays within Graham's bound
    rng = np.random.default_rng(0)
    s = rng.lognormal(5, 1, 200)
    _, end = closed_loop(s, workers=16, slots=16)
    assert s.sum() / 16 <= end <= s.sum() / 16 + s.max()


def test_duration_reads_as_time():
    assert duration(42.46) == "42.5 s"
    assert duration(125) == "2 min 05 s"
    assert duration(3725) == "1 h 02 min"


def test_percentile_slos_are_judged_on_predicted_percentiles_not_the_mean(sim, tmp_path):
    """The default simulator's TTFT grows with the prompt (20 µs a token), so over openqa's
    prompts its p99 sits several ms above its mean. An SLO between the two must fail below the
    knee, where nothing queues: the prediction there is the measured distribution itself."""
    db = tmp_path / "spread.db"
    url = sim("--seed", "9")
    base = PerfSpec(
        client=ClientSpec(url=url, max_tokens=8, min_tokens=8), loads=(LoadSpec(),), db_path=db,
        name="spread",
    )  # fmt: skip
    sweep(base, SweepSpec(levels=(1, 2), per_unit=30, min_number=60))
    measured = rows(db, "SELECT ttft_ms FROM requests WHERE run_id = 1 AND status = 'ok'")
    ttft = np.array([t for (t,) in measured])
    mean, p99 = float(ttft.mean()), float(np.percentile(ttft, 99))
    assert p99 - mean > 1.0, (mean, p99)  # the test needs a spread to mean anything
    between = (mean + p99) / 2
    slos = parse_slos([f"ttft_p99<={between:.2f}ms"])
    p = plan(PlanSpec(curve=("spread",), prompts=60, output_len=8, slos=slos, db_path=db))
    one = next(x for x in p.levels if x.concurrency == 1)
    (result,) = one.slo
    assert result.value == pytest.approx(p99, rel=0.05)  # a p99, not the mean
    assert not result.passed
