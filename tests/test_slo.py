"""SLOs: parsing, checking a run against them, and goodput against real simulated requests."""

from __future__ import annotations

import numpy as np
import pytest

from perfbench import ClientSpec, LoadSpec, PerfSpec, Store, run
from perfbench.capacity.slo import SLO, check, goodput, parse_slos
from perfbench.errors import ConfigError
from tests.conftest import rows


@pytest.mark.parametrize(
    ("text", "metric", "stat", "op", "bound"),
    [
        ("ttft_p99<=2s", "ttft", "p99", "<=", 2000.0),
        ("tpot_p50<=50ms", "tpot", "p50", "<=", 50.0),
        ("e2e_mean<10s", "e2e", "mean", "<", 10_000.0),
        ("itl_p95 <= 30ms", "itl", "p95", "<=", 30.0),
        ("ttft_intended_p99.9<=3s", "ttft_intended", "p99.9", "<=", 3000.0),
        ("e2e_max<=1.5s", "e2e", "max", "<=", 1500.0),
        ("error_rate<=1%", "error_rate", None, "<=", 0.01),
        ("error_rate<0.05", "error_rate", None, "<", 0.05),
        ("output_tok_per_s>=1000", "output_tok_per_s", None, ">=", 1000.0),
        ("output_tps_p10>20", "output_tps", "p10", ">", 20.0),
        ("TTFT_P99<=2S", "ttft", "p99", "<=", 2000.0),
    ],
)
def test_slo_text_parses_to_canonical_units(text, metric, stat, op, bound):
    slo = SLO.parse(text)
    assert (slo.metric, slo.stat, slo.op) == (metric, stat, op)
    assert slo.bound == pytest.approx(bound)
    assert SLO.parse(str(slo)) == slo  # it prints as it parses


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ttft<=2s", "ttft_p99 or ttft_mean"),
        ("ttft_p99<=2", "with a unit"),
        ("ttft_p99<=2%", "with a unit"),
        ("latency_p99<=2s", "unknown metric"),
        ("ttft_p99=2s", "METRIC_STAT OP VALUE"),
        ("ttft_p101<=2s", "between p0 and p100"),
        ("error_rate<=1ms", "% or a fraction"),
        ("output_tok_per_s>=1000ms", "plain number"),
        ("ttft_p99<=fast", "not a number"),
    ],
)
def test_bad_slo_text_is_one_sentence_with_an_example(text, says):
    with pytest.raises(ConfigError) as err:
        SLO.parse(text)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_several_slos_in_one_flag():
    assert [str(s) for s in parse_slos(["ttft_p99<=2s,tpot_p50<=50ms", "error_rate<=1%"])] == [
        "ttft_p99<=2s",
        "tpot_p50<=50ms",
        "error_rate<=1%",
    ]


def test_check_and_goodput_against_a_run(sim, tmp_path):
    # a fifth of the streams stall 150 ms: those requests miss an E2E bound of 100 ms
    url = sim("--ttft-ms", "5", "--itl-ms", "2", "--stall-rate", "0.2", "--stall-ms", "150",
              "--seed", "4")  # fmt: skip
    db = tmp_path / "g.db"
    spec = PerfSpec(
        client=ClientSpec(url=url, max_tokens=10, min_tokens=10),
        loads=(LoadSpec(parallel=4, number=40),),
        db_path=db,
    )
    (r,) = run(spec).runs
    s = r.summary
    slos = parse_slos(["e2e_p99<=100ms", "ttft_p50<=1s", "e2e_p97<=10s", "error_rate<=0%"])
    store = Store(db)
    try:
        results = check(s, slos, store)
        g = goodput(store, s, slos)
        everyone = goodput(store, s, ())
    finally:
        store.close()
    e2e = np.array([v for (v,) in rows(db, "SELECT e2e_ms FROM requests WHERE status = 'ok'")])
    slow = int((e2e > 100).sum())
    assert 2 <= slow <= 20  # the seeded stalls happened
    assert [x.passed for x in results] == [False, True, True, True]
    assert results[0].value == s.distributions["e2e_ms"].values["p99"]
    assert results[0].ratio > 1.5  # a 150 ms stall is well past a 100 ms bound
    assert results[2].value == pytest.approx(np.percentile(e2e, 97))  # not in the Summary
    # per request: a request is good when its own E2E is within 100 ms (and TTFT within 1 s)
    assert g.good == s.ok - slow and g.measured == 40
    assert g.per_s == pytest.approx(g.good / s.duration_s)
    assert everyone.good == s.ok  # no per-request SLO: every success is good
