"""The LLM judge against a protocol mock: an in-process chat endpoint with scripted replies."""

from __future__ import annotations

import asyncio
import shlex
import socket
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from perfbench.errors import ConfigError, RunError
from perfbench.grade.judge import Judge, map_paragraphs, parse_step
from perfbench.grade.think import measure, split_steps, thinking_text

KEY = "sk-judge-secret-123"


class JudgeServer:
    """/v1/chat/completions answering each request with the next scripted reply."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.status = 200
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.url = ""

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.auth.append(request.headers.get("Authorization"))
        # the reply is taken on arrival: a request left sleeping by a timed-out client must
        # not take a reply meant for a later test
        content = self.replies.pop(0) if self.replies else ""
        await asyncio.sleep(self.delay)
        if self.status != 200:  # a careless server that echoes the credentials it was given
            message = f"invalid key in {request.headers.get('Authorization')}"
            return web.json_response({"error": {"message": message}}, status=self.status)
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def prompt(self, i: int = -1) -> str:
        return str(self.requests[i]["messages"][0]["content"])


@pytest.fixture(scope="module")
def server() -> Iterator[JudgeServer]:
    mock = JudgeServer()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", mock.chat)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        mock.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield mock
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(10)


@pytest.fixture
def judge(server: JudgeServer) -> Iterator[Judge]:
    server.replies.clear()
    server.requests.clear()
    server.auth.clear()
    server.status, server.delay = 200, 0.0
    with Judge(server.url, "judge-model", api_key=KEY, timeout=5, max_retries=0) as j:
        yield j


STEPS = ["Let n be the number.", "Then 2n = 14.", "So n = 7.", "Check: 2 * 7 = 14."]


def test_prompt_numbers_the_steps_and_gives_the_gold(judge, server):
    server.replies.append("STEP: 3")
    assert judge.first_correct_step("Twice a number is 14. Find it.", "7", STEPS) == 2
    prompt = server.prompt()
    for i, step in enumerate(STEPS, 1):
        assert f"[Step {i}]\n{step}" in prompt
    assert "# Correct answer\n\n7\n" in prompt and "Twice a number is 14" in prompt
    request = server.requests[-1]
    assert (request["model"], request["temperature"]) == ("judge-model", 0)
    assert server.auth[-1] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("reply", "index"),
    [
        ("STEP: 3", 2),
        ('{"step": 3}', 2),
        ('```json\n{"step": 3, "reason": "n = 7"}\n```', 2),
        ("**Step:** 1", 0),
        ("<think>Maybe STEP: 1? No.</think>\nSTEP: 4", 3),
        ("none", None),
        ("STEP: none", None),
        ('{"step": null}', None),
        ("STEP: 0", None),
        ("STEP: 9", None),
        ("I could not decide; all steps look fine to me.", None),
        ("", None),
    ],
)
def test_judge_replies_are_read_robustly(judge, server, reply, index):
    server.replies.append(reply)
    assert judge.first_correct_step("p", "7", STEPS) == index


def test_parse_step_reads_boxed_and_bare_numbers():
    assert parse_step("The earliest is \\boxed{2}", 4) == 1
    assert parse_step(" 4. ", 4) == 3
    assert parse_step("-1", 4) is None and parse_step("STEP: -1", 4) is None
    assert parse_step('{"step": true}', 4) is None
    assert parse_step('{"first_correct_step": "2"}', 4) == 1


def test_no_steps_asks_nothing(judge, server):
    assert judge.first_correct_step("p", "7", []) is None
    assert server.requests == []


def test_the_api_key_never_appears_in_errors(judge, server):
    server.status = 401
    with pytest.raises(RunError) as caught:
        judge.first_correct_step("p", "7", STEPS)
    text = "".join(traceback.format_exception(caught.value))
    assert "HTTP 401" in str(caught.value) and "--judge-api-key" in str(caught.value)
    assert KEY not in text and "***" in text  # the echoed key is scrubbed
    assert KEY not in repr(judge)


def test_an_unreachable_judge_is_one_line_naming_the_flag():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = Judge(f"http://127.0.0.1:{port}", "m", api_key=KEY, timeout=5, max_retries=0)
    with judge, pytest.raises(RunError, match="cannot reach the judge") as caught:
        judge.first_correct_step("p", "7", STEPS)
    assert "--judge-url" in str(caught.value) and "\n" not in str(caught.value)
    assert KEY not in "".join(traceback.format_exception(caught.value))


def test_a_slow_judge_times_out(judge, server):
    server.delay = 1.0
    slow = Judge(server.url, "m", timeout=0.2, max_retries=0)
    with slow, pytest.raises(RunError, match="did not answer within 0.2 s"):
        slow.first_correct_step("p", "7", STEPS)


def test_the_judge_needs_a_model_and_an_http_url():
    with pytest.raises(ConfigError):
        Judge("http://127.0.0.1:1/v1", "")
    with pytest.raises(ConfigError):
        Judge("127.0.0.1:1", "m")
    assert Judge("http://h:8000/v1/chat/completions", "m").base_url == "http://h:8000/v1"
    assert Judge("http://h:8000", "m").base_url == "http://h:8000/v1"


# -- paragraphs -----------------------------------------------------------------------------------

THINKING = (
    "We need n with 2n = 14. Dividing both sides by 2 gives n = 7.\n"
    "Let me check: 2 * 7 = 14, which is right. So the answer is 7."
)


def test_paragraphs_map_back_to_spans_of_the_original(judge, server):
    server.replies.append(
        "We need n with 2n = 14.\n\nDividing both sides by 2\ngives n = 7.\n\n"
        "Let me check: 2 * 7 = 14, which is right.\n\nSo the answer is 7."
    )
    split = judge.paragraphs(THINKING, problem="Twice n is 14.")
    assert (split.strategy, split.note) == ("llm", None)
    assert [THINKING[a:b] for a, b in split.steps] == [
        "We need n with 2n = 14.",
        "Dividing both sides by 2 gives n = 7.",
        "Let me check: 2 * 7 = 14, which is right.",
        "So the answer is 7.",
    ]
    assert THINKING in server.prompt() and "Twice n is 14." in server.prompt()


def test_a_preamble_is_ignored_and_a_rewrite_falls_back_to_blank_lines(judge, server):
    server.replies.append(
        "Here is the reformatted solution:\n\nWe need n with 2n = 14. Dividing both sides by 2 "
        "gives n = 7.\n\nLet me check: 2 * 7 = 14, which is right. So the answer is 7."
    )
    split = judge.paragraphs(THINKING)
    assert split.strategy == "llm" and len(split.steps) == 2
    assert split.steps[0][0] == 0 and split.steps[-1][1] == len(THINKING)

    server.replies.append("We solve 2n = 14.\n\nThus n = 7.")  # a summary, not a copy
    split = judge.paragraphs(THINKING)
    assert split.strategy == "separator" and split.steps == tuple(
        split_steps(THINKING, "separator")
    )
    assert split.note is not None and "blank lines" in split.note


def test_map_paragraphs_skips_a_reworded_paragraph_into_the_step_before():
    text = "One two.\nThree four.\nFive six."
    spans, coverage = map_paragraphs(text, ["One two.", "3 4.", "Five six."])
    assert [text[a:b] for a, b in spans] == ["One two.\nThree four.", "Five six."]
    assert coverage == pytest.approx(len("Onetwo.Fivesix.") / len("Onetwo.Threefour.Fivesix."))
    assert map_paragraphs(" \n", ["x"]) == ([], 0.0)


def test_judge_path_end_to_end(judge, server):
    """What ``grade --think --judge-url`` does: paragraphs, first correct step, then measure."""
    output = f"<think>{THINKING}</think>The answer is 7."
    text, source = thinking_text(None, output)
    server.replies += [
        "We need n with 2n = 14.\n\nDividing both sides by 2 gives n = 7.\n\n"
        "Let me check: 2 * 7 = 14, which is right. So the answer is 7.",
        '{"step": 2}',
    ]
    split = judge.paragraphs(text)
    first = judge.first_correct_step("Twice n is 14.", "7", [text[a:b] for a, b in split.steps])
    f = measure(text, source, split, first, count_tokens=lambda s: len(s.split()))
    # 7 + 9 words up to the end of step 2, of 7 + 9 + (11 + 5)
    assert (f.first_correct_step, f.reasoning_tokens, f.first_correct_tokens) == (1, 32, 16)
    assert (f.strategy, f.source, f.thought_count) == ("llm", "think_tag", 0)


# -- the judge from the command line --------------------------------------------------------------


def test_perf_grade_think_with_a_judge_from_the_cli(server, tmp_path):
    """perf --grade --think --judge-url: the judge names the step; its key reaches the judge
    and nothing else (not the database, not the output)."""
    from tests.conftest import perfbench, rows

    server.replies[:] = ["STEP: 2"] * 6 + ["I would rather not say."] * 2
    server.requests.clear()
    server.auth.clear()
    server.status, server.delay = 200, 0.0
    db = tmp_path / "j.db"
    done = perfbench(
        "perf", "--dataset", "synthetic_math", "--number", "8", "--parallel", "1",
        "--max-tokens", "300", "--db", str(db), "--grade", "--think", "--json",
        "--judge-url", server.url, "--judge-model", "judge-model", "--judge-api-key", KEY,
        "--sim-args", "--answer-accuracy 1 --output-len-dist fixed --output-len-mean 200",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert server.auth == [f"Bearer {KEY}"] * 8
    stored = rows(db, "SELECT method, first_correct_step FROM thinking ORDER BY idx")
    assert [m for m, _ in stored] == ["separator+llm"] * 8
    # the judge is asked from several threads: which answers got which reply varies
    assert sorted(stored, key=str) == sorted(
        [("separator+llm", 1)] * 6 + [("separator+llm", None)] * 2, key=str
    )
    assert "could not be read for 2 of 8 answers" in done.stdout
    dump = "\n".join(str(r) for t in ("runs", "requests", "grades", "thinking")
                     for r in rows(db, f"SELECT * FROM {t}"))  # fmt: skip
    assert KEY not in dump and KEY not in done.stdout and KEY not in done.stderr
    words = shlex.split(rows(db, "SELECT command FROM runs")[0][0])
    assert words[words.index("--judge-api-key") + 1] == "<redacted>"


def test_a_dead_judge_stops_perf_grade_before_the_run(tmp_path):
    from tests.conftest import perfbench

    db = tmp_path / "d.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    done = perfbench(
        "grade", "--db", str(db), "--think", "--judge-url", f"http://u:pw@127.0.0.1:{port}/v1"
    )
    assert done.returncode == 2 and "no database" in done.stderr  # the store is checked first
    run = perfbench("perf", "--dataset", "synthetic_math", "--number", "2", "--db", str(db))
    assert run.returncode == 0, run.stderr
    done = perfbench(
        "grade", "--db", str(db), "--think", "--judge-url", f"http://u:pw@127.0.0.1:{port}/v1"
    )
    assert done.returncode == 2  # like an unreachable server: found before any work
    assert "cannot reach the judge" in done.stderr and done.stderr.count("\n") == 1
    assert "pw" not in done.stderr
    assert rows_count(db) == 0  # nothing graded before the judge was found dead
    before = perfbench(
        "perf", "--dataset", "synthetic_math", "--number", "2", "--db", str(db), "--grade",
        "--think", "--judge-url", f"http://127.0.0.1:{port}/v1", "--judge-model", "m",
    )  # fmt: skip
    assert before.returncode == 2 and "cannot reach the judge" in before.stderr
    assert rows_in(db, "runs") == 1  # perf stopped before its run


def rows_count(db):
    return rows_in(db, "grades")


def rows_in(db, table):
    from tests.conftest import rows

    return rows(db, f"SELECT count(*) FROM {table}")[0][0]
