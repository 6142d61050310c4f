"""perf → grade → thinking efficiency against the simulator, checked against what it was told.

The simulator answers synthetic_math with accuracy 0.7, its first answer at 40% of the
reasoning and two reflections, and logs per response (``--timing-log``) whether it answered
correctly, how long the reasoning was (R) and the token that ends the first answer's step (T̂).
Each request's stored ``response_id`` joins it to that truth.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import perfbench, rows

ACCURACY, FIRST, THOUGHTS, N = 0.7, 0.4, 2, 300


@pytest.fixture(scope="module")
def graded(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, dict[str, int]], dict]:
    tmp = tmp_path_factory.mktemp("e2e")
    db, log = tmp / "e2e.db", tmp / "sim.jsonl"
    sim_args = (
        f"--preset instant --reasoning-ratio 0.9 --answer-accuracy {ACCURACY} "
        f"--first-correct {FIRST} --answer-thoughts {THOUGHTS} --timing-log {log} "
        "--output-len-dist fixed --output-len-mean 300"
    )
    done = perfbench(
        "perf", "--dataset", "synthetic_math", "--shuffle", "--number", str(N), "--parallel", "32",
        "--max-tokens", "1000", "--grade", "--think", "--json", "--db", str(db),
        "--sim-args", sim_args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    truth = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        (answer,) = record["answers"]
        truth[record["id"]] = answer
    return db, truth, json.loads(done.stdout)


def test_accuracy_is_what_the_simulator_was_told(graded: tuple[Path, dict, dict]) -> None:
    db, truth, out = graded
    overall = [
        s for s in out["grades"]["runs"][0]["scores"]
        if s["subset"] == "OVERALL" and s["metric"] == "AveragePass@1"
    ]  # fmt: skip
    assert overall[0]["num"] == N
    sigma = math.sqrt(ACCURACY * (1 - ACCURACY) / N)
    assert abs(overall[0]["score"] - ACCURACY) < 3 * sigma, overall
    # and answer by answer: the grade is the simulator's own coin
    graded_rows = rows(
        db,
        "SELECT r.response_id, g.correct, g.format_ok FROM grades g "
        "JOIN requests r USING (run_id, idx)",
    )
    assert len(graded_rows) == N
    for response_id, correct, format_ok in graded_rows:
        assert format_ok == 1
        assert correct == truth[response_id]["correct"], response_id


def test_first_correct_positions_match_what_the_simulator_placed(
    graded: tuple[Path, dict, dict],
) -> None:
    db, truth, out = graded
    thinking = rows(
        db,
        "SELECT r.response_id, t.reasoning_tokens, t.first_correct_tokens, t.efficiency, "
        "t.thought_count, t.first_correct_step, t.token_source FROM thinking t "
        "JOIN requests r USING (run_id, idx)",
    )
    assert len(thinking) == N
    for rid, tokens, first_tokens, efficiency, thoughts, step, source in thinking:
        placed = truth[rid]
        assert source == "usage"
        assert tokens == placed["reasoning"]  # T: the server's reasoning-token usage
        assert thoughts == THOUGHTS
        if placed["correct"]:
            # T̂ from usage is split by characters: within 3% of R of the token placed
            assert step is not None
            assert abs(first_tokens - placed["first_answer"]) <= 0.03 * tokens, (rid, placed)
        else:
            assert step is None and first_tokens == 0 and efficiency == 0
    summary = [t for t in out["grades"]["runs"][0]["thinking"] if t["subset"] == "OVERALL"]
    mean_efficiency_correct = summary[0]["efficiency"] / summary[0]["accuracy"]
    assert abs(mean_efficiency_correct - FIRST) < 0.03, summary
    assert summary[0]["thought_count"] == THOUGHTS


def test_thinking_in_the_content_is_measured_from_the_usage_split(tmp_path: Path) -> None:
    """The default simulator answer thinks inside <think> in the content: T is the server's
    completion tokens split by characters, T̂/T the placed fraction."""
    db, log = tmp_path / "t.db", tmp_path / "sim.jsonl"
    done = perfbench(
        "perf", "--dataset", "synthetic_math", "--number", "60", "--parallel", "16",
        "--max-tokens", "1000", "--grade", "--think", "--quiet", "--db", str(db), "--sim-args",
        f"--preset instant --first-correct {FIRST} --timing-log {log} "
        "--output-len-dist fixed --output-len-mean 400",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    truth = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        truth[record["id"]] = record["answers"][0]
    measured = rows(
        db,
        "SELECT r.response_id, t.source, t.token_source, t.reasoning_tokens, "
        "t.first_correct_tokens FROM thinking t JOIN requests r USING (run_id, idx)",
    )
    assert len(measured) == 60
    for rid, source, token_source, tokens, first_tokens in measured:
        placed = truth[rid]
        assert (source, token_source) == ("think_tag", "usage")
        assert abs(tokens - placed["reasoning"]) <= 0.1 * placed["reasoning"], (tokens, placed)
        if placed["correct"]:
            assert abs(first_tokens / tokens - FIRST) < 0.05, (first_tokens, tokens)
