"""Tool calls: a stream whose deltas carry ``tool_calls`` is timed like any other (the first
tool-call piece is the first token, each piece a token-carrying chunk), and the calls are
captured. Before, such a stream had no TTFT, no ITL and no text: every delta was skipped."""

from __future__ import annotations

import json

from perfbench.client.http import _State
from perfbench.client.wire import decode_chunk
from tests.conftest import perfbench, rows

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIMED = ("--ttft-ms", "50", "--itl-ms", "5", "--itl-ms-per-seq", "0",
         "--prefill-us-per-token", "0", "--seed", "9")  # fmt: skip


def _dataset(tmp_path, **extra):
    row = {"id": "w", "messages": [{"role": "user", "content": "Weather in Paris?"}],
           "tools": [WEATHER], **extra}  # fmt: skip
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


def test_a_tool_call_stream_is_timed_and_captured(sim, tmp_path):
    """50 ms to the first piece, then 5 ms a piece: TTFT, TTFA, ITL and TPOT as for text."""
    url = sim(*TIMED)
    db = tmp_path / "t.db"
    done = perfbench(
        "perf", "--url", url, "--dataset", "jsonl", "--dataset-path", str(_dataset(tmp_path)),
        "--number", "12", "--parallel", "3", "--max-tokens", "20", "--db", str(db), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (s,) = json.loads(done.stdout)["runs"]
    assert s["ok"] == 12
    assert 50 <= s["distributions"]["ttft_ms"]["values"]["p50"] < 62
    assert 4.9 <= s["mean_itl_ms"] < 5.8 and 4.9 <= s["mean_tpot_ms"] < 5.8
    for n_chunks, tokens, ttft, ttfa, finish, calls, text in rows(
        db,
        "SELECT n_chunks, completion_tokens, ttft_ms, ttfa_ms, finish_reason, tool_calls, "
        "output_text FROM requests",
    ):
        assert n_chunks == tokens == 20 and finish == "tool_calls" and text == ""
        assert ttfa == ttft  # a tool call is the answer, not thinking
        (call,) = json.loads(calls)
        assert call["name"] == "get_weather" and call["id"].startswith("chatcmpl-tool-")
        assert list(json.loads(call["arguments"])) == ["city"]  # the pieces join into JSON


def test_whole_responses_and_tool_choice_none(sim, tmp_path):
    url = sim("--preset", "instant", "--seed", "9")
    db = tmp_path / "w.db"
    done = perfbench(
        "perf", "--url", url, "--dataset", "jsonl", "--dataset-path", str(_dataset(tmp_path)),
        "--number", "3", "--no-stream", "--db", str(db), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for calls, finish in rows(db, "SELECT tool_calls, finish_reason FROM requests"):
        assert finish == "tool_calls" and json.loads(calls)[0]["name"] == "get_weather"
    db2 = tmp_path / "n.db"
    path = _dataset(tmp_path)
    done = perfbench(
        "perf", "--url", url, "--dataset", "jsonl", "--dataset-path", str(path), "--number", "3",
        "--extra-body", '{"tool_choice": "none"}', "--db", str(db2), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for calls, text in rows(db2, "SELECT tool_calls, output_text FROM requests"):
        assert calls is None and text


def test_pieces_of_several_calls_join_by_index_whatever_their_shape():
    st = _State()
    st.add_calls([{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x": '}},
                  {"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}}])  # fmt: skip
    st.add_calls([{"index": 1, "function": {"arguments": "{}"}},
                  {"index": 0, "function": {"arguments": "1}"}}])  # fmt: skip
    assert json.loads(st.tool_calls() or "") == [
        {"id": "a", "name": "f", "arguments": '{"x": 1}'},
        {"id": "b", "name": "g", "arguments": "{}"},
    ]
    assert _State().tool_calls() is None
    # TGI's shape: one object, not a list, and the arguments an object, not text
    tgi = _State()
    tgi.add_calls({"index": 0, "id": "c", "function": {"name": "h", "arguments": {"city": "Oslo"}}})
    assert json.loads(tgi.tool_calls() or "") == [
        {"id": "c", "name": "h", "arguments": '{"city": "Oslo"}'}
    ]
    chunk = decode_chunk(b'{"choices":[{"index":0,"delta":{"tool_calls":{"index":0,'
                         b'"function":{"name":"h","arguments":{"a":1}}}}}]}')  # fmt: skip
    assert chunk.choices[0].delta.tool_calls["function"]["arguments"] == {"a": 1}


def test_bad_tools_in_a_dataset_are_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "x", "tools": [{"type": "function"}]}) + "\n")
    done = perfbench("perf", "--dataset", "jsonl", "--dataset-path", str(path),
                     "--db", str(tmp_path / "b.db"))  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and '"tools"' in done.stderr
    assert not (tmp_path / "b.db").exists()
