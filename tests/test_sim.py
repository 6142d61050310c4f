"""The simulated engine, over real HTTP on 127.0.0.1 (no mocks).

Each test serves ``build_app(config)`` on port 0 inside ``asyncio.run`` and talks to it with
aiohttp's client. Timing assertions use medians with tolerances meant for a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from perfbench.sim import PRESETS, SimConfig, add_arguments, build_app, config_from_args, main

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
INSTANT = PRESETS["instant"]
MODEL = "perfbench-sim"


def run_sim(config: SimConfig, fn: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    """Serve the sim on 127.0.0.1:0, run ``fn(session)`` against it, shut everything down."""

    async def main() -> T:
        runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                return await fn(session)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def chat_body(n_chars: int = 40, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x" * n_chars}],
    }
    body.update(extra)
    return body


def split_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: ") :] for e in events]


async def post_stream(session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> list[str]:
    async with session.post(path, json=body) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return split_events(await resp.read())


async def timed_stream(
    session: aiohttp.ClientSession, body: dict[str, Any]
) -> tuple[float, list[float], list[dict[str, Any]]]:
    """Stream a chat request; return (TTFT s, token arrival times s, parsed events)."""
    t0 = time.perf_counter()
    stamps: list[float] = []
    events: list[dict[str, Any]] = []
    buf = b""
    async with session.post("/v1/chat/completions", json=body) as resp:
        async for block in resp.content.iter_any():
            now = time.perf_counter()
            buf += block
            *complete, buf = buf.split(b"\n\n")
            for raw in complete:
                payload = raw.decode()[len("data: ") :]
                if payload == "[DONE]":
                    continue
                event = json.loads(payload)
                events.append(event)
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    stamps.append(now - t0)
    return stamps[0], stamps, events


# -- wire format ----------------------------------------------------------------------------------


def test_chat_stream_format_with_usage() -> None:
    body = chat_body(
        41, stream=True, max_tokens=7, ignore_eos=True, stream_options={"include_usage": True}
    )
    events = run_sim(INSTANT, lambda s: post_stream(s, "/v1/chat/completions", body))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    role, tokens, finish, usage = chunks[0], chunks[1:8], chunks[8], chunks[9]
    assert len(chunks) == 10
    rid = role["id"]
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", rid)
    for chunk in chunks:
        assert chunk["id"] == rid
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == MODEL
        assert isinstance(chunk["created"], int)
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    for chunk in tokens:
        (choice,) = chunk["choices"]
        assert set(choice) == {"index", "delta", "logprobs", "finish_reason"}
        assert choice["finish_reason"] is None and choice["logprobs"] is None
        assert list(choice["delta"]) == ["content"]
        assert choice["delta"]["content"].strip()
    (fin,) = finish["choices"]
    assert fin["delta"] == {"content": ""} and fin["finish_reason"] == "length"
    assert usage["choices"] == []
    # 41 characters -> ceil(41 / 4) = 11 prompt tokens.
    assert usage["usage"] == {"prompt_tokens": 11, "total_tokens": 18, "completion_tokens": 7}


def test_chat_stream_without_usage_has_no_usage_chunk() -> None:
    body = chat_body(stream=True, max_tokens=3, ignore_eos=True)
    events = run_sim(INSTANT, lambda s: post_stream(s, "/v1/chat/completions", body))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 1 + 3 + 1
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_completions_stream_format() -> None:
    body = {
        "model": MODEL,
        "prompt": "y" * 8,
        "stream": True,
        "max_tokens": 5,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    events = run_sim(INSTANT, lambda s: post_stream(s, "/v1/completions", body))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 5 + 1 + 1  # no role chunk on /v1/completions
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", chunks[0]["id"])
    assert all(c["object"] == "text_completion" for c in chunks)
    for chunk in chunks[:5]:
        (choice,) = chunk["choices"]
        assert set(choice) == {"index", "text", "logprobs", "finish_reason"}
        assert choice["text"]
    assert chunks[5]["choices"][0]["text"] == ""
    assert chunks[5]["choices"][0]["finish_reason"] == "length"
    assert chunks[6]["usage"] == {"prompt_tokens": 2, "total_tokens": 7, "completion_tokens": 5}


def test_non_streaming_chat_and_completions() -> None:
    async def go(s: aiohttp.ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
        async with s.post("/v1/chat/completions", json=chat_body(max_tokens=6, min_tokens=6)) as r:
            assert r.status == 200
            chat = await r.json()
        body = {"model": MODEL, "prompt": [1, 2, 3], "max_tokens": 4, "ignore_eos": True}
        async with s.post("/v1/completions", json=body) as r:
            assert r.status == 200
            completion = await r.json()
        return chat, completion

    chat, completion = run_sim(INSTANT, go)
    assert chat["object"] == "chat.completion"
    (choice,) = chat["choices"]
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) >= 1
    assert choice["finish_reason"] == "length"
    assert chat["usage"] == {"prompt_tokens": 10, "total_tokens": 16, "completion_tokens": 6}
    assert "reasoning_content" not in choice["message"]
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"]
    # A prompt of token ids counts one token per id.
    assert completion["usage"] == {"prompt_tokens": 3, "total_tokens": 7, "completion_tokens": 4}


def test_lengths_honour_max_min_tokens_and_ignore_eos() -> None:
    config = dataclasses.replace(INSTANT, output_len_dist="fixed", output_len_mean=10)

    async def count(s: aiohttp.ClientSession, **extra: Any) -> tuple[int, int, str]:
        body = chat_body(stream=True, stream_options={"include_usage": True}, **extra)
        events = await post_stream(s, "/v1/chat/completions", body)
        chunks = [json.loads(e) for e in events[:-1]]
        deltas = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
        return (
            len(deltas),
            chunks[-1]["usage"]["completion_tokens"],
            chunks[-2]["choices"][0]["finish_reason"],
        )

    async def go(s: aiohttp.ClientSession) -> list[tuple[int, int, str]]:
        return [
            await count(s, max_tokens=20),  # natural length 10: stops by itself
            await count(s, max_tokens=5),  # capped
            await count(s, max_tokens=20, min_tokens=15),  # floor above the natural length
            await count(s, max_tokens=20, min_tokens=20),  # min == max: exactly max
            await count(s, max_tokens=20, ignore_eos=True),
            await count(s, max_completion_tokens=4, max_tokens=50),  # the newer name wins
        ]

    assert run_sim(config, go) == [
        (10, 10, "stop"),
        (5, 5, "length"),
        (15, 15, "stop"),
        (20, 20, "length"),
        (20, 20, "length"),
        (4, 4, "length"),
    ]


async def _n_choices(s: aiohttp.ClientSession) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    body = chat_body(n=3, max_tokens=4, stream=True, stream_options={"include_usage": True})
    chunks = [json.loads(e) for e in (await post_stream(s, "/v1/chat/completions", body))[:-1]]
    async with s.post("/v1/chat/completions", json=chat_body(n=2, max_tokens=5)) as r:
        whole = await r.json()
    return chunks, whole


def test_n_choices_streaming_and_not() -> None:
    chunks, whole = run_sim(INSTANT, _n_choices)
    tokens = {0: 0, 1: 0, 2: 0}
    finishes = set()
    roles = set()
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        delta = choice["delta"]
        if delta.get("role"):
            roles.add(choice["index"])
        elif choice["finish_reason"]:
            finishes.add(choice["index"])
        else:
            tokens[choice["index"]] += 1
    assert roles == finishes == {0, 1, 2}
    assert chunks[-1]["usage"]["completion_tokens"] == sum(tokens.values())
    assert all(1 <= t <= 4 for t in tokens.values())
    assert [c["index"] for c in whole["choices"]] == [0, 1]
    assert whole["usage"]["completion_tokens"] <= 10


# -- other routes and errors ----------------------------------------------------------------------


def test_models_health_and_errors() -> None:
    async def go(s: aiohttp.ClientSession) -> None:
        async with s.get("/v1/models") as r:
            models = await r.json()
        assert models["object"] == "list"
        assert [m["id"] for m in models["data"]] == ["perfbench-sim", "alias"]
        assert models["data"][0]["object"] == "model"
        async with s.get("/health") as r:
            assert r.status == 200 and await r.read() == b""
        async with s.post("/v1/chat/completions", json=chat_body(model="alias", max_tokens=1)) as r:
            assert r.status == 200 and (await r.json())["model"] == "alias"
        async with s.post("/v1/chat/completions", json=chat_body(model="nope")) as r:
            assert r.status == 404
            assert await r.json() == {
                "error": {
                    "message": "The model `nope` does not exist.",
                    "type": "NotFoundError",
                    "param": None,
                    "code": 404,
                }
            }
        for path, raw in [
            ("/v1/chat/completions", b"{not json"),
            ("/v1/chat/completions", b'{"model": "perfbench-sim"}'),
            ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "n": 0}'),
            ("/v1/completions", b'{"model": "perfbench-sim"}'),
            ("/v1/completions", b'{"prompt": "hi", "max_tokens": 100000}'),
        ]:
            async with s.post(path, data=raw) as r:
                assert r.status == 400, raw
                error = (await r.json())["error"]
                assert error["type"] == "BadRequestError" and error["code"] == 400
                assert error["message"]

    run_sim(dataclasses.replace(INSTANT, served_model_name=("perfbench-sim", "alias")), go)


def test_metrics_names_and_queue_gauges_move_under_load() -> None:
    config = dataclasses.replace(INSTANT, max_num_seqs=2, ttft_ms=0, itl_ms=20)

    def gauge(text: str, name: str) -> float:
        match = re.search(rf'^{re.escape(name)}{{model_name="perfbench-sim"}} (\S+)$', text, re.M)
        assert match, name
        return float(match.group(1))

    async def go(s: aiohttp.ClientSession) -> tuple[str, str, str]:
        async def metrics() -> str:
            async with s.get("/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                return await r.text()

        idle = await metrics()
        body = chat_body(stream=True, max_tokens=10, ignore_eos=True)
        load = [asyncio.create_task(post_stream(s, "/v1/chat/completions", body)) for _ in range(4)]
        await asyncio.sleep(0.08)
        busy = await metrics()
        await asyncio.gather(*load)
        return idle, busy, await metrics()

    idle, busy, done = run_sim(config, go)
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert f"# TYPE {name} " in idle
        gauge(idle, name)
    assert gauge(idle, "vllm:num_requests_running") == 0
    assert gauge(busy, "vllm:num_requests_running") == 2
    assert gauge(busy, "vllm:num_requests_waiting") == 2
    assert gauge(busy, "vllm:kv_cache_usage_perc") > 0
    assert gauge(done, "vllm:num_requests_running") == 0
    assert gauge(done, "vllm:num_requests_waiting") == 0
    assert gauge(done, "vllm:generation_tokens_total") == 40
    assert gauge(done, "vllm:prompt_tokens_total") == 40
    assert (
        'vllm:request_success_total{finished_reason="length",model_name="perfbench-sim"} 4.0'
        in done
    )
    assert "vllm:time_to_first_token_seconds_count" in done


# -- faults ---------------------------------------------------------------------------------------


def test_error_status_and_rate_limit() -> None:
    async def status_of(config: SimConfig) -> tuple[int, dict[str, Any], str | None]:
        async def go(s: aiohttp.ClientSession) -> tuple[int, dict[str, Any], str | None]:
            async with s.post("/v1/chat/completions", json=chat_body(stream=True)) as r:
                return r.status, await r.json(), r.headers.get("Retry-After")

        return await asyncio.to_thread(run_sim, config, go)

    async def both() -> list[tuple[int, dict[str, Any], str | None]]:
        return [
            await status_of(dataclasses.replace(INSTANT, error_rate=1.0, error_status=503)),
            await status_of(dataclasses.replace(INSTANT, rate_limit_rate=1.0)),
        ]

    (s1, e1, _), (s2, e2, retry) = asyncio.run(both())
    assert s1 == 503 and e1["error"]["code"] == 503 and e1["error"]["message"]
    assert s2 == 429 and e2["error"]["type"] == "RateLimitError" and retry == "1"


def test_disconnect_drops_the_connection_before_done() -> None:
    config = dataclasses.replace(INSTANT, disconnect_rate=1.0, seed=3)

    async def go(s: aiohttp.ClientSession) -> tuple[bytes, type[BaseException] | None]:
        received = b""
        async with s.post("/v1/chat/completions", json=chat_body(stream=True, max_tokens=40)) as r:
            assert r.status == 200
            try:
                async for block in r.content.iter_any():
                    received += block
            except aiohttp.ClientPayloadError as exc:
                return received, type(exc)
        return received, None

    received, error = run_sim(config, go)
    assert error is aiohttp.ClientPayloadError
    assert b"[DONE]" not in received and b'finish_reason":"' not in received
    assert re.search(rb'"delta":\{"content":"[^"]+"\}', received)  # some tokens came first


def test_malformed_chunk_is_one_invalid_event() -> None:
    config = dataclasses.replace(INSTANT, malformed_rate=1.0, seed=5)
    body = chat_body(stream=True, max_tokens=12, ignore_eos=True)
    events = run_sim(config, lambda s: post_stream(s, "/v1/chat/completions", body))
    bad = []
    for e in events[:-1]:
        try:
            json.loads(e)
        except json.JSONDecodeError:
            bad.append(e)
    assert len(bad) == 1 and bad[0].startswith('{"id":')
    assert events[-1] == "[DONE]"
    assert len(events) == 1 + 1 + 12 + 1 + 1  # the role, the bad one, tokens, finish, [DONE]


def test_stall_is_one_visible_gap() -> None:
    config = dataclasses.replace(INSTANT, ttft_ms=0, itl_ms=5, stall_rate=1.0, stall_ms=300, seed=2)
    body = chat_body(stream=True, max_tokens=20, ignore_eos=True)
    _, stamps, _ = run_sim(config, lambda s: timed_stream(s, body))
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    assert len(stamps) == 20
    assert 0.28 <= gaps[-1] <= 0.4
    assert gaps[-2] < 0.1


def test_error_event_inside_a_200_stream() -> None:
    config = dataclasses.replace(INSTANT, error_event_rate=1.0, seed=9)
    body = chat_body(stream=True, max_tokens=10, stream_options={"include_usage": True})
    events = run_sim(config, lambda s: post_stream(s, "/v1/chat/completions", body))
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert set(error) == {"error"} and error["error"]["code"] == 500
    assert error["error"]["type"] == "InternalServerError"
    assert all("usage" not in json.loads(e) for e in events[:-2])


# -- reasoning, determinism, burst ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas(field: str) -> None:
    config = dataclasses.replace(INSTANT, reasoning_ratio=0.25, reasoning_field=field)

    async def go(s: aiohttp.ClientSession) -> tuple[list[str], dict[str, Any]]:
        body = chat_body(
            stream=True, max_tokens=20, ignore_eos=True, stream_options={"include_usage": True}
        )
        events = await post_stream(s, "/v1/chat/completions", body)
        async with s.post(
            "/v1/chat/completions", json=chat_body(max_tokens=8, ignore_eos=True)
        ) as r:
            return events, await r.json()

    events, whole = run_sim(config, go)
    chunks = [json.loads(e) for e in events[:-1]]
    kinds = [next(iter(c["choices"][0]["delta"])) for c in chunks[1:21]]
    assert kinds == [field] * 5 + ["content"] * 15
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 20
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    message = whole["choices"][0]["message"]
    assert message[field] and message["content"]
    assert whole["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}


def test_seed_makes_outputs_deterministic() -> None:
    async def texts(s: aiohttp.ClientSession) -> list[str]:
        out = []
        for _ in range(3):
            async with s.post("/v1/chat/completions", json=chat_body(max_tokens=50)) as r:
                out.append((await r.json())["choices"][0]["message"]["content"])
        return out

    seeded = dataclasses.replace(INSTANT, seed=42)
    first, again = run_sim(seeded, texts), run_sim(seeded, texts)
    other = run_sim(dataclasses.replace(INSTANT, seed=43), texts)
    assert first == again
    assert first != other
    assert len(set(first)) == 3  # each request gets its own draw


def test_burst_streams_whole_responses_fast_with_unique_ids() -> None:
    config = dataclasses.replace(PRESETS["llama-70b-h100x4"], burst=True)
    body = chat_body(
        stream=True, max_tokens=256, ignore_eos=True, stream_options={"include_usage": True}
    )

    async def go(s: aiohttp.ClientSession) -> tuple[float, list[list[str]]]:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(post_stream(s, "/v1/chat/completions", body) for _ in range(40))
        )
        return time.perf_counter() - t0, results

    elapsed, results = run_sim(config, go)
    assert elapsed < 2.0  # 40 x 256 tokens at this preset's pace would take seconds
    ids = set()
    for events in results:
        chunks = [json.loads(e) for e in events[:-1]]
        assert len(chunks) == 1 + 256 + 1 + 1 and events[-1] == "[DONE]"
        assert len({c["id"] for c in chunks}) == 1
        ids.add(chunks[0]["id"])
        assert chunks[-1]["usage"]["completion_tokens"] == 256
    assert len(ids) == 40


def test_burst_faults_use_the_same_stream_writer() -> None:
    config = dataclasses.replace(INSTANT, burst=True, disconnect_rate=1.0, seed=4)

    async def go(s: aiohttp.ClientSession) -> bytes:
        received = b""
        async with s.post("/v1/chat/completions", json=chat_body(stream=True, max_tokens=50)) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                async for block in r.content.iter_any():
                    received += block
        return received

    received = run_sim(config, go)
    assert b'"role":"assistant"' in received and b"[DONE]" not in received


def test_requests_that_can_never_run_get_400() -> None:
    config = dataclasses.replace(INSTANT, max_num_seqs=2)

    async def go(s: aiohttp.ClientSession) -> list[tuple[int, str]]:
        out = []
        for body in (chat_body(n=3, max_tokens=2), chat_body(4000, max_tokens=32_000)):
            async with s.post("/v1/chat/completions", json=body) as r:
                out.append((r.status, (await r.json())["error"]["message"]))
        return out

    (s1, m1), (s2, m2) = run_sim(config, go)
    assert s1 == 400 and "--max-num-seqs" in m1
    assert s2 == 400 and "maximum context length is 32768 tokens" in m2


# -- timing ---------------------------------------------------------------------------------------


def test_ttft_and_itl_match_the_config() -> None:
    config = dataclasses.replace(
        INSTANT, ttft_ms=100, itl_ms=10, itl_ms_per_seq=0, prefill_us_per_token=0
    )
    body = chat_body(stream=True, max_tokens=30, ignore_eos=True)

    async def go(s: aiohttp.ClientSession) -> list[tuple[float, list[float], Any]]:
        return list(await asyncio.gather(*(timed_stream(s, body) for _ in range(4))))

    results = run_sim(config, go)
    ttft = statistics.median(r[0] for r in results)
    itl = statistics.median(b - a for r in results for a, b in zip(r[1], r[1][1:], strict=False))
    assert 0.098 <= ttft <= 0.120, ttft  # 100 ms; the upper slack is for a busy CI machine
    assert 0.0085 <= itl <= 0.0115, itl


def test_prefill_cost_adds_to_ttft() -> None:
    config = dataclasses.replace(INSTANT, ttft_ms=20, prefill_us_per_token=1000, itl_ms=1)

    async def go(s: aiohttp.ClientSession) -> float:
        # 400 characters -> 100 prompt tokens -> 100 ms of prefill.
        ttft, _, _ = await timed_stream(s, chat_body(400, stream=True, max_tokens=2))
        return ttft

    assert 0.115 <= run_sim(config, go) <= 0.145


def test_queueing_beyond_max_num_seqs() -> None:
    config = dataclasses.replace(
        INSTANT, max_num_seqs=2, ttft_ms=50, itl_ms=10, itl_ms_per_seq=0, prefill_us_per_token=0
    )
    body = chat_body(stream=True, max_tokens=20, ignore_eos=True)

    async def go(s: aiohttp.ClientSession) -> list[float]:
        results = await asyncio.gather(*(timed_stream(s, body) for _ in range(4)))
        return sorted(r[0] for r in results)

    ttfts = run_sim(config, go)
    # One request lasts 50 ms + 19 x 10 ms = 240 ms; the last two wait for that.
    assert max(ttfts[:2]) < 0.08
    wait = statistics.mean(ttfts[2:]) - statistics.mean(ttfts[:2])
    assert 0.22 <= wait <= 0.27, ttfts


def test_client_disconnect_frees_its_slot() -> None:
    config = dataclasses.replace(INSTANT, max_num_seqs=1, ttft_ms=0, itl_ms=20)

    async def go(s: aiohttp.ClientSession) -> float:
        body = chat_body(stream=True, max_tokens=200, ignore_eos=True)
        async with s.post("/v1/chat/completions", json=body) as r:
            await r.content.readline()  # the first event arrived: it is running
        # The first stream (4 s long) is abandoned; the next request must not wait for it.
        ttft, _, _ = await timed_stream(s, chat_body(stream=True, max_tokens=2))
        return ttft

    assert run_sim(config, go) < 0.2


def test_timing_log(tmp_path: Path) -> None:
    path = tmp_path / "timing.jsonl"
    config = dataclasses.replace(INSTANT, ttft_ms=20, itl_ms=5, timing_log=str(path))

    async def go(s: aiohttp.ClientSession) -> list[str]:
        ids = []
        for _ in range(3):
            events = await post_stream(
                s, "/v1/chat/completions", chat_body(stream=True, max_tokens=6, ignore_eos=True)
            )
            ids.append(json.loads(events[0])["id"])
        return ids

    ids = run_sim(config, go)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in records] == ids
    for r in records:
        assert r["tokens"] == 6 and r["status"] == 200
        assert r["recv_ns"] <= r["first_token_ns"] <= r["last_token_ns"] <= r["end_ns"]
        assert 0.015 <= (r["first_token_ns"] - r["recv_ns"]) / 1e9 <= 0.1
        assert r["first_due_ns"] == r["recv_ns"] + 20_000_000
        assert abs(r["first_token_ns"] - r["first_due_ns"]) < 50e6
        assert r["late_max_ns"] >= 0 and isinstance(r["late_mean_ns"], int)


# -- config, CLI and the process ------------------------------------------------------------------


def test_config_flags_presets_and_validation() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(
        parser.parse_args(["--preset", "llama-8b-a100", "--itl-ms", "12", "--burst"])
    )
    assert config == dataclasses.replace(PRESETS["llama-8b-a100"], itl_ms=12.0, burst=True)
    assert config_from_args(parser.parse_args([])) == SimConfig() == PRESETS["fast"]
    names = config_from_args(parser.parse_args(["--served-model-name", "a", "b"]))
    assert names.served_model_name == ("a", "b")
    assert PRESETS["instant"].ttft_ms == PRESETS["instant"].itl_ms == 0
    with pytest.raises(ValueError, match="--itl-ms must be >= 0"):
        SimConfig(itl_ms=-1)
    with pytest.raises(ValueError, match="--error-rate must be between 0 and 1"):
        SimConfig(error_rate=1.5)
    with pytest.raises(ValueError, match="--kv-tokens"):
        SimConfig(kv_tokens=100, max_model_len=1000)


def test_main_rejects_bad_flags_with_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--port", "0", "--itl-ms", "-1"])
    assert exc.value.code == 2
    assert "--itl-ms must be >= 0." in capsys.readouterr().err


def test_serve_subprocess_prints_its_port_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfbench.sim", "--port", "0", "--preset", "instant"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"perfbench sim listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}/health"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        out, err = proc.communicate()
        assert out == "" and err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
