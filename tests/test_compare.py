"""perfbench.compare: intervals checked against brute force, verdicts against real simulators."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perfbench.compare.runs import (
    FIGURES,
    CompareSpec,
    Comparison,
    _cluster_bootstrap,
    _Clusters,
    _order_bootstrap,
    compare,
    gate_exit_code,
    parse_threshold,
    render,
    wilson,
)
from perfbench.errors import ConfigError, UsageError
from tests.conftest import perfbench

# A sim whose timing does not depend on the batch: every stream is 50 ms + 31 × 5 ms.
TIMED = ("--ttft-ms", "50", "--itl-ms", "5", "--itl-ms-per-seq", "0", "--prefill-us-per-token", "0")
SLOWER = (
    "--ttft-ms",
    "65",
    "--itl-ms",
    "6.5",
    "--itl-ms-per-seq",
    "0",
    "--prefill-us-per-token",
    "0",
)
WORKLOAD = ("--dataset", "random", "--input-len", "32", "--output-len", "32", "--max-tokens", "64")


def _perf(db: Path, *args: str) -> int:
    result = perfbench("perf", *args, "--db", str(db), "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return int(data.get("perf", data)["runs"][0]["run_id"])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, sim: Any) -> tuple[Path, dict[str, int]]:
    """Run 'base' against one timed sim, and the same load as two groups of 3 replicates
    ('rep_a', 'rep_b'); 'slow' against one 30% slower, 'errors' against a failing one, and two
    graded synthetic_math runs at 90% and 50% accuracy."""
    path = tmp_path_factory.mktemp("compare") / "perfbench.db"
    timed, slower = sim(*TIMED), sim(*SLOWER)
    failing = sim("--preset", "instant", "--error-rate", "0.3", "--seed", "3")
    load = ("--parallel", "16", "--number", "240", "--warmup", "16")
    ids = {
        "base": _perf(path, "--url", timed, *WORKLOAD, *load),
        **{
            name: _perf(
                path,
                "--url",
                timed,
                *WORKLOAD,
                "--parallel",
                "16",
                "--number",
                "120",
                "--warmup",
                "16",
                "--repeat",
                "3",
                "--name",
                name.replace("_", "-"),
            )  # fmt: skip
            for name in ("rep_a", "rep_b")
        },
        "slow": _perf(path, "--url", slower, *WORKLOAD, *load),
        "errors": _perf(
            path,
            "--url",
            failing,
            *WORKLOAD,
            "--parallel",
            "16",
            "--number",
            "60",
            "--max-error-rate",
            "1",  # a run that fails 30% of its requests, kept on purpose
        ),  # fmt: skip
    }
    for name, accuracy in (("right", "0.9"), ("wrong", "0.5")):
        ids[name] = _perf(
            path,
            "--sim-args",
            f"--preset instant --answer-accuracy {accuracy}",
            "--dataset",
            "synthetic_math",
            "--grade",
            "--number",
            "100",
            "--parallel",
            "16",
            "--max-tokens",
            "512",
        )
    return path, ids


def _cmp(db: tuple[Path, dict[str, int]], base: str, new: str, **spec: Any) -> Comparison:
    path, ids = db
    return compare(path, str(ids[base]), str(ids[new]), CompareSpec(**spec))


# -- against the simulator -------------------------------------------------------------------


def test_same_configuration_with_replicates_shows_no_significant_change(db: Any) -> None:
    """Two groups of 3 replicates of one configuration. The interval covers the variation
    between runs, so machine noise that moves one run's tail by 20% (a single run per side,
    on a busy machine, flagged an alarm in 6 of 10 identical pairs: docs/compare.md) is not
    called a change. benchmarks/compare_gate.py measured 0 alarms in 10 such pairs on a busy
    machine; this test's own false-alarm rate is at most the family-wise 5%, and in practice
    far lower, since the floor (5%) and the 10% gate stand between noise and a failure."""
    path, ids = db
    result = compare(path, "rep-a", "rep-b", CompareSpec(thresholds={"*": 0.10}))
    assert result.base.replicates == (ids["rep_a"], ids["rep_a"] + 1, ids["rep_a"] + 2)
    assert result.new.replicates == (ids["rep_b"], ids["rep_b"] + 1, ids["rep_b"] + 2)
    assert [f.key for f in result.figures] == [k for k in FIGURES if k != "accuracy"]
    changed = {f.key: (f.change, f.ci) for f in result.figures if f.verdict != "unchanged"}
    assert not changed, changed
    assert gate_exit_code(result) == 0
    assert (
        "runs " in result.summary() and "no significant change in any of the 19" in result.summary()
    )
    assert result.level == pytest.approx(1 - 0.05 / 19)  # Bonferroni over the figures compared
    assert not any(d.startswith("endpoint") for d in result.differences)  # one sim for both
    assert all(
        f.method == "Welch t over replicates (3 and 3 runs)"
        for f in result.figures
        if f.key != "error_rate"
    )
    assert result.figure("error_rate").n_base == 360  # the replicates' requests pooled
    assert not any("one run per side" in w for w in result.warnings)
    # any replicate's id stands for its group, and so does a name
    again = compare(path, str(ids["rep_a"] + 2), str(ids["rep_b"]), CompareSpec())
    assert again.base.replicates == result.base.replicates


def test_replicate_intervals_are_welch_t_intervals_on_the_log_figures(db: Any) -> None:
    """The figure of a group is the geometric mean of its replicates' report figures, and the
    interval is at least Welch's t interval (scipy) on their logs (wider where the within-run
    floor binds; where it does not, the next test shows it is exactly Welch's)."""
    from scipy import stats

    from perfbench import report

    path, ids = db
    result = compare(path, "rep-a", "rep-b", CompareSpec())
    figures = {}
    for side in ("rep_a", "rep_b"):
        runs = [str(ids[side] + k) for k in range(3)]
        figures[side] = report(path, runs).to_dict()["runs"]
    for key in ("ttft_mean", "ttft_p50", "tpot_mean", "e2e_mean", "e2e_p90", "req_per_s"):
        stat = key.rsplit("_", 1)
        a, b = (
            np.log([_figure(s, key, stat) for s in figures[side]]) for side in ("rep_a", "rep_b")
        )
        f = result.figure(key)
        assert f.base == pytest.approx(math.exp(a.mean()), rel=1e-9), key
        assert f.new == pytest.approx(math.exp(b.mean()), rel=1e-9), key
        welch = stats.ttest_ind(b, a, equal_var=False).confidence_interval(result.level)
        lo, hi = math.expm1(welch.low), math.expm1(welch.high)
        assert f.ci is not None and f.ci[0] <= lo + 1e-9 and f.ci[1] >= hi - 1e-9, (
            key,
            f.ci,
            lo,
            hi,
        )


