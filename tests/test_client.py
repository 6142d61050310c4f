"""Protocol edge cases of the client, against crafted streams served over real HTTP.

A scripted clock (one tick per reading) pins the timing invariants exactly: what is stamped when,
and that role-only chunks, usage trailers and error events are treated as DESIGN.md says.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

from aiohttp import web

from perfbench.client import Client, RequestSpec
from perfbench.config import ClientSpec


def _event(
    delta: dict | None = None, finish: str | None = None, usage: dict | None = None
) -> bytes:
    chunk: dict = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


ROLE = _event({"role": "assistant", "content": ""})
USAGE = _event(None, usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
DONE = b"data: [DONE]\n\n"


def serve(
    parts: list[bytes], *, status: int = 200, pause: float = 0.01
) -> Callable[[], web.Application]:
    """An app whose chat endpoint writes ``parts`` one write at a time, ``pause`` apart."""

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        if status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=status)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for part in parts:
            await resp.write(part)
            await asyncio.sleep(pause)
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    def make() -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        return app

    return make


def fetch(parts: list[bytes], *, clock: Callable[[], int] | None = None, **kw: object):
    async def main():
        runner = web.AppRunner(serve(parts, **kw)())  # type: ignore[arg-type]
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            spec = ClientSpec(url=f"http://127.0.0.1:{port}", model="m")
            async with Client(spec, pool_size=1, **({"clock": clock} if clock else {})) as client:
                return await client.send(RequestSpec(0, b'{"model": "m"}', intended_ns=0))
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_role_chunk_is_not_a_token_and_usage_does_not_move_the_last_token():
    parts = [
        ROLE,
        _event({"content": "a"}),
        _event({"content": "b"}),
        _event({"content": "c"}, finish="stop"),
        USAGE,
        DONE,
    ]
    ticks = itertools.count(1000)
    r = fetch(parts, clock=lambda: next(ticks))
    assert r.status == "ok" and r.output_text == "abc" and r.finish_reason == "stop"
    assert len(r.chunk_ns) == 3
    assert r.first_token_ns == r.chunk_ns[0] and r.last_token_ns == r.chunk_ns[-1]
    # the role chunk arrived before the first token: TTFB < TTFT
    assert r.ttfb_ns is not None and r.ttfb_ns < r.first_token_ns
    # the usage chunk and [DONE] arrived after the last token; the end is later still
    assert r.end_ns is not None and r.end_ns > r.last_token_ns
    # latency identities: Σ gaps = last − first; TPOT = that / (n − 1)
    gaps = [b - a for a, b in zip(r.chunk_ns, r.chunk_ns[1:])]
    assert sum(gaps) == r.last_token_ns - r.first_token_ns
    assert r.tpot_ns == (r.last_token_ns - r.first_token_ns) / 2
    assert (r.prompt_tokens, r.completion_tokens, r.token_source) == (7, 3, "usage")
    assert r.sent_ns is not None and r.sent_ns < r.ttfb_ns


def test_reasoning_deltas_count_as_tokens_and_are_kept_apart():
    parts = [
        ROLE,
        _event({"reasoning_content": "think "}),
        _event({"reasoning": "more"}),
        _event({"content": "42"}, finish="stop"),
        DONE,
    ]
    r = fetch(parts)
    assert r.status == "ok"
    assert (r.reasoning_text, r.output_text) == ("think more", "42")
    assert len(r.chunk_ns) == 3 and r.reasoning_chunks == 2
    assert r.first_content_ns == r.chunk_ns[2] and r.first_token_ns == r.chunk_ns[0]
    # no usage from the server: one token per chunk, and the source says so
    assert r.completion_tokens == 3 and r.token_source == "chunks"
    assert r.reasoning_tokens == 2


def test_error_event_inside_a_200_fails_the_request():
    parts = [
        ROLE,
        _event({"content": "a"}),
        b'data: {"error": {"message": "engine died", "code": 500}}\n\n',
        DONE,
    ]
    r = fetch(parts)
    assert r.status == "stream_error" and "engine died" in (r.error or "")
    assert r.http_status == 200 and r.output_text == "a"


def test_named_error_event_fails_the_request():
    r = fetch([ROLE, b"event: error\ndata: overloaded\n\n"])
    assert r.status == "stream_error" and "overloaded" in (r.error or "")


def test_stream_without_done_or_finish_is_a_disconnect():
    r = fetch([ROLE, _event({"content": "a"})])
    assert r.status == "disconnect"


def test_finish_reason_without_done_is_accepted():
    r = fetch([ROLE, _event({"content": "a"}, finish="length")])
    assert r.status == "ok" and r.finish_reason == "length"


def test_malformed_event():
    r = fetch([ROLE, b'data: {"id": truncated\n\n', DONE])
    assert r.status == "malformed" and "undecodable" in (r.error or "")


def test_comments_keepalives_and_crlf_are_tolerated():
    parts = [
        b": keep-alive\r\n\r\n",
        ROLE.replace(b"\n", b"\r\n"),
        b": ping\n\n",
        _event({"content": "x"}, finish="stop"),
        DONE,
    ]
    r = fetch(parts)
    assert r.status == "ok" and r.output_text == "x" and len(r.chunk_ns) == 1


def test_events_split_across_writes_are_stamped_when_complete():
    whole = _event({"content": "hello"}, finish="stop")
    ticks = itertools.count()
    r = fetch([ROLE, whole[:20], whole[20:], DONE], clock=lambda: next(ticks), pause=0.02)
    assert r.status == "ok" and r.output_text == "hello"
    # the token is stamped at the read that completed it, not the one that began it
    assert r.first_token_ns is not None and r.ttfb_ns is not None
    assert r.first_token_ns - r.ttfb_ns >= 2


def test_http_error_status_carries_the_message():
    r = fetch([], status=404)
    assert (r.status, r.http_status) == ("http", 404) and r.error == "HTTP 404: nope"


def test_a_read_ending_inside_an_event_is_not_taken_for_a_whole_one():
    whole = _event({"content": "hello"}, finish="stop")
    # "data: {...}\n" then "\n": the first read holds one newline, at len - 1, not a whole event
    r = fetch([ROLE, whole[:-1], whole[-1:], DONE], pause=0.02)
    assert r.status == "ok" and r.output_text == "hello"
