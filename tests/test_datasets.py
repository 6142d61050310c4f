"""Dataset loaders: the real eval files in ../shared/datasets, small files in each public layout,
one-line errors that name the file and line, prompt templates, GPQA's seeded shuffle, and the
hub download against a fake Hub on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

import perfbench.workload.evals
import perfbench.workload.jsonl
import perfbench.workload.sharegpt  # noqa: F401  (registration)
from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload import hub
from perfbench.workload.base import REGISTRY, Prompt, load_prompts

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_shared = pytest.mark.skipif(
    not SHARED_DATASETS.is_dir(), reason="../shared/datasets is not beside the repository"
)
EVALS = ("math_500", "aime24", "aime25", "gsm8k", "gpqa_diamond")
MATH_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


@pytest.fixture(autouse=True)
def no_hub_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests always give a file; hub tests run in a subprocess against a local fake."""

    def refuse(source: hub.HubFiles) -> list[Path]:
        raise AssertionError(f"an in-process test tried to download {source.repo_id}")

    monkeypatch.setattr(perfbench.workload.jsonl, "fetch", refuse)
    monkeypatch.delenv(hub.HUB_ENV, raising=False)


def load(dataset: str, path: Path | None = None, **spec: Any) -> list[Prompt]:
    return load_prompts(
        WorkloadSpec(dataset=dataset, dataset_path=str(path) if path else None, **spec)
    )


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def content(prompt: Prompt) -> str:
    assert prompt.text is None and prompt.messages is not None
    assert len(prompt.messages) == 1 and prompt.messages[0]["role"] == "user"
    return str(prompt.messages[0]["content"])


def error(dataset: str, path: Path, **spec: Any) -> str:
    with pytest.raises(DatasetError) as info:
        load(dataset, path, **spec)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the registry -------------------------------------------------------------------------------


def test_every_loader_is_registered_with_its_path_needs() -> None:
    needs = {name: REGISTRY[name].needs_path for name in EVALS + ("jsonl", "sharegpt")}
    assert needs == {
        "math_500": False,
        "aime24": False,
        "aime25": False,
        "gsm8k": False,
        "gpqa_diamond": False,
        "jsonl": True,
        "sharegpt": True,
    }
    assert all(REGISTRY[name].description for name in needs)
    with pytest.raises(DatasetError, match="--dataset jsonl needs --dataset-path FILE"):
        load("jsonl")


# --- the real files -----------------------------------------------------------------------------


@needs_shared
def test_math500_real_file_has_its_documented_levels_and_subjects() -> None:
    prompts = load("math_500", SHARED_DATASETS / "math500_test.jsonl")
    assert len(prompts) == 500
    assert len({p.id for p in prompts}) == 500
    assert Counter(p.subset for p in prompts) == {
        "level 1": 43,
        "level 2": 90,
        "level 3": 105,
        "level 4": 128,
        "level 5": 134,
    }
    assert Counter(p.metadata["subject"] for p in prompts) == {
        "Algebra": 124,
        "Intermediate Algebra": 97,
        "Prealgebra": 82,
        "Number Theory": 62,
        "Precalculus": 56,
        "Geometry": 41,
        "Counting & Probability": 38,
    }
    first = prompts[0]
    assert first.id == "test/precalculus/807.json"
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert (first.grader, first.dataset, first.subset) == ("math", "math_500", "level 2")
    assert content(first) == first.metadata["problem"] + MATH_SUFFIX
    assert content(first).startswith("Convert the point $(0,3)$ in rectangular coordinates")