def test_the_replicate_interval_is_welchs_where_the_floor_does_not_bind() -> None:
    """Groups whose replicates vary more than their within-run noise: the interval's half-width
    is exactly Welch's t interval's (scipy) on the logs; with the floor above that variation,
    it is wider, never narrower."""
    from scipy import stats

    from perfbench.compare.runs import _replicate_interval

    class Side:
        def __init__(self, values: list[float], within: float) -> None:
            self.logs, self.size, self.within = np.log(values), len(values), within

        def log_variance(self, key: str, spreads: Any) -> tuple[float, float]:
            between = float(np.var(self.logs, ddof=1))
            return max(between, self.within), between

    level = 1 - 0.05 / 19
    for base, new in (([100, 104, 97], [110, 118, 107]), ([50, 51, 49, 50.5], [60, 58, 63])):
        a, b = Side(base, 1e-9), Side(new, 1e-9)
        se, t = _replicate_interval((a, b), "ttft_mean", ([{}] * a.size, [{}] * b.size), level)
        welch = stats.ttest_ind(b.logs, a.logs, equal_var=False).confidence_interval(level)
        assert se * t == pytest.approx((welch.high - welch.low) / 2, rel=1e-9)
        floored = Side(base, 0.01), Side(new, 0.01)  # a floor above the replicates' variance
        se2, t2 = _replicate_interval(floored, "ttft_mean", ([{}] * a.size, [{}] * b.size), level)
        assert se2 * t2 > se * t


def _figure(summary: dict[str, Any], key: str, stat: list[str]) -> float:
    if key in ("req_per_s", "output_tok_per_s"):
        return float(summary[key])
    name, which = stat
    dist = summary["distributions"][f"{name}_ms"]
    return float(dist["mean"] if which == "mean" else dist["values"][which])


def test_one_run_per_side_says_its_interval_is_within_run_only(db: Any) -> None:
    from perfbench.compare.runs import compare_stored
    from perfbench.store import Store

    path, ids = db
    store = Store(path)
    try:
        single = compare_stored(store, store.run(ids["base"]), store.run(ids["rep_a"]))
        mixed = compare_stored(
            store, store.run(ids["base"]), store.replicates(store.run(ids["rep_a"]))
        )
    finally:
        store.close()
    assert any("one run per side" in w and "--repeat" in w for w in single.warnings)
    assert single.figure("tpot_mean").method == "cluster bootstrap over time slices"
    assert any("the base side is one run" in w for w in mixed.warnings)
    assert mixed.figure("tpot_mean").method == "Welch t over replicates (1 and 3 runs)"


