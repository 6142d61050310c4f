"""``perfbench sim --answers``: reasoned, boxed answers to prompts with a gold answer, over real
HTTP on 127.0.0.1, graded by the real graders."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from perfbench.config import THOUGHT_MARKERS
from perfbench.grade.extract import boxed_all
from perfbench.grade.graders import grade
from perfbench.sim import SimConfig
from perfbench.sim.answers import (
    first_answer_at,
    load_book,
    reasoning_min,
    write_answer_book,
)
from tests.conftest import perfbench
from tests.test_sim import INSTANT, MODEL, run_sim, split_events

GOLDS = ["\\frac{9}{7}", "18", "2\\sqrt{3}", "x=3", "-\\infty", "[0,1)", "3.50", "\\text{Monday}"]


@dataclasses.dataclass
class Choice:
    reasoning: list[str]  # reasoning tokens: the reasoning field, or what <think>…</think> holds
    content: list[str]  # content tokens after the reasoning (the final part)
    finish_reason: str | None
    header: dict[str, str]

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


def book(tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def config(path: str, **changes: Any) -> SimConfig:
    return dataclasses.replace(INSTANT, answers=path, seed=7, **changes)


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Reason step by step."},
            {"role": "user", "content": prompt},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(extra)
    return body


def _headers(value: str | None, n: int) -> list[dict[str, str]]:
    if value is None:
        return [{} for _ in range(n)]
    return [dict(kv.split("=") for kv in part.split(";")) for part in value.split(",")]


async def chat(
    s: aiohttp.ClientSession, body: dict[str, Any]
) -> tuple[list[Choice], dict[str, Any] | None]:
    """One chat request, streamed or not, read into per-choice reasoning and content tokens."""
    n = body.get("n", 1)
    async with s.post("/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        headers = _headers(resp.headers.get("x-perfbench-sim-answer"), n)
        raw = await resp.read()
    choices = [Choice([], [], None, headers[i]) for i in range(n)]
    usage = None
    if not body.get("stream"):
        obj = json.loads(raw)
        for c in obj["choices"]:
            msg = c["message"]
            choice = choices[c["index"]]
            choice.reasoning = [msg.get("reasoning_content") or ""]
            choice.content = [msg["content"]]
            choice.finish_reason = c["finish_reason"]
        return _split_think(choices), obj["usage"]
    for event in split_events(raw):
        if event == "[DONE]":
            continue
        chunk = json.loads(event)
        if chunk.get("usage"):
            usage = chunk["usage"]
        for c in chunk["choices"]:
            choice, delta = choices[c["index"]], c["delta"]
            if delta.get("reasoning_content"):
                choice.reasoning.append(delta["reasoning_content"])
            elif delta.get("content"):
                choice.content.append(delta["content"])
            if c["finish_reason"]:
                choice.finish_reason = c["finish_reason"]
    return _split_think(choices), usage


def _split_think(choices: list[Choice]) -> list[Choice]:
    """In <think> mode the reasoning tokens are the content tokens between the two tags."""
    for c in choices:
        if c.content and c.content[0] == "<think>":
            end = c.content.index("</think>") if "</think>" in c.content else len(c.content)
            c.reasoning, c.content = c.content[1:end], c.content[end + 1 :]
    return choices


def first_answer_end(tokens: list[str]) -> int | None:
    """T-hat as a client counts it: the reasoning token (from 1) that closes the first \\boxed."""
    text = ""
    for i, token in enumerate(tokens, 1):
        text += token
        if boxed_all(text):
            return i
    return None


def markers(text: str) -> int:
    low = text.lower()
    return sum(low.count(m) for m in THOUGHT_MARKERS)


def gather(config: SimConfig, bodies: list[dict[str, Any]]) -> list[list[Choice]]:
    async def go(s: aiohttp.ClientSession) -> list[list[Choice]]:
        sem = asyncio.Semaphore(32)

        async def one(body: dict[str, Any]) -> list[Choice]:
            async with sem:
                return (await chat(s, body))[0]

        return list(await asyncio.gather(*(one(b) for b in bodies)))

    return run_sim(config, go)


# -- the answer -----------------------------------------------------------------------------------


def test_streamed_chat_answers_boxed_gold(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "What is 9/7?", "answer": "\\frac{9}{7}", "grader": "math"}])
    body = ask("What is 9/7?", max_tokens=400, ignore_eos=True)
    (choice,), usage = run_sim(config(path, answer_accuracy=1.0), lambda s: chat(s, body))
    assert choice.text == "\n\nThe final answer is $\\boxed{\\frac{9}{7}}$."
    assert choice.finish_reason == "length"  # ignore_eos: the length rule is unchanged
    assert usage is not None and usage["completion_tokens"] == 400
    assert 1 + len(choice.reasoning) + 1 + len(choice.content) == 400  # one token per chunk
    assert grade("math", choice.text, "\\frac{9}{7}").correct
    assert choice.header["correct"] == "1"
    assert int(choice.header["reasoning"]) == len(choice.reasoning) == 400 - 3 - 8
    # Steps are separated by blank lines, and the first candidate answer is the gold one.
    assert "\n\n" in choice.reasoning_text
    first = boxed_all(choice.reasoning_text)[0][2]
    assert first == "\\frac{9}{7}"


def test_accuracy_is_the_share_of_correct_answers(tmp_path: Path) -> None:
    golds = {f"Problem {i}: compute it.": GOLDS[i % len(GOLDS)] for i in range(40)}
    path = book(tmp_path, [{"prompt": p, "answer": g} for p, g in golds.items()])
    prompts = [p for p in golds for _ in range(10)]  # 400 requests
    bodies = [ask(p, max_tokens=100, ignore_eos=True) for p in prompts]
    results = gather(config(path), bodies)
    correct = 0
    for prompt, (choice,) in zip(prompts, results, strict=True):
        verdict = grade("math", choice.text, golds[prompt])
        assert verdict.correct == (choice.header["correct"] == "1"), choice.text
        correct += verdict.correct
    n, p = len(prompts), 0.7
    assert abs(correct / n - p) <= 3 * math.sqrt(p * (1 - p) / n), correct


@pytest.mark.parametrize("first", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("ratio", [0.0, 0.6])
def test_first_answer_ends_where_first_correct_says(
    tmp_path: Path, first: float, ratio: float
) -> None:
    """T-hat = min(max(floor(F * R + 1/2), 8), R - tail_min(K)), exactly, in either mode."""
    path = book(tmp_path, [{"prompt": "Q", "answer": "42"}])
    cfg = config(path, first_correct=first, reasoning_ratio=ratio, answer_accuracy=1.0)
    bodies = [ask("Q", max_tokens=length, ignore_eos=True) for length in (300, 600, 1000)]
    for (choice,) in gather(cfg, bodies):
        r = len(choice.reasoning)
        t_hat = first_answer_end(choice.reasoning)
        assert t_hat is not None
        assert t_hat == first_answer_at(r, first, 2) == int(choice.header["first_answer"])
        assert abs(t_hat / r - first) <= 0.5 / r + 1e-9
        # It ends the first step that has any candidate answer.
        steps = choice.reasoning_text.split("\n\n")
        hit = next(i for i, step in enumerate(steps) if "\\boxed" in step)
        assert "\n\n".join(steps[: hit + 1]) == "".join(choice.reasoning[:t_hat])


def test_first_answer_is_clamped_to_leave_room_for_the_reflections(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "42"}])
    cfg = config(path, first_correct=1.0, answer_accuracy=1.0, answer_thoughts=3)
    (choice,), _ = run_sim(cfg, lambda s: chat(s, ask("Q", max_tokens=300, ignore_eos=True)))
    r = len(choice.reasoning)
    t_hat = first_answer_end(choice.reasoning)
    assert t_hat == first_answer_at(r, 1.0, 3) < r
    assert markers("".join(choice.reasoning[t_hat:])) == 3


@pytest.mark.parametrize("thoughts", [0, 1, 2, 5])
def test_thought_markers_count_is_answer_thoughts(tmp_path: Path, thoughts: int) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "\\sqrt{2}"}])
    cfg = config(path, answer_thoughts=thoughts, first_correct=0.3)
    bodies = [ask("Q", max_tokens=80 + 60 * i, ignore_eos=True) for i in range(12)]
    for (choice,) in gather(cfg, bodies):
        t_hat = first_answer_end(choice.reasoning)
        assert t_hat is not None
        before, after = "".join(choice.reasoning[:t_hat]), "".join(choice.reasoning[t_hat:])
        assert markers(before) == 0 and markers(choice.text) == 0
        assert markers(after) == thoughts
        # Each reflection opens a step with its marker; the last restates the first answer.
        openers = [s for s in after.split("\n\n") if markers(s)]
        assert len(openers) == thoughts
        assert all(any(s.lower().startswith(m) for m in THOUGHT_MARKERS) for s in openers)
        candidates = [b[2] for b in boxed_all(choice.reasoning_text)]
        assert candidates == [candidates[0]] * (2 if thoughts else 1)


def test_wrong_answers_are_never_equivalent_to_gold(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": f"Q{i}", "answer": g} for i, g in enumerate(GOLDS)])
    bodies = [ask(f"Q{i}", max_tokens=100) for i in range(len(GOLDS)) for _ in range(6)]
    results = gather(config(path, answer_accuracy=0.0), bodies)
    for body, (choice,) in zip(bodies, results, strict=True):
        gold = GOLDS[int(body["messages"][-1]["content"][1:])]
        assert choice.header["correct"] == "0"
        full = choice.reasoning_text + choice.text
        for _, _, candidate in boxed_all(full):
            assert candidate != gold
            assert not grade("math", f"$\\boxed{{{candidate}}}$", gold).correct, candidate
        assert not grade("math", choice.text, gold).correct


def test_choice_format(tmp_path: Path) -> None:
    options = ["red", "green", "blue", "white", "black"]
    rows = [
        {"prompt": "Pick one.", "answer": "C", "grader": "choice", "choices": options},
        {"prompt": "Pick by text.", "answer": "white", "grader": "choice", "choices": options},
    ]
    path = book(tmp_path, rows)
    for accuracy in (1.0, 0.0):
        shape: dict[str, Any] = {"max_tokens": 200, "ignore_eos": True}
        bodies = [ask("Pick one.", **shape), ask("Pick by text.", **shape)] * 10
        results = gather(config(path, answer_accuracy=accuracy), bodies)
        for body, (choice,) in zip(bodies, results, strict=True):
            gold = "C" if body["messages"][-1]["content"] == "Pick one." else "white"
            assert choice.text.startswith("\n\nThe answer is (") and choice.text.endswith(").")
            verdict = grade("choice", choice.text, gold, choices=options)
            assert verdict.format_ok and verdict.correct == (accuracy == 1.0)
            assert verdict.pred in "ABCDE"


def test_numeric_format(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "How many?", "answer": "1,234", "grader": "numeric"}])
    for accuracy in (1.0, 0.0):
        results = gather(
            config(path, answer_accuracy=accuracy),
            [ask("How many?", max_tokens=150, ignore_eos=True)] * 10,
        )
        for (choice,) in results:
            assert choice.text.startswith("\n\nThe final answer is $\\boxed{")
            verdict = grade("numeric", choice.text, "1,234")
            assert verdict.format_ok and verdict.correct == (accuracy == 1.0), choice.text


# -- every path -----------------------------------------------------------------------------------


def test_non_streaming_with_reasoning_field(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "18"}])
    cfg = config(path, reasoning_ratio=0.5, answer_accuracy=1.0)
    body = ask("Q", max_tokens=300, ignore_eos=True, stream=False)
    (whole,), usage = run_sim(cfg, lambda s: chat(s, body))
    (streamed,), _ = run_sim(cfg, lambda s: chat(s, {**body, "stream": True}))
    assert usage is not None
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 150}
    assert whole.reasoning_text == streamed.reasoning_text and len(streamed.reasoning) == 150
    assert whole.text == streamed.text
    assert whole.text.endswith("\n\nThe final answer is $\\boxed{18}$.")
    assert "<think>" not in whole.text and "\\boxed{18}" in whole.reasoning_text
    assert grade("math", whole.text, "18").correct


def test_completions_prompt_is_a_key(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "2+2=", "answer": "4"}])
    body = {"model": MODEL, "prompt": "2+2=", "max_tokens": 100, "ignore_eos": True}

    async def go(s: aiohttp.ClientSession) -> str:
        async with s.post("/v1/completions", json=body) as resp:
            return str((await resp.json())["choices"][0]["text"])

    text = run_sim(config(path, answer_accuracy=1.0, reasoning_ratio=0.5), go)
    assert text.startswith("<think>") and "</think>" in text
    assert text.endswith("The final answer is $\\boxed{4}$.")


def test_burst_answers_and_keeps_its_template_cache_clean(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "A", "answer": "11"}, {"prompt": "B", "answer": "22"}])
    cfg = config(path, burst=True, answer_accuracy=1.0)
    shape: dict[str, Any] = {"max_tokens": 120, "ignore_eos": True}
    bodies = [ask("A", **shape), ask("B", **shape), ask("unlisted", **shape)]
    bodies += [ask("A", stream=False, **shape)]
    a, b, plain, whole = gather(cfg, bodies)
    assert a[0].text.endswith("\\boxed{11}$.") and b[0].text.endswith("\\boxed{22}$.")
    assert whole[0].text.startswith("<think>") and whole[0].text.endswith("\\boxed{11}$.")
    assert plain[0].header == {} and "\\boxed" not in "".join(plain[0].content)
    assert len(plain[0].content) == 120


def test_n_choices_each_draw_their_own_answer(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "7"}])
    cfg = config(path, answer_accuracy=0.5)
    (choices,) = gather(cfg, [ask("Q", n=16, max_tokens=150)])
    flags = [c.header["correct"] for c in choices]
    assert set(flags) == {"0", "1"}
    for c in choices:
        assert grade("math", c.text, "7").correct == (c.header["correct"] == "1")


def test_problem_rows_match_as_substrings(tmp_path: Path) -> None:
    rows = [{"problem": "a train leaves", "answer": "3"}, {"problem": "train", "answer": "9"}]
    path = book(tmp_path, rows)
    prompt = "Solve: a train leaves at noon. Put your final answer in \\boxed{}."
    (choice,), _ = run_sim(config(path, answer_accuracy=1.0), lambda s: chat(s, ask(prompt)))
    assert choice.text.endswith("\\boxed{3}$.")  # the longest matching problem wins


def test_unmatched_prompts_are_unchanged(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "7"}])
    bodies = [ask("not in the book", max_tokens=60, seed=1), ask("x", n=2, stream=False, seed=3)]
    without = gather(dataclasses.replace(INSTANT, seed=7), bodies)
    with_book = gather(config(path), bodies)
    for one, two in zip(without, with_book, strict=True):
        assert [(c.content, c.reasoning, c.finish_reason) for c in one] == [
            (c.content, c.reasoning, c.finish_reason) for c in two
        ]
        assert all(c.header == {} for c in two)


def test_output_too_short_for_the_structure_is_cut(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "7"}])
    body = ask("Q", max_tokens=6, ignore_eos=True)
    (choice,), usage = run_sim(config(path, answer_accuracy=1.0), lambda s: chat(s, body))
    assert usage is not None and usage["completion_tokens"] == 6
    assert choice.finish_reason == "length" and choice.content == []
    assert choice.header == {"correct": "1", "reasoning": "5", "first_answer": "-"}
    assert len(choice.reasoning) == 5 < reasoning_min(2)


def test_timing_log_reports_each_answer(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "7"}])
    log = tmp_path / "timing.jsonl"
    cfg = config(path, timing_log=str(log))
    (choice,) = gather(cfg, [ask("Q", max_tokens=200, ignore_eos=True), ask("other")])[0]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    answered = [r for r in records if "answers" in r]
    assert len(answered) == 1 and len(records) == 2
    (info,) = answered[0]["answers"]
    assert info == {
        "correct": choice.header["correct"] == "1",
        "reasoning": len(choice.reasoning),
        "first_answer": first_answer_end(choice.reasoning),
    }


def test_seeded_answers_are_deterministic(tmp_path: Path) -> None:
    path = book(tmp_path, [{"prompt": "Q", "answer": "7"}])
    bodies = [ask("Q", max_tokens=200, seed=s) for s in range(5)]
    one = gather(config(path, answer_accuracy=0.5), bodies)
    two = gather(config(path, answer_accuracy=0.5), bodies)
    assert [c[0].content for c in one] == [c[0].content for c in two]
    # the draw follows the request's seed, not its arrival order
    backwards = gather(config(path, answer_accuracy=0.5), bodies[::-1])
    assert [c[0].content for c in backwards] == [c[0].content for c in one][::-1]
    assert len({str(c[0].content) for c in one}) > 1  # and different seeds draw differently


# -- the book and its errors ----------------------------------------------------------------------


def test_write_answer_book_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    rows = [("What is 2+2?", "4", "math", None), ("Pick", "B", "choice", ["x", "y"])]
    assert write_answer_book(rows, path) == 2
    loaded = load_book(str(path))
    assert len(loaded) == 2
    row = loaded.lookup("Pick")
    assert row is not None and row.right == "B" and row.choices == ("x", "y")
    assert loaded.lookup("What is 2+2?") is not None and loaded.lookup("nope") is None
    assert row.wrong(random.Random(0)) == "A"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prompt": "a", "answer": "1"}\n{"prompt": "b"\n', "line 2: not valid JSON"),
        ('{"prompt": "a", "answer": "1"}\n\n[1]\n', "line 3: each line must be a JSON object"),
        ('{"answer": "1"}\n', 'line 1: needs a non-empty "prompt"'),
        ('{"prompt": "a", "answer": ""}\n', 'line 1: needs a non-empty "answer"'),
        ('{"prompt": "a", "answer": "1", "choices": "AB"}\n', '"choices" must be a list'),
        ("\n", "has no rows"),
    ],
)
def test_bad_answer_books_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        SimConfig(answers=str(path))


def test_flags_are_validated() -> None:
    with pytest.raises(ValueError, match="--answer-accuracy must be between 0 and 1"):
        SimConfig(answer_accuracy=1.5)
    with pytest.raises(ValueError, match="--first-correct must be between 0 and 1"):
        SimConfig(first_correct=-0.1)
    with pytest.raises(ValueError, match="--answer-thoughts must be an integer >= 0"):
        SimConfig(answer_thoughts=-1)
    with pytest.raises(ValueError, match="cannot read it"):
        SimConfig(answers="/nonexistent/answers.jsonl")


def test_cli_rejects_a_bad_answer_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\nnot json\n')
    result = perfbench("sim", "--port", "0", "--answers", str(path), timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"--answers {path}, line 2: not valid JSON" in lines[0]
    assert result.stdout == ""