@needs_shared
def test_aime_real_files_have_30_problems_with_integer_answers() -> None:
    aime24 = load("aime24", SHARED_DATASETS / "aime2024.jsonl")
    aime25 = load("aime25", SHARED_DATASETS / "aime2025.jsonl")
    assert (len(aime24), len(aime25)) == (30, 30)
    assert [p.id for p in aime24] == [str(n) for n in range(60, 90)]
    assert [p.id for p in aime25] == [str(n) for n in range(30)]
    for prompt in aime24 + aime25:
        assert prompt.answer is not None and prompt.answer.isdigit()
        assert 0 <= int(prompt.answer) <= 999 and prompt.grader == "math"
        assert content(prompt).endswith(MATH_SUFFIX)
    assert {p.subset for p in aime24} == {"aime24"} and {p.subset for p in aime25} == {"aime25"}
    # aime2024.jsonl keeps leading zeros ("025"); the gold is the integer, the original is kept
    padded = {
        p.id: (p.answer, p.metadata["answer_as_given"])
        for p in aime24
        if p.metadata.get("answer_as_given")
    }
    assert padded["67"] == ("25", "025") and padded["75"] == ("73", "073")
    assert aime25[0].answer == "70"  # an int in the file, a string in the Prompt
    assert content(aime25[0]).startswith("Find the sum of all integer bases $b>9$")


@needs_shared
def test_gsm8k_real_file_takes_the_number_after_the_hashes() -> None:
    prompts = load("gsm8k", SHARED_DATASETS / "gsm8k_test.jsonl")
    assert len(prompts) == 1319
    assert prompts[0].answer == "18" and prompts[0].grader == "numeric"
    assert prompts[0].id == "gsm8k-1"
    assert content(prompts[0]).startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert content(prompts[0]).endswith(MATH_SUFFIX)
    answers = [p.answer or "" for p in prompts]
    assert all(a.lstrip("-").isdigit() for a in answers)
    assert "1450000" in answers  # "#### 1,450,000" in the file


# --- eval datasets from small files in the public layouts ---------------------------------------


MATH_ROWS = [
    {
        "problem": "What is $1+1$?",
        "solution": "It is $\\boxed{2}$.",
        "answer": "2",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "test/prealgebra/1.json",
    },
    {
        "problem": "Solve $x^2=4$ for $x>0$.",
        "solution": "...",
        "answer": "2",
        "subject": "Algebra",
        "level": 3,
        "unique_id": "test/algebra/7.json",
    },
]


def test_math500_row_maps_to_a_math_prompt(tmp_path: Path) -> None:
    prompts = load("math_500", write_jsonl(tmp_path / "m.jsonl", MATH_ROWS))
    second = prompts[1]
    assert second == Prompt(
        id="test/algebra/7.json",
        messages=({"role": "user", "content": "Solve $x^2=4$ for $x>0$." + MATH_SUFFIX},),
        answer="2",
        subset="level 3",
        grader="math",
        dataset="math_500",
        metadata={"subject": "Algebra", "level": 3, "problem": "Solve $x^2=4$ for $x>0$."},
    )


def test_a_json_array_reads_like_json_lines(tmp_path: Path) -> None:
    array = tmp_path / "m.json"
    array.write_text("\ufeff" + json.dumps(MATH_ROWS, indent=2), encoding="utf-8")
    assert load("math_500", array) == load("math_500", write_jsonl(tmp_path / "m.jsonl", MATH_ROWS))


def test_aime_accepts_question_and_int_answers_and_numbers_rows_without_ids(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "aime2025-I.jsonl",
        [{"question": "Find $N$.", "answer": 70}, {"question": "Find $M$.", "answer": "007"}],
    )
    prompts = load("aime25", path)
    assert [(p.id, p.answer, p.subset) for p in prompts] == [
        ("aime25-1", "70", "aime25"),
        ("aime25-2", "7", "aime25"),
    ]
    assert content(prompts[0]) == "Find $N$." + MATH_SUFFIX
    assert prompts[1].metadata == {"problem": "Find $M$.", "answer_as_given": "007"}


def test_gsm8k_strips_thousands_separators(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [{"question": "How many?", "answer": "10 * 160 = <<10*160=1600>>1600\n#### 1,600"}],
    )
    [prompt] = load("gsm8k", path)
    assert prompt.answer == "1600"
    assert content(prompt) == "How many?" + MATH_SUFFIX
    assert prompt.metadata == {"question": "How many?"}