def test_a_slower_server_is_worse_and_fails_the_gate(db: Any) -> None:
    result = _cmp(db, "base", "slow", thresholds={"*": 0.10})
    for key in ("tpot_mean", "tpot_p50", "itl_mean", "e2e_mean", "e2e_p50", "ttft_p50"):
        f = result.figure(key)
        assert f.verdict == "worse", (key, f)
        assert f.change == pytest.approx(0.30, abs=0.05), key
        assert f.ci is not None and f.ci[0] > 0.10
        assert f.gate_failed
    assert result.figure("output_tok_per_s").change < -0.15  # 1/1.3 − 1 = −23%
    assert result.figure("error_rate").verdict == "unchanged"
    assert gate_exit_code(result) == 1
    assert "the gate fails on" in result.summary()
    assert any(d.startswith("endpoint") for d in result.differences)  # another sim
    # only the gated figure decides the exit code
    assert gate_exit_code(_cmp(db, "base", "slow", thresholds={"error_rate": 0.01})) == 0
    assert gate_exit_code(_cmp(db, "base", "slow", thresholds={"tpot_p99": 0.5})) == 0
    assert gate_exit_code(_cmp(db, "base", "slow", thresholds={"tpot_p99": 0.1})) == 1


def test_a_faster_server_is_better_and_passes(db: Any) -> None:
    result = _cmp(db, "slow", "base", thresholds={"*": 0.10}, metrics=("tpot", "e2e", "throughput"))
    assert {f.key for f in result.figures} == {
        *(f"{k}_{s}" for k in ("tpot", "e2e") for s in ("mean", "p50", "p90", "p99")),
        "output_tok_per_s",
        "req_per_s",
    }
    for key in ("tpot_mean", "e2e_mean", "e2e_p50", "output_tok_per_s"):
        assert result.figure(key).verdict == "better", key
    assert result.compared == 10
    assert gate_exit_code(result) == 0
    assert "the gate passes" in result.summary()


def test_errors_compare_as_points_and_warn(db: Any) -> None:
    result = _cmp(db, "base", "errors", metrics=("error_rate", "ttft"))
    err = result.figure("error_rate")
    assert err.base == 0 and 0.1 < err.new < 0.5
    assert err.verdict == "worse" and err.ci is not None and err.ci[0] > 0
    text = " ".join(result.warnings)
    assert "requests failed" in text
    assert "p99 needs" in text or "that p99 needs" in text  # fewer than 100 successes


def test_different_workloads_refuse_unless_forced(db: Any) -> None:
    with pytest.raises(UsageError) as caught:
        _cmp(db, "base", "right")
    message = str(caught.value)
    assert "\n" not in message
    assert "--dataset random ≠ synthetic_math" in message
    assert "--max-tokens 64 ≠ 512" in message
    assert "--force" in message
    forced = _cmp(db, "base", "right", force=True, metrics=("e2e",))
    assert forced.forced
    assert any("--force" in w for w in forced.warnings)


def test_accuracy_is_compared_when_both_runs_are_graded(db: Any) -> None:
    result = _cmp(db, "right", "wrong", thresholds={"accuracy": 0.05})
    acc = result.figure("accuracy")
    assert acc.base == pytest.approx(0.9, abs=0.1) and acc.new == pytest.approx(0.5, abs=0.12)
    assert acc.verdict == "worse" and acc.gate_failed
    assert acc.p_value is not None and acc.p_value < 1e-4
    assert acc.n_base == acc.n_new == 100
    assert result.compared == 20
    assert gate_exit_code(result) == 1
    # one graded run: no accuracy row, and a warning that says how to get one
    partial = _cmp(db, "base", "rep_a", metrics=("accuracy", "ttft"))
    assert [f.key for f in partial.figures][:1] == ["ttft_mean"]
    assert any("perfbench grade" in w for w in partial.warnings)


def test_outputs(db: Any) -> None:
    result = _cmp(db, "base", "slow", thresholds={"tpot_p99": 0.1})
    data = json.loads(result.to_json())
    assert data["schema_version"] == 1
    assert data["gate_failed"] is True
    tpot = next(f for f in data["figures"] if f["key"] == "tpot_p99")
    assert tpot["gate"] == "fail" and tpot["verdict"] == "worse" and tpot["better"] == "lower"
    assert next(f for f in data["figures"] if f["key"] == "ttft_p99")["gate"] is None
    md = result.to_markdown().splitlines()
    header = next(i for i, line in enumerate(md) if line.startswith("| Figure"))
    assert md[header].count("|") == md[header + 1].count("|") == md[header + 2].count("|") == 8
    assert "**worse**" in result.to_markdown()
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render(result))
    text = console.export_text()
    assert "TPOT p99 (ms)" in text and "fail (> 10%)" in text


