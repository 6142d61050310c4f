"""The client's SSE fast paths, cut at every byte boundary (STYLE.md guideline 6).

``Client._stream`` (perfbench/client/http.py) does not hand every read to ``SSEDecoder``: while
the decoder is idle, a read that is exactly one whole one-line ``data:`` event is decoded
directly, and a read of several such events goes through ``as_json_array``
(perfbench/client/sse.py) into one typed decode. Every other read goes to the decoder. These
tests drive the real ``_stream`` through its smallest seam, a response whose body yields the
given reads (``connection`` is None, so each read is stamped with one tick of the client's
clock: read k is stamped k, and an event that only ``flush()`` returns is stamped len(reads) + 1).

However a recorded stream is cut into reads, the client must take in the same chunks, in the
same order, end the same way and keep the same text as when the stream comes in one read, and
each chunk must be stamped with the read that completed its event: the read holding the line
end of its blank line, exactly as the incremental decoder (tested in test_sse.py) decides.
The oracle, ``_expected``, is that decoder plus ``Client._absorb``, with no fast path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from perfbench.client import http
from perfbench.client.http import Client, _Failed, _State
from perfbench.client.sse import SSEDecoder
from perfbench.client.wire import Chunk, decode_chunk, error_message
from perfbench.config import ClientSpec

SPEC = ClientSpec(url="http://127.0.0.1:9", model="Qwen/Qwen3-0.6B")

_ID = "chatcmpl-4c2a9e0b7d5f4e1a8b3c6d9e0f1a2b3c"


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    """One event as vLLM's OpenAI server writes it (compact JSON, raw UTF-8)."""
    chunk: dict[str, Any] = {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": 1718000000,
        "model": "Qwen/Qwen3-0.6B",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()


def _events(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


ROLE = _chunk({"role": "assistant", "content": ""})
USAGE = _chunk(
    None,
    usage={
        "prompt_tokens": 12,
        "total_tokens": 21,
        "completion_tokens": 9,
        "completion_tokens_details": {"reasoning_tokens": 3},
    },
)
DONE = b"data: [DONE]\n\n"

# a reasoning model's streamed chat completion with stream_options.include_usage (vLLM)
VLLM = _events(
    ROLE,
    _chunk({"reasoning_content": "Okay, the user"}),
    # JSON escapes inside the text
    _chunk({"reasoning_content": ' wants "ü"\t'}).replace("ü".encode(), b"\\u00fc"),
    _chunk({"reasoning": "\n"}),  # newer vLLM field name; an escaped newline
    _chunk({"content": "\n\nCafé "}),
    _chunk({"content": "日本語 🙂 data: x"}),  # multi-byte UTF-8: cuts fall inside characters
    _chunk({"content": "\r\n: not a comment"}),
    _chunk({"content": ""}, finish="stop", stop_reason=None),
    USAGE,
    b"[DONE]",
)

# the other shapes servers and proxies send: a keep-alive before the first event, comments, an
# ``id:`` line, ``data:`` without its space, a named ``message`` event, one event's JSON spread
# over three data lines, and a final [DONE] ended by a single newline (only flush() returns it)
_C1 = _chunk({"content": "Hi"})
_C2 = _chunk({"content": " there"}, finish="stop")
_SPLIT_AT = _C2.index(b'"choices"')
MIXED = (
    b": keep-alive\n\n"
    + b"id: 0\ndata: "
    + ROLE
    + b"\n\n: ping - 2024-06-10 12:00:00\n\n"
    + b"data:"
    + _chunk({"reasoning_content": "Let me think"})
    + b"\n\nevent: message\ndata: "
    + _C1
    + b"\n: keep-alive\n\ndata: "
    + _C2[:_SPLIT_AT]
    + b"\ndata: "
    + _C2[_SPLIT_AT:-2]
    + b"\ndata: "
    + _C2[-2:]
    + b"\n\n"
    + _events(USAGE)
    + b"data: [DONE]\n"
)

# an error inside a 200: vLLM writes an ``{"error": ...}`` object as a plain event, then [DONE]
ERROR_OBJECT = _events(
    ROLE,
    _chunk({"content": "The"}),
    _chunk({"content": " answer"}),
    b'{"error":{"object":"error","message":"CUDA out of memory","type":"InternalServerError",'
    b'"param":null,"code":500}}',
    _chunk({"content": " never"}),
    b"[DONE]",
)
# ... and other servers a named ``error`` event, after which the body ends
ERROR_EVENT = (
    _events(ROLE, _chunk({"content": "The"}), _chunk({"content": " answer"}))
    + b'event: error\ndata: {"error":{"message":"overloaded","type":"overloaded_error"}}\n\n'
)

# a server that sends no finish_reason: only [DONE] says the stream is complete, and a body that
# ends without it is a disconnect
NO_FINISH = _events(ROLE, _chunk({"content": "a"}), _chunk({"content": "b"}), USAGE, b"[DONE]")
CUT_OFF = NO_FINISH[: -len(DONE)]

STREAMS = {
    "vllm": VLLM,
    "mixed": MIXED,
    "error_object": ERROR_OBJECT,
    "error_event": ERROR_EVENT,
    "no_finish": NO_FINISH,
    "cut_off": CUT_OFF,
}
LINE_ENDS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}

# short streams for cutting at every pair of offsets (three reads): the same shapes, fewer fields
SHORT = _events(
    b'{"id":"c","choices":[{"delta":{"role":"assistant"}}]}',
    b'{"choices":[{"delta":{"reasoning":"hm"}}]}',
    '{"choices":[{"delta":{"content":"é"},"finish_reason":"stop"}]}'.encode(),
    b'{"choices":[],"usage":{"completion_tokens":2}}',
    b"[DONE]",
)
SHORT_ERROR = (
    _events(b'{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}')
    + b': ping\n\nevent: error\ndata: {"error":{"message":"boom"}}\n\n'
    + DONE
)


def _with_line_end(stream: bytes, end: bytes) -> bytes:
    # the payloads hold no raw CR or LF (JSON escapes them), so only line ends change
    return stream.replace(b"\n", end)


def _all_streams() -> list[tuple[str, bytes]]:
    return [
        (f"{name}-{end_name}", _with_line_end(stream, end))
        for name, stream in STREAMS.items()
        for end_name, end in LINE_ENDS.items()
    ]


ALL = _all_streams()
IDS = [name for name, _ in ALL]


@dataclass(frozen=True)
class Outcome:
    """What the client made of one response body."""

    chunks: list[Chunk]  # every chunk handed to ``_absorb``, up to one carrying an error
    stamps: list[int]  # the read each of those chunks was stamped with
    failure: tuple[str, str] | None  # the request's status and error, if it failed
    taken: dict[str, Any]  # the request's state, apart from stamps
    timing: dict[str, Any]  # its stamps: ttfb, first_content, chunk_ns

    def unstamped(self) -> tuple[Any, ...]:
        return self.chunks, self.failure, self.taken


_TIMING = ("ttfb", "first_content", "chunk_ns")


def _outcome(absorbed: list[tuple[Chunk, int]], failure: Any, st: _State) -> Outcome:
    for i, (chunk, _) in enumerate(absorbed):
        if chunk.error is not None:  # _absorb raised here: later chunks of its read were unseen
            absorbed = absorbed[: i + 1]
            break
    state = {name: getattr(st, name) for name in _State.__slots__}
    return Outcome(
        chunks=[c for c, _ in absorbed],
        stamps=[s for _, s in absorbed],
        failure=failure,
        taken={k: v for k, v in state.items() if k not in _TIMING},
        timing={k: state[k] for k in _TIMING},
    )


class _Body:
    """Stands in for aiohttp's ClientResponse: the body arrives in the given reads.

    ``connection`` is None, so ``_stream`` finds no stamping protocol and stamps each read with
    its own clock, which ticks once per read.
    """

    connection = None

    def __init__(self, reads: Sequence[bytes]) -> None:
        self.content = self
        self._reads = reads

    async def iter_any(self) -> AsyncIterator[bytes]:
        for read in self._reads:
            yield read


class _Recording(Client):
    """The real client, noting each chunk (and its stamp) that ``_stream`` hands to ``_absorb``."""

    def __init__(self) -> None:
        ticks = itertools.count(1)
        super().__init__(SPEC, pool_size=1, clock=lambda: next(ticks))
        self.absorbed: list[tuple[Chunk, int]] = []

    def _absorb(self, chunks: Sequence[Chunk], now: int, st: _State) -> None:  # type: ignore[override]
        self.absorbed += [(chunk, now) for chunk in chunks]
        Client._absorb(chunks, now, st)


async def _take(reads: Sequence[bytes]) -> Outcome:
    client = _Recording()
    st = _State()
    failure = None
    try:
        await client._stream(_Body(reads), st)  # type: ignore[arg-type]
    except _Failed as exc:
        failure = (exc.status, str(exc))
    return _outcome(client.absorbed, failure, st)


def _run(splits: Sequence[Sequence[bytes]]) -> list[Outcome]:
    """The client's outcome for each way of cutting the body into reads (one event loop)."""

    async def main() -> list[Outcome]:
        # aiohttp never hands over an empty read
        return [await _take([r for r in reads if r]) for reads in splits]

    return asyncio.run(main())


def _expected(reads: Sequence[bytes]) -> Outcome:
    """The oracle: the incremental decoder alone, each event stamped with the read completing it."""
    reads = [r for r in reads if r]
    decoder = SSEDecoder()
    completed = [(k, decoder.decode(read)) for k, read in enumerate(reads, 1)]
    completed.append((len(reads) + 1, decoder.flush()))
    st = _State()
    st.ttfb = 1
    absorbed: list[tuple[Chunk, int]] = []
    failure = None
    done = False
    try:
        for stamp, events in completed:
            for name, data in events:
                if data == b"[DONE]":
                    done = True
                elif name == "error":
                    raise _Failed("stream_error", error_message(200, data))
                else:
                    chunk = decode_chunk(data)
                    absorbed.append((chunk, stamp))
                    Client._absorb((chunk,), stamp, st)
    except _Failed as exc:
        failure = (exc.status, str(exc))
    if failure is None and not done and st.finish_reason is None:
        failure = ("disconnect", "the stream ended before [DONE] or a finish_reason")
    return _outcome(absorbed, failure, st)


def _check(stream: bytes, splits: list[list[bytes]]) -> int:
    """Every split of ``stream`` against the oracle and against the one-read outcome."""
    single = _expected([stream])
    assert _run([[stream]]) == [single]
    for reads, got in zip(splits, _run(splits), strict=True):
        cuts = list(itertools.accumulate(len(r) for r in reads))[:-1]
        assert got.unstamped() == single.unstamped(), f"reads cut at {cuts}"
        assert got == _expected(reads), f"reads cut at {cuts}"
    return len(splits)


# -- what the recorded streams decode to, in one read ----------------------------------------


def test_the_recorded_streams_decode_to_what_they_say():
    vllm = _run([[VLLM]])[0]
    assert vllm.failure is None
    assert len(vllm.chunks) == 9 and vllm.chunks[-1].usage is not None
    assert "".join(vllm.taken["reasoning"]) == 'Okay, the user wants "ü"\t\n'
    assert "".join(vllm.taken["content"]) == "\n\nCafé 日本語 🙂 data: x\r\n: not a comment"
    assert (vllm.taken["finish_reason"], vllm.taken["reasoning_chunks"]) == ("stop", 3)
    assert vllm.timing == {"ttfb": 1, "first_content": 1, "chunk_ns": [1] * 6}

    mixed = _run([[MIXED]])[0]
    assert mixed.failure is None and len(mixed.chunks) == 5
    assert (mixed.taken["content"], mixed.taken["reasoning"]) == (
        ["Hi", " there"],
        ["Let me think"],
    )
    assert mixed.taken["usage"] == decode_chunk(USAGE).usage

    error_object = _run([[ERROR_OBJECT]])[0]
    assert error_object.failure == ("stream_error", "HTTP 200: CUDA out of memory")
    assert error_object.taken["content"] == ["The", " answer"]

    error_event = _run([[ERROR_EVENT]])[0]
    assert error_event.failure == ("stream_error", "HTTP 200: overloaded")
    assert error_event.taken["content"] == ["The", " answer"]

    assert _run([[NO_FINISH]])[0].failure is None
    assert _run([[CUT_OFF]])[0].failure == (
        "disconnect",
        "the stream ended before [DONE] or a finish_reason",
    )


@pytest.mark.parametrize(("name", "stream"), ALL, ids=IDS)
def test_one_read_matches_the_incremental_decoder(name, stream):
    assert _run([[stream]]) == [_expected([stream])]


# -- the splits --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "stream"), ALL, ids=IDS)
def test_split_in_two_at_every_byte_offset(name, stream):
    splits = [[stream[:cut], stream[cut:]] for cut in range(len(stream) + 1)]
    assert _check(stream, splits) == len(stream) + 1


@pytest.mark.parametrize(("name", "stream"), ALL, ids=IDS)
def test_one_byte_per_read(name, stream):
    _check(stream, [[stream[i : i + 1] for i in range(len(stream))]])


@pytest.mark.parametrize(("name", "stream"), ALL, ids=IDS)
def test_random_cuts_into_many_reads(name, stream):
    rnd = random.Random(6)
    splits = []
    for _ in range(200):
        cuts = sorted(rnd.sample(range(1, len(stream)), rnd.randint(2, 40)))
        splits.append([stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])])
    _check(stream, splits)


