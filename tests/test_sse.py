"""The SSE decoder, cut at every byte boundary (STYLE.md guideline 6).

The recorded stream is what vLLM's OpenAI server sends for a streamed chat completion with
``stream_options.include_usage``: a role chunk, content deltas (non-ASCII text, escaped quotes,
escaped newlines inside the JSON strings), a finish chunk, a usage chunk with ``"choices":[]``
and ``data: [DONE]``. However the bytes are cut into reads, the events must be the same.
(hypothesis is not installed, so random cuts use a fixed seed.)
"""

from __future__ import annotations

import json
import random

import pytest

from perfbench.client.sse import SSEDecoder

_HEAD = (
    b'{"id":"chatcmpl-9f2b6d1c0a4e4b1f","object":"chat.completion.chunk","created":1718000000,'
    b'"model":"Qwen/Qwen2.5-0.5B-Instruct","choices":[{"index":0,'
)
PAYLOADS = [
    _HEAD + b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
    _HEAD + b'"delta":{"content":"Caf\xc3\xa9 "},"logprobs":null,"finish_reason":null}]}',
    _HEAD
    + b'"delta":{"content":"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82"},"logprobs":null,"finish_reason":null}]}',
    _HEAD
    + b'"delta":{"content":" He said \\"data: hi\\"\\n\\n"},"logprobs":null,"finish_reason":null}]}',
    _HEAD
    + b'"delta":{"content":"line\\r\\nnext \\u00e9\\t: x"},"logprobs":null,"finish_reason":null}]}',
    _HEAD + b'"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}',
    b'{"id":"chatcmpl-9f2b6d1c0a4e4b1f","object":"chat.completion.chunk","created":1718000000,'
    b'"model":"Qwen/Qwen2.5-0.5B-Instruct","choices":[],"usage":{"prompt_tokens":17,'
    b'"total_tokens":23,"completion_tokens":6}}',
    b"[DONE]",
]
TEXT = 'Café 日本語 🙂 He said "data: hi"\n\nline\r\nnext é\t: x'
EXPECTED = [("", p) for p in PAYLOADS]
STREAM_LF = b"".join(b"data: " + p + b"\n\n" for p in PAYLOADS)
LINE_ENDS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def _stream(end: bytes) -> bytes:
    # the payloads hold no raw CR or LF bytes (JSON escapes them), so this only touches line ends
    return STREAM_LF.replace(b"\n", end)


def _feed(pieces: list[bytes]) -> list[tuple[str, bytes]]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.decode(piece)
    events += decoder.flush()
    assert decoder.flush() == []  # nothing is returned twice
    return events


def _once(stream: bytes) -> list[tuple[str, bytes]]:
    return _feed([stream])