GPQA_HEADER = [
    "Pre-Revision Question",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Record ID",
    "High-level domain",
    "Subdomain",
]


def gpqa_rows(n: int) -> list[dict[str, str]]:
    return [
        {
            "Pre-Revision Question": "old",
            "Question": f"Question {i}: which one,\nof these, is right?",
            "Correct Answer": f"right {i}",
            "Incorrect Answer 1": f"wrong {i}a",
            "Incorrect Answer 2": f"wrong {i}b",
            "Incorrect Answer 3": f" wrong {i}c\n",
            "Record ID": f"rec{i}",
            "High-level domain": "Physics" if i % 2 else "Chemistry",
            "Subdomain": "Optics",
        }
        for i in range(n)
    ]


def write_gpqa(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=GPQA_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_gpqa_from_csv_letters_the_shuffled_options_and_the_gold(tmp_path: Path) -> None:
    prompts = load("gpqa_diamond", write_gpqa(tmp_path / "gpqa_diamond.csv", gpqa_rows(8)))
    assert [p.id for p in prompts] == [f"rec{i}" for i in range(8)]
    for i, prompt in enumerate(prompts):
        assert prompt.choices is not None and prompt.answer is not None
        assert sorted(prompt.choices) == sorted(
            [f"right {i}", f"wrong {i}a", f"wrong {i}b", f"wrong {i}c"]
        )
        assert prompt.choices["ABCD".index(prompt.answer)] == f"right {i}"
        assert (prompt.grader, prompt.dataset) == ("choice", "gpqa_diamond")
        assert prompt.subset == ("Physics" if i % 2 else "Chemistry")
        lines = "\n".join(f"{letter}) {text}" for letter, text in zip("ABCD", prompt.choices))
        assert content(prompt) == (
            f"Question {i}: which one,\nof these, is right?\n\n{lines}\n\nPlease reason step by "
            "step, and put the letter of the correct option (A, B, C or D) within \\boxed{}."
        )
    assert len({p.answer for p in prompts}) > 1  # the options really are shuffled


def test_gpqa_shuffle_is_fixed_by_the_seed_not_by_the_row_order(tmp_path: Path) -> None:
    rows = gpqa_rows(8)
    path = write_gpqa(tmp_path / "a.csv", rows)
    reversed_path = write_gpqa(tmp_path / "b.csv", rows[::-1])

    def letters(p: Path, seed: int) -> dict[str, tuple[tuple[str, ...] | None, str | None]]:
        return {x.id: (x.choices, x.answer) for x in load("gpqa_diamond", p, seed=seed)}

    assert letters(path, 0) == letters(path, 0) == letters(reversed_path, 0)
    assert letters(path, 7) == letters(reversed_path, 7)
    assert letters(path, 0) != letters(path, 7)


def test_gpqa_jsonl_in_the_same_layout(tmp_path: Path) -> None:
    rows = gpqa_rows(2)
    from_csv = load("gpqa_diamond", write_gpqa(tmp_path / "g.csv", rows), seed=3)
    from_jsonl = load("gpqa_diamond", write_jsonl(tmp_path / "g.jsonl", rows), seed=3)
    assert from_csv == from_jsonl


# --- errors: one line, naming the file, the line and the fix ------------------------------------


def test_a_bad_eval_row_names_its_line_and_the_missing_field(tmp_path: Path) -> None:
    rows = [dict(MATH_ROWS[0]), {k: v for k, v in MATH_ROWS[1].items() if k != "answer"}]
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8")
    message = error("math_500", path)
    assert message.startswith(f"{path}:3: missing field 'answer'")
    assert "MATH-500 layout" in message


def test_a_bad_gpqa_csv_row_names_its_line(tmp_path: Path) -> None:
    rows = gpqa_rows(3)
    rows[2]["Incorrect Answer 3"] = ""
    # rows 1 and 2 span three lines each (newlines inside quoted cells): row 3 starts on line 8
    message = error("gpqa_diamond", write_gpqa(tmp_path / "g.csv", rows))
    assert message.startswith(f"{tmp_path / 'g.csv'}:8: 'Incorrect Answer 3' must be non-empty")


@pytest.mark.parametrize(
    ("dataset", "row", "expected"),
    [
        ("gsm8k", {"question": "Q?", "answer": "no final line"}, "does not end in '#### <number>'"),
        ("gsm8k", {"answer": "#### 3"}, "missing field 'question'"),
        ("aime24", {"answer": 3}, "missing field 'problem or question or Problem'"),
        ("aime24", {"problem": "P", "answer": None}, "missing field 'answer'"),
        ("math_500", {**MATH_ROWS[0], "level": 9}, "'level' 9 is not a MATH level 1 to 5"),
        ("math_500", {**MATH_ROWS[0], "problem": ""}, "'problem' must be non-empty text"),
    ],
)
def test_eval_row_errors(tmp_path: Path, dataset: str, row: dict[str, Any], expected: str) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [row])
    message = error(dataset, path)
    assert message.startswith(f"{path}:1: ") and expected in message


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(MATH_ROWS[0]) + '\n{"problem": "P",\n', encoding="utf-8")
    message = error("math_500", path)
    assert message.startswith(f"{path}:2: not valid JSON (")
    assert message.endswith("each line must be one JSON object")