def _event_ends(stream: bytes) -> list[int]:
    ends, at = [], 0
    while (at := stream.find(b"\n\n", at) + 2) >= 2:
        ends.append(at)
    return ends


@pytest.mark.parametrize("name", ["vllm", "error_object"])
def test_reads_of_whole_events_in_every_grouping(name):
    # the shape fast paths are for: each read holds one or more whole events; every way of
    # grouping the events into consecutive reads (2 ** (events - 1) of them)
    stream = STREAMS[name]
    inner = _event_ends(stream)[:-1]
    splits = [
        [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        for n in range(len(inner) + 1)
        for cuts in itertools.combinations(inner, n)
    ]
    assert _check(stream, splits) == 2 ** len(inner)


@pytest.mark.parametrize(
    "stream",
    [SHORT, _with_line_end(SHORT, b"\r\n"), SHORT_ERROR, _with_line_end(SHORT_ERROR, b"\r\n")],
    ids=["short-lf", "short-crlf", "short_error-lf", "short_error-crlf"],
)
def test_split_in_three_at_every_pair_of_offsets(stream):
    n = len(stream)
    splits = [[stream[:i], stream[i:j], stream[j:]] for i in range(n + 1) for j in range(i, n + 1)]
    assert _check(stream, splits) == (n + 1) * (n + 2) // 2


# -- the splits reach the fast paths -----------------------------------------------------------


class _Paths:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoded = 0  # reads given to the incremental decoder
        self.arrays = 0  # reads as_json_array turned into one array
        paths = self
        real = http.as_json_array

        class Counting(SSEDecoder):
            def decode(self, chunk: bytes) -> list[tuple[str, bytes]]:
                paths.decoded += 1
                return super().decode(chunk)

        def as_json_array(block: bytes) -> tuple[bytes, bool] | None:
            result = real(block)
            paths.arrays += result is not None
            return result

        monkeypatch.setattr(http, "SSEDecoder", Counting)
        monkeypatch.setattr(http, "as_json_array", as_json_array)


def test_the_splits_reach_both_fast_paths_and_the_decoder(monkeypatch):
    paths = _Paths(monkeypatch)
    ends = _event_ends(VLLM)
    one_event_per_read = [VLLM[a:b] for a, b in zip([0, *ends], ends)]
    _run([one_event_per_read])
    assert (paths.decoded, paths.arrays) == (0, 0)  # each read: the one-event shortcut

    _run([[VLLM]])
    assert (paths.decoded, paths.arrays) == (0, 1)  # the whole stream: one array

    _run([[VLLM[:100], VLLM[100:]]])
    assert paths.decoded == 2  # cut inside an event: the decoder
    _run([[_with_line_end(VLLM, b"\r\n")]])
    assert (paths.decoded, paths.arrays) == (3, 1)  # CRLF: the decoder


@pytest.mark.parametrize(
    "reads",
    [
        # the second read looks like a whole one-line event, but continues the first one's data
        [b'data: {"id":"c",\n', b'data: "choices":[{"delta":{"content":"b"}}]}\n\n', DONE],
        # ... or carries the data of an event named in the first
        [_events(_C1) + b"event: error\n", b'data: {"error":{"message":"boom"}}\n\n', DONE],
    ],
    ids=["multi-line-data", "named-error"],
)
def test_a_read_inside_an_event_goes_to_the_decoder(monkeypatch, reads):
    paths = _Paths(monkeypatch)
    assert _run([reads]) == [_expected(reads)]
    assert (paths.decoded, paths.arrays) == (2, 0)


def test_a_read_whose_last_event_runs_into_done_is_not_taken_whole():
    """``data: {..}}\\ndata: [DONE]\\n\\n`` in one read: the first event has no blank line before
    [DONE], so the read is not a run of whole events; the fast path must leave it to the decoder
    (it once cut the stray ``}`` off and accepted the event)."""
    from perfbench.client.sse import as_json_array

    assert as_json_array(b'data: {"id":"a"}}\ndata: [DONE]\n\n') is None
    assert as_json_array(b'data: {"id":"a"}\n\ndata: [DONE]\n\n') == (b'[{"id":"a"}]', True)