# -- the statistics, against brute force ---------------------------------------------------------


@pytest.mark.parametrize(("n", "p"), [(7, 50), (60, 90), (250, 99)])
def test_order_statistic_bootstrap_has_the_resampling_distribution(n: int, p: float) -> None:
    rng = np.random.default_rng(n)
    values = np.sort(rng.lognormal(0, 1, n))
    fast = _order_bootstrap(values, p, rng, 100_000)
    slow = np.percentile(values[rng.integers(0, n, size=(20_000, n))], p, axis=1)
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(slow, q), rel=0.03)
    assert fast.std() == pytest.approx(slow.std(), rel=0.05)


def test_cluster_bootstrap_equals_percentiles_of_the_expanded_resamples() -> None:
    rng = np.random.default_rng(1)
    n = 40
    sizes = rng.integers(1, 9, n)
    per_request = [rng.lognormal(1, 0.4, k) for k in sizes]
    gaps = np.concatenate(per_request)
    owner = np.repeat(np.arange(n), sizes)
    order = np.argsort(gaps, kind="stable")
    reps = _cluster_bootstrap(_Clusters(n, gaps[order], owner[order]), np.random.default_rng(7), 50)
    draws = np.random.default_rng(7).integers(0, n, size=(50, n))  # the same draws
    for i, row in enumerate(draws):
        expanded = np.concatenate([per_request[j] for j in row])
        assert reps["itl_mean"][i] == pytest.approx(expanded.mean())
        for p in (50, 90, 99):
            assert reps[f"itl_p{p}"][i] == pytest.approx(np.percentile(expanded, p))


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Stat. Med. 17:873, table II, example (a): 56/70 − 48/80, method 10
    z = 1.959963984540054
    l1, u1 = wilson(56, 70, z)
    l2, u2 = wilson(48, 80, z)
    d = 56 / 70 - 48 / 80
    lo = d - math.hypot(56 / 70 - l1, u2 - 48 / 80)
    hi = d + math.hypot(u1 - 56 / 70, 48 / 80 - l2)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


# -- the spec --------------------------------------------------------------------------------


def test_thresholds_parse() -> None:
    assert parse_threshold("10%") == ("*", pytest.approx(0.10))
    assert parse_threshold("ttft_p99=5%") == ("ttft_p99", pytest.approx(0.05))
    assert parse_threshold("error_rate=0.01") == ("error_rate", 0.01)
    with pytest.raises(ConfigError, match="--threshold"):
        parse_threshold("ttft_p99=fast")


@pytest.mark.parametrize(
    ("fields", "flag"),
    [
        ({"metrics": ("ttft_p95",)}, "--metric"),
        ({"thresholds": {"latency": 0.1}}, "--threshold"),
        ({"thresholds": {"*": -0.1}}, "--threshold"),
        ({"metrics": ("ttft",), "thresholds": {"e2e_p99": 0.1}}, "--threshold"),
        ({"confidence": 1.0}, "--confidence"),
        ({"resamples": 10}, "--resamples"),
        ({"min_change": -0.01}, "--min-change"),
    ],
)
def test_spec_rejects_with_one_sentence_naming_the_flag(fields: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CompareSpec(**fields)
    assert str(caught.value).startswith(flag)
    assert "\n" not in str(caught.value)


def test_metric_groups_select_figures() -> None:
    assert CompareSpec(metrics=("itl",)).figure_keys() == (
        "itl_mean",
        "itl_p50",
        "itl_p90",
        "itl_p99",
    )
    assert CompareSpec(metrics=("req_per_s", "accuracy")).figure_keys() == ("req_per_s", "accuracy")
    assert len(CompareSpec().figure_keys()) == 20


def test_a_threshold_on_a_group_gates_each_of_its_figures() -> None:
    from perfbench.compare.runs import GROUPS, parse_thresholds

    got = parse_thresholds(["latency=10%", "ttft_p99=5%"])
    assert got["ttft_p99"] == 0.05  # a figure named on its own wins over its group
    assert all(got[k] == 0.10 for k in GROUPS["latency"] if k != "ttft_p99")
    assert CompareSpec(thresholds=got).threshold("e2e_p50") == 0.10