def test_parquet_without_pyarrow_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes "import pyarrow" fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "test-00000-of-00001.parquet"
    path.write_bytes(b"PAR1")
    message = error("gsm8k", path)
    assert message == (
        f"{path} is Parquet, and reading Parquet needs pyarrow: pip install 'perfbench[parquet]' "
        "(or give the dataset as JSON Lines)"
    )


def test_parquet_with_pyarrow(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "Q?", "answer": "x\n#### 2,000"}]), path)
    [prompt] = load("gsm8k", path)
    assert (prompt.answer, content(prompt)) == ("2000", "Q?" + MATH_SUFFIX)


# --- prompt templates ---------------------------------------------------------------------------


def test_prompt_template_replaces_the_default(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)
    prompts = load("math_500", path, prompt_template="[{subject}] {problem} Answer in \\boxed{{}}.")
    assert content(prompts[0]) == "[Prealgebra] What is $1+1$? Answer in \\boxed{}."
    gpqa = load(
        "gpqa_diamond",
        write_gpqa(tmp_path / "g.csv", gpqa_rows(1)),
        prompt_template="{question}\n{choices}\nLetter only.",
    )
    assert gpqa[0].choices is not None
    assert content(gpqa[0]).splitlines()[2:] == [
        *(f"{letter}) {text}" for letter, text in zip("ABCD", gpqa[0].choices)),
        "Letter only.",
    ]


def test_prompt_template_with_an_unknown_field_names_it(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)
    message = error("math_500", path, prompt_template="{problem} {hint}")
    assert message.startswith(f"--prompt-template uses {{hint}}, which {path}:1 does not have;")
    assert "{problem}" in message and "{question}" in message


def test_prompt_template_keeps_bare_braces_literal(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)
    spec = WorkloadSpec(
        dataset="math_500", dataset_path=str(path), prompt_template="{problem} put it in \\boxed{}"
    )
    (first, *_) = load_prompts(spec)
    assert first.messages is not None
    assert first.messages[0]["content"].endswith(" put it in \\boxed{}")
    message = error("math_500", path, prompt_template="{problem} {")
    assert message.startswith("--prompt-template is not a valid format string (")


# --- jsonl --------------------------------------------------------------------------------------


