"""Bad input found by review: each is one line on stderr, exit 2, no traceback, nothing sent."""

from __future__ import annotations

import time

from tests.conftest import perfbench


def _one_line(done, says: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_sim_args_with_an_unclosed_quote(tmp_path):
    done = perfbench(
        "perf", "--sim-args", "--ttft-ms '5", "--number", "2", "--outputs-dir", str(tmp_path)
    )
    _one_line(done, "--sim-args")
    assert not (tmp_path / "perfbench.db").exists()


def test_sim_args_the_simulator_refuses_are_a_usage_error(tmp_path):
    done = perfbench(
        "perf", "--sim-args", "--bogus 1", "--number", "2", "--outputs-dir", str(tmp_path)
    )
    _one_line(done, "unrecognized arguments: --bogus")


def test_outputs_dir_naming_a_file(tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    done = perfbench("perf", "--outputs-dir", str(taken), "--number", "2")
    _one_line(done, "cannot create the database")
    assert taken.read_text() == "not a folder"


def test_db_naming_a_folder(tmp_path):
    done = perfbench("perf", "--db", str(tmp_path), "--number", "2")
    _one_line(done, "is a folder")


def test_grade_think_with_a_tokenizer_that_cannot_load(tmp_path):
    db = tmp_path / "g.db"
    made = perfbench(
        "perf", "--dataset", "synthetic_math", "--number", "4", "--db", str(db), "--quiet"
    )
    assert made.returncode == 0, made.stderr
    done = perfbench(
        "grade", "--think", "--tokenizer", str(tmp_path / "no-such-tokenizer"), "--db", str(db)
    )
    _one_line(done, "--tokenizer")


def test_a_hub_tokenizer_that_cannot_be_fetched_fails_in_seconds(tmp_path):
    start = time.monotonic()
    done = perfbench(
        "perf", "--tokenizer", "perfbench-tests/no-such-tokenizer", "--number", "2",
        "--outputs-dir", str(tmp_path), env={"HF_HUB_OFFLINE": "0"},
    )  # fmt: skip
    _one_line(done, "--tokenizer perfbench-tests/no-such-tokenizer")
    assert time.monotonic() - start < 20  # it was 47 s of retries, 22 lines of them