def test_recorded_stream_decodes_to_its_events_and_the_text_survives():
    events = _once(STREAM_LF)
    assert events == EXPECTED
    text = "".join(
        c["delta"].get("content") or ""
        for _, data in events[:-1]
        for c in json.loads(data)["choices"]
    )
    assert text == TEXT
    assert json.loads(events[-2][1])["choices"] == []


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_whole_stream_with_each_line_end(end):
    assert _once(_stream(end)) == EXPECTED


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_split_in_two_at_every_byte_offset(end):
    stream = _stream(end)
    for cut in range(len(stream) + 1):
        assert _feed([stream[:cut], stream[cut:]]) == EXPECTED, f"cut at byte {cut}"


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_one_byte_at_a_time(end):
    stream = _stream(end)
    assert _feed([stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_random_cuts_into_many_reads(end):
    stream = _stream(end)
    rnd = random.Random(6)
    for _ in range(300):
        cuts = sorted(rnd.sample(range(1, len(stream)), rnd.randint(2, 40)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert _feed(pieces) == EXPECTED, cuts


@pytest.mark.parametrize(
    ("end", "boundary"),
    # a lone \r already ends a line, so a CRLF event is complete at the blank line's \r
    [(b"\n", b"\n\n"), (b"\r", b"\r\r"), (b"\r\n", b"\r\n\r")],
    ids=["lf", "cr", "crlf"],
)
def test_events_come_out_as_soon_as_their_blank_line_arrives(end, boundary):
    decoder = SSEDecoder()
    stream = _stream(end)
    seen: list[tuple[str, bytes]] = []
    for i in range(len(stream)):
        seen += decoder.decode(stream[i : i + 1])
        # after the bytes so far, exactly the events whose terminating blank line has arrived
        assert len(seen) == stream[: i + 1].count(boundary), i
    assert seen == EXPECTED
    assert decoder.flush() == []


def test_crlf_split_between_two_reads_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    # the \n finishes the \r of the last read; it is not a blank line ending the event
    assert decoder.decode(b"\ndata: b\r") == []
    assert decoder.decode(b"\n\r") == [("", b"a\nb")]
    assert decoder.decode(b"\ndata: c\r\n\r\n") == [("", b"c")]
    assert decoder.flush() == []


def test_cr_then_cr_in_the_next_read_is_a_blank_line():
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    assert decoder.decode(b"\rdata: b\r\r") == [("", b"a"), ("", b"b")]


def test_several_events_in_one_read():
    decoder = SSEDecoder()
    read = b'data: {"n":1}\n\ndata: {"n":2}\n\nevent: error\ndata: {"n":3}\n\ndata: [DONE]\n\n'
    assert decoder.decode(read) == [
        ("", b'{"n":1}'),
        ("", b'{"n":2}'),
        ("error", b'{"n":3}'),
        ("", b"[DONE]"),
    ]
    assert decoder.flush() == []


def test_several_events_in_one_read_after_a_partial_one():
    decoder = SSEDecoder()
    assert decoder.decode(b'data: {"n":') == []
    assert decoder.decode(b'1}\n\ndata: {"n":2}\n\n') == [("", b'{"n":1}'), ("", b'{"n":2}')]


def test_comments_and_keep_alives_are_ignored():
    decoder = SSEDecoder()
    assert decoder.decode(b": ping\n\n") == []
    assert decoder.decode(b":\n\n\n\n") == []
    assert decoder.decode(b": ping - 2024-06-10 12:00:00\r\n\r\n") == []
    # a comment inside an event neither ends it nor adds to its data
    assert decoder.decode(b"data: a\n: keep-alive\ndata: b\n\n") == [("", b"a\nb")]
    assert decoder.flush() == []


def test_named_error_event_and_the_name_does_not_leak_into_the_next_event():
    decoder = SSEDecoder()
    error = b'{"error":{"object":"error","message":"boom","type":"InternalServerError","code":500}}'
    events = decoder.decode(b"event: error\ndata: " + error + b"\n\ndata: {}\n\n")
    assert events == [("error", error), ("", b"{}")]


def test_event_named_message_is_the_default_event():
    decoder = SSEDecoder()
    assert decoder.decode(b"event: message\ndata: x\n\n") == [("", b"x")]


def test_multi_line_data_is_joined_with_newlines():
    decoder = SSEDecoder()
    assert decoder.decode(b'data: {\ndata:   "a": 1\ndata: }\n\n') == [("", b'{\n  "a": 1\n}')]
    # an empty data line contributes an empty line
    assert decoder.decode(b"data: a\ndata:\ndata: b\n\n") == [("", b"a\n\nb")]


def test_data_without_a_space_after_the_colon_and_only_one_space_stripped():
    decoder = SSEDecoder()
    assert decoder.decode(b'data:{"x":1}\n\n') == [("", b'{"x":1}')]
    assert decoder.decode(b"data:  two\n\n") == [("", b" two")]
    assert decoder.decode(b"event:error\ndata:x\n\n") == [("error", b"x")]


def test_id_retry_and_unknown_fields_are_ignored():
    decoder = SSEDecoder()
    assert decoder.decode(b"id: 42\nretry: 3000\ndata: x\nfoo: bar\n\n") == [("", b"x")]
    # an event with no data line is not dispatched
    assert decoder.decode(b"id: 43\n\nretry: 10\n\nevent: error\n\n") == []
    assert decoder.decode(b"data: y\n\n") == [("", b"y")]


def test_final_event_without_blank_line_comes_from_flush_once():
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\n\ndata: [DONE]\n") == [("", b"a")]
    assert decoder.flush() == [("", b"[DONE]")]
    assert decoder.flush() == []

    decoder = SSEDecoder()
    assert decoder.decode(b"data: [DONE]") == []  # not even a line end
    assert decoder.flush() == [("", b"[DONE]")]
    assert decoder.flush() == []

    decoder = SSEDecoder()
    assert decoder.decode(b"data: [DONE]\r") == []
    assert decoder.flush() == [("", b"[DONE]")]


def test_flush_after_complete_events_returns_nothing():
    decoder = SSEDecoder()
    assert decoder.decode(STREAM_LF) == EXPECTED
    assert decoder.flush() == []


def test_incomplete_event_is_not_returned_by_decode():
    decoder = SSEDecoder()
    assert decoder.decode(b'data: {"choices":[{"delta":{"content":"hel') == []
    assert decoder.decode(b'lo"}}]}\n') == []  # the line is complete, the event is not
    assert decoder.decode(b"\n") == [("", b'{"choices":[{"delta":{"content":"hello"}}]}')]


def test_empty_input():
    assert SSEDecoder().decode(b"") == []
    assert SSEDecoder().flush() == []
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\n") == []
    assert decoder.decode(b"") == []
    assert decoder.decode(b"\n") == [("", b"a")]
    assert _feed([b"", *[bytes([b]) for b in STREAM_LF], b""]) == EXPECTED


def test_empty_read_between_cr_and_lf():
    assert _feed([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [("", b"a\nb")]