def test_jsonl_rows_with_prompt_and_with_messages(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"prompt": "Name three primes.", "max_tokens": 64, "category": "math"})
        + "\n\n"
        + json.dumps(
            {
                "id": 7,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "2+2?"},
                ],
                "answer": 4,
                "grader": "numeric",
                "subset": "arith",
            }
        )
        + "\n"
        + json.dumps({"prompt": "Pick one.", "choices": ["red", "blue"], "answer": "B"})
        + "\n",
        encoding="utf-8",
    )
    first, second, third = load("jsonl", path)
    assert first == Prompt(
        id="jsonl-1",
        text="Name three primes.",
        max_tokens=64,
        metadata={"category": "math"},
        dataset="jsonl",
    )
    assert second == Prompt(
        id="7",
        messages=(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
        ),
        answer="4",
        grader="numeric",
        subset="arith",
        dataset="jsonl",
    )
    assert (third.id, third.choices, third.answer) == ("jsonl-4", ("red", "blue"), "B")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"prompt": "a", "messages": []}', 'has both "prompt" and "messages"'),
        ('{"id": "x"}', 'has neither "prompt" nor "messages"'),
        ('{"prompt": ""}', '"prompt" must be a non-empty string'),
        ('{"messages": [{"content": "hi"}]}', 'messages[0] needs a "role" string'),
        ('{"messages": "hi"}', '"messages" must be a non-empty list'),
        ('{"prompt": "a", "max_tokens": 0}', '"max_tokens" must be an integer of at least 1'),
        ('{"prompt": "a", "choices": "AB"}', '"choices" must be a non-empty list of strings'),
        ('{"prompt": "a", "id": "jsonl-1"}', "id 'jsonl-1' repeats line 1"),
        ('["prompt"]', "a list, not a JSON object"),
        ("{'prompt': 'a'}", "not valid JSON"),
    ],
)
def test_jsonl_bad_rows(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "fine"}\n' + line + "\n", encoding="utf-8")
    message = error("jsonl", path)
    assert message.startswith(f"{path}:2: ") and expected in message


# --- sharegpt -----------------------------------------------------------------------------------


SHAREGPT = [
    {
        "id": "conv_a",
        "conversations": [
            {"from": "human", "value": "Write a haiku about rain."},
            {"from": "gpt", "value": "x" * 41},
            {"from": "human", "value": "Another?"},
            {"from": "gpt", "value": "y" * 400},
        ],
    },
    {"id": "lonely", "conversations": [{"from": "human", "value": "Hello?"}]},
    {
        "id": "gpt_first",
        "conversations": [
            {"from": "gpt", "value": "Hi, how can I help?"},
            {"from": "human", "value": "Say ok."},
            {"from": "gpt", "value": "ok"},
        ],
    },
    {
        "id": "two_humans",
        "conversations": [
            {"from": "human", "value": "One"},
            {"from": "human", "value": "Two"},
            {"from": "gpt", "value": "Reply"},
        ],
    },
    {"id": "empty", "conversations": []},
    {"conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "z" * 8}]},
]


def test_sharegpt_takes_the_first_human_turn_and_sizes_by_its_reply(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(SHAREGPT), encoding="utf-8")
    prompts = load("sharegpt", path)
    assert [(p.id, content(p), p.max_tokens) for p in prompts] == [
        ("conv_a", "Write a haiku about rain.", 11),  # ceil(41 / 4)
        ("gpt_first", "Say ok.", 1),  # at least one token
        ("sharegpt-6", "Hi", 2),
    ]
    assert {p.dataset for p in prompts} == {"sharegpt"}
    jsonl = write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT)
    assert load("sharegpt", jsonl) == prompts


def test_sharegpt_bad_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [SHAREGPT[0], {"conversation": []}])
    message = error("sharegpt", path)
    assert message.startswith(f'{path}:2: no "conversations" list; expected {{"conversations": [')
    path = write_jsonl(tmp_path / "t.jsonl", [{"conversations": [{"from": "human", "text": "hi"}]}])
    assert error("sharegpt", path).startswith(
        f'{path}:1: conversations[0] needs "from" and "value"'
    )
    path = write_jsonl(tmp_path / "u.jsonl", [SHAREGPT[1], SHAREGPT[3]])
    assert error("sharegpt", path) == (
        f"{path}: no conversation has a human turn followed by a reply; expected ShareGPT rows "
        'like {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}'
    )


