"""Timing truth: against a simulator whose timing is known, the reported figures agree with it.

The simulator is told TTFT 100 ms and ITL 10 ms with no batching slowdown and exact output
lengths; the client's figures must agree within a tolerance that suits a noisy 2-core CI
machine (medians, a few ms). A second check compares each request's TTFT with the simulator's
own log of when it received the request and wrote the first token (same monotonic clock).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, run
from perfbench.sim.embedded import EmbeddedSim
from tests.conftest import rows

TTFT_MS, ITL_MS, TOKENS = 100.0, 10.0, 40
SIM_FLAGS = (
    "--ttft-ms",
    str(TTFT_MS),
    "--itl-ms",
    str(ITL_MS),
    "--itl-ms-per-seq",
    "0",
    "--prefill-us-per-token",
    "0",
    "--seed",
    "1",
)


def _run(url: str, db: Path, **load: object) -> tuple[int, object]:
    spec = PerfSpec(
        client=ClientSpec(url=url, max_tokens=TOKENS, min_tokens=TOKENS),
        loads=(LoadSpec(**load),),  # type: ignore[arg-type]
        db_path=db,
    )
    result = run(spec)
    (only,) = result.runs
    return only.run_id, only.summary


def test_reported_ttft_itl_tpot_e2e_match_the_simulator(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    run_id, s = _run(url, tmp_path / "t.db", parallel=8, number=48)
    assert s.ok == 48 and s.failed == 0
    d = s.distributions
    ttft50 = d["ttft_ms"].values["p50"]
    itl50 = d["itl_ms"].values["p50"]
    tpot50 = d["tpot_ms"].values["p50"]
    e2e50 = d["e2e_ms"].values["p50"]
    expected_e2e = TTFT_MS + (TOKENS - 1) * ITL_MS
    assert TTFT_MS - 1 <= ttft50 <= TTFT_MS + 8, ttft50
    assert ITL_MS - 0.5 <= itl50 <= ITL_MS + 1.5, itl50
    assert ITL_MS - 0.3 <= tpot50 <= ITL_MS + 1.0, tpot50
    assert expected_e2e - 2 <= e2e50 <= expected_e2e + 20, e2e50
    # every request produced exactly the forced length, counted by the server
    assert s.token_sources == {"usage": 48}
    assert s.mean_output_tokens == TOKENS
    assert d["itl_ms"].n == 48 * (TOKENS - 1)
    # stored per-request figures are consistent with the stored stamps
    for sent, first, last, ttft, tpot, n in rows(
        tmp_path / "t.db",
        "SELECT sent_ns, first_token_ns, last_token_ns, ttft_ms, tpot_ms, completion_tokens "
        "FROM requests WHERE run_id = ?",
        (run_id,),
    ):
        assert ttft == pytest.approx((first - sent) / 1e6)
        assert tpot == pytest.approx((last - first) / 1e6 / (n - 1))


def test_client_ttft_error_against_the_simulators_own_log(tmp_path):
    log = tmp_path / "sim-timing.jsonl"
    with EmbeddedSim((*SIM_FLAGS, "--timing-log", str(log))) as sim:
        run_id, s = _run(sim.url, tmp_path / "t.db", parallel=16, number=64)
    assert s.ok == 64
    truth = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        truth[entry["id"]] = entry
    measured = rows(
        tmp_path / "t.db",
        "SELECT response_id, sent_ns, first_token_ns, last_token_ns FROM requests WHERE run_id = ?",
        (run_id,),
    )
    t0 = rows(tmp_path / "t.db", "SELECT t0_ns FROM runs WHERE id = ?", (run_id,))[0][0]
    errors_ms = []
    for rid, sent, first, _last in measured:
        entry = truth[rid]
        server_ttft = entry["first_token_ns"] - entry["recv_ns"]
        client_ttft = first - sent
        errors_ms.append((client_ttft - server_ttft) / 1e6)
        # the client cannot see the first token before the server wrote it
        assert first + t0 >= entry["first_token_ns"]
    assert len(errors_ms) == 64
    # the client's TTFT exceeds the server's by the network and loop delay only: well under 5 ms
    assert statistics.median(errors_ms) < 5, sorted(errors_ms)
    assert min(errors_ms) > -1, sorted(errors_ms)


def test_open_loop_rate_and_schedule_lag(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    run_id, s = _run(url, tmp_path / "t.db", parallel=None, rate=40.0, number=60, seed=3)
    assert s.mode == "open" and s.ok == 60
    assert s.planned_rate is not None and s.achieved_send_rate is not None
    # the client keeps to its plan: sends within a few ms of the intended time
    lag = s.distributions["schedule_lag_ms"]
    assert lag.values["p50"] < 3, lag
    assert abs(s.achieved_send_rate - s.planned_rate) / s.planned_rate < 0.05
    # TTFT from the plan = TTFT + schedule lag, per request
    for ttft, ttft_plan, lag_ms in rows(
        tmp_path / "t.db",
        "SELECT ttft_ms, ttft_intended_ms, schedule_lag_ms FROM requests WHERE run_id = ?",
        (run_id,),
    ):
        assert ttft_plan == pytest.approx(ttft + lag_ms)