# --- the hubs -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeHub:
    """Just enough of the Hugging Face Hub's HTTP API for ``snapshot_download`` of a dataset."""

    commit = "c0ffee" + "0" * 34

    def __init__(self, repos: dict[str, dict[str, bytes]], gated: frozenset[str] = frozenset()):
        self.repos, self.gated = repos, gated
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _route(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        for repo, files in self.repos.items():
            for prefix, kind in (
                (f"/api/datasets/{repo}/", "api"),
                (f"/datasets/{repo}/resolve/", "file"),
            ):
                if not path.startswith(prefix):
                    continue
                if repo in self.gated:
                    return 403, b'{"error": "gated"}', {"X-Error-Code": "GatedRepo"}
                rest = path[len(prefix) :]
                if kind == "file":
                    name = rest.split("/", 1)[1]
                    if name in files:
                        etag = hashlib.sha1(files[name]).hexdigest()
                        return 200, files[name], {"X-Repo-Commit": self.commit, "ETag": f'"{etag}"'}
                elif rest.startswith("revision/"):
                    info = {
                        "id": repo,
                        "sha": self.commit,
                        "siblings": [{"rfilename": f} for f in files],
                    }
                    return 200, json.dumps(info).encode(), {"Content-Type": "application/json"}
                elif rest.startswith("tree/"):
                    tree = [
                        {
                            "type": "file",
                            "path": f,
                            "size": len(b),
                            "oid": hashlib.sha1(b).hexdigest(),
                        }
                        for f, b in files.items()
                    ]
                    return 200, json.dumps(tree).encode(), {"Content-Type": "application/json"}
        return 404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                hub_.requests.append(f"{self.command} {self.path}")

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                status, body, headers = hub_._route(unquote(urlsplit(self.path).path))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler


LOAD_SCRIPT = """
import json, sys
from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import REGISTRY
import perfbench.workload.evals
for name in sys.argv[1:]:
    try:
        prompts = REGISTRY[name].load(WorkloadSpec(dataset=name))
        print(json.dumps([[p.id, p.answer, p.messages[0]["content"]] for p in prompts]))
    except DatasetError as exc:
        print("DatasetError: " + str(exc))
"""


def load_in_subprocess(endpoint: str, home: Path, *datasets: str, offline: str = "0") -> list[str]:
    """Load datasets with no --dataset-path in a fresh interpreter whose Hub is ``endpoint``.

    huggingface_hub reads HF_ENDPOINT when imported, so only a new process is certain to send
    every request (its telemetry too) to the local address.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "PERFBENCH_HUB"))
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_OFFLINE=offline,
        HF_HOME=str(home),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, *datasets],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_offline_hub_gives_one_line_naming_the_fix(tmp_path: Path) -> None:
    lines = load_in_subprocess(f"http://127.0.0.1:{free_port()}", tmp_path, *EVALS)
    assert lines == [
        f"DatasetError: cannot download {repo} from the Hugging Face Hub (offline?): "
        "give --dataset-path FILE"
        for repo in (
            "HuggingFaceH4/MATH-500",
            "HuggingFaceH4/aime_2024",
            "opencompass/AIME2025",
            "openai/gsm8k",
            "Idavidrein/gpqa",
        )
    ]


def test_hub_download_reads_the_dataset_files_and_caches_them(tmp_path: Path) -> None:
    math = "".join(json.dumps(r) + "\n" for r in MATH_ROWS).encode()
    part = [
        json.dumps({"question": f"Part {n}?", "answer": n}).encode() + b"\n" for n in ("I", "II")
    ]
    repos = {
        "HuggingFaceH4/MATH-500": {"test.jsonl": math, "README.md": b"# card"},
        "opencompass/AIME2025": {"aime2025-II.jsonl": part[1], "aime2025-I.jsonl": part[0]},
    }
    with FakeHub(repos) as fake:
        lines = load_in_subprocess(fake.url, tmp_path, "math_500", "aime25")
    math_500, aime25 = (json.loads(line) for line in lines)
    assert math_500 == [
        ["test/prealgebra/1.json", "2", "What is $1+1$?" + MATH_SUFFIX],
        ["test/algebra/7.json", "2", "Solve $x^2=4$ for $x>0$." + MATH_SUFFIX],
    ]
    assert aime25 == [
        ["aime25-1", "I", "Part I?" + MATH_SUFFIX],
        ["aime25-2", "II", "Part II?" + MATH_SUFFIX],
    ]
    downloaded = {
        r.split("/resolve/")[1].split("/", 1)[1] for r in fake.requests if "/resolve/" in r
    }
    assert downloaded == {"test.jsonl", "aime2025-I.jsonl", "aime2025-II.jsonl"}  # not README.md
    # a second run, with the hub gone and offline mode on, reads the cache
    again = load_in_subprocess(f"http://127.0.0.1:{free_port()}", tmp_path, "math_500", offline="1")
    assert json.loads(again[0]) == math_500


def test_hub_download_of_parquet_files(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([{"question": "Q?", "answer": "x\n#### 5"}]), sink)
    files = {"main/test-00000-of-00001.parquet": sink.getvalue().to_pybytes()}
    with FakeHub({"openai/gsm8k": files}) as fake:
        [line] = load_in_subprocess(fake.url, tmp_path, "gsm8k")
    assert json.loads(line) == [["gsm8k-1", "5", "Q?" + MATH_SUFFIX]]


def test_gated_hub_dataset_says_to_log_in(tmp_path: Path) -> None:
    with FakeHub(
        {"Idavidrein/gpqa": {"gpqa_diamond.csv": b""}}, gated=frozenset({"Idavidrein/gpqa"})
    ) as fake:
        [line] = load_in_subprocess(fake.url, tmp_path, "gpqa_diamond")
    assert line == (
        "DatasetError: cannot download Idavidrein/gpqa from the Hugging Face Hub: the dataset is "
        "gated; accept its terms at https://huggingface.co/datasets/Idavidrein/gpqa and log in "
        "(hf auth login, or set HF_TOKEN), or give --dataset-path FILE"
    )


def test_hub_without_the_files_says_which_were_expected(tmp_path: Path) -> None:
    with FakeHub({"openai/gsm8k": {"main/train-00000-of-00001.parquet": b"PAR1"}}) as fake:
        [line] = load_in_subprocess(fake.url, tmp_path, "gsm8k")
    assert line == (
        "DatasetError: openai/gsm8k on the Hugging Face Hub has no file matching "
        "main/test-*.parquet; give --dataset-path FILE"
    )


def test_modelscope_without_its_package_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub.HUB_ENV, "modelscope")
    monkeypatch.setitem(sys.modules, "modelscope", None)
    monkeypatch.setitem(sys.modules, "modelscope.hub", None)
    monkeypatch.setitem(sys.modules, "modelscope.hub.snapshot_download", None)
    with pytest.raises(
        DatasetError,
        match=r"^PERFBENCH_HUB=modelscope needs the modelscope package: pip install 'perfbench\[modelscope\]'",
    ):
        hub.fetch(perfbench.workload.evals.MATH_500)


def test_an_unknown_hub_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub.HUB_ENV, "gitee")
    with pytest.raises(DatasetError, match="^PERFBENCH_HUB='gitee' is not a hub perfbench knows"):
        hub.fetch(perfbench.workload.evals.MATH_500)


def test_hub_files_match_the_first_pattern_that_hits(tmp_path: Path) -> None:
    for name in ("a/train.csv", "gpqa_diamond.csv", "gpqa_main.csv", "x/other_diamond.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    source = perfbench.workload.evals.GPQA_DIAMOND
    assert hub._matching(tmp_path, source.modelscope_patterns or ()) == [
        tmp_path / "gpqa_diamond.csv"
    ]
    assert hub._matching(tmp_path, ("*diamond*.csv",)) == [
        tmp_path / "gpqa_diamond.csv",
        tmp_path / "x/other_diamond.csv",
    ]
    assert hub._matching(tmp_path, ("*.jsonl",)) == []
