"""The OpenAI wire format (request bodies, typed chunks, error bodies) and the specs that shape it:
endpoint resolution, ``ClientSpec.redacted()`` and ``LoadSpec`` validation.

The chunks are the shapes vLLM's OpenAI server sends (chat, completions, reasoning parsers,
usage trailers, errors inside a 200 stream).
"""

from __future__ import annotations

import json
import math

import msgspec
import pytest

from perfbench.client.wire import build_body, decode_chunk, error_message
from perfbench.config import ClientSpec, LoadSpec, resolve_endpoint
from perfbench.errors import ConfigError, UsageError

# resolve_endpoint ----------------------------------------------------------------------

CHAT = "http://h:8000/v1/chat/completions"
COMPLETIONS = "http://h:8000/v1/completions"
MODELS = "http://h:8000/v1/models"


@pytest.mark.parametrize(
    ("url", "api", "expected"),
    [
        ("http://h:8000", None, (CHAT, MODELS, "openai-chat")),
        ("http://h:8000/", None, (CHAT, MODELS, "openai-chat")),
        ("  http://h:8000/v1  ", None, (CHAT, MODELS, "openai-chat")),
        ("http://h:8000/v1/", None, (CHAT, MODELS, "openai-chat")),
        ("http://h:8000/v1/chat/completions", None, (CHAT, MODELS, "openai-chat")),
        ("http://h:8000/v1/chat/completions/", None, (CHAT, MODELS, "openai-chat")),
        ("http://h:8000/v1/completions", None, (COMPLETIONS, MODELS, "openai-completions")),
        ("http://h:8000", "openai-completions", (COMPLETIONS, MODELS, "openai-completions")),
        ("http://h:8000/v1", "openai-completions", (COMPLETIONS, MODELS, "openai-completions")),
        (
            "http://h:8000/v1/completions",
            "openai-completions",
            (COMPLETIONS, MODELS, "openai-completions"),
        ),
        ("http://h:8000/v1/chat/completions", "openai-chat", (CHAT, MODELS, "openai-chat")),
        (
            "https://gw.example.com/team/llm/v1/chat/completions",
            None,
            (
                "https://gw.example.com/team/llm/v1/chat/completions",
                "https://gw.example.com/team/llm/v1/models",
                "openai-chat",
            ),
        ),
        (
            "https://gw.example.com/v1?api-version=2024-06-01",
            None,
            (
                "https://gw.example.com/v1/chat/completions?api-version=2024-06-01",
                "https://gw.example.com/v1/models?api-version=2024-06-01",
                "openai-chat",
            ),
        ),
    ],
)
def test_resolve_endpoint(url, api, expected):
    assert resolve_endpoint(url, api) == expected


@pytest.mark.parametrize(
    ("url", "api"),
    [
        ("http://h:8000/v1/chat/completions", "openai-completions"),
        ("http://h:8000/v1/completions", "openai-chat"),
    ],
)
def test_endpoint_conflicting_with_api_is_a_config_error(url, api):
    with pytest.raises(ConfigError, match="--api") as info:
        resolve_endpoint(url, api)
    assert "--url" in str(info.value)
    with pytest.raises(ConfigError):
        ClientSpec(url=url, api=api)


@pytest.mark.parametrize(
    "url", ["ftp://h:8000/v1", "h:8000", "localhost:8000/v1", "127.0.0.1:8000", "", "http://"]
)
def test_non_http_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="--url") as info:
        resolve_endpoint(url, None)
    assert isinstance(info.value, UsageError)
    assert "http://" in str(info.value)  # names the fix


def test_client_spec_normalises_its_url_and_api():
    spec = ClientSpec(url="http://h:8000/v1/completions")
    assert spec.url == COMPLETIONS and spec.api == "openai-completions"
    assert spec.models_url == MODELS
    assert ClientSpec().api == "openai-chat" and ClientSpec().url is None


# build_body ----------------------------------------------------------------------------

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]


def _body(spec: ClientSpec, **kw) -> dict:
    args = {"model": "m", "messages": None, "text": None, "max_tokens": None, **kw}
    return json.loads(
        build_body(spec, args["model"], args["messages"], args["text"], args["max_tokens"])
    )


def test_chat_body_streaming():
    body = _body(ClientSpec(), messages=MESSAGES, max_tokens=64)
    assert body == {
        "model": "m",
        "messages": MESSAGES,
        "max_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_chat_body_from_text_and_sampling_parameters():
    spec = ClientSpec(min_tokens=8, temperature=0.0, top_p=0.9, top_k=20)
    body = _body(spec, text="Hello", max_tokens=32)
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    assert body["min_tokens"] == 8 and body["top_k"] == 20 and body["top_p"] == 0.9
    assert body["temperature"] == 0.0  # zero is a value, not "unset"
    assert body["max_tokens"] == 32


def test_unset_parameters_are_left_out_and_no_stream_options_without_streaming():
    body = _body(ClientSpec(stream=False), text="Hello")
    assert body == {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
    assert "stream_options" not in body and "stream" not in body


def test_completions_body():
    spec = ClientSpec(api="openai-completions", min_tokens=0, top_k=-1)
    body = _body(spec, text="Once upon", max_tokens=16)
    assert body == {
        "model": "m",
        "prompt": "Once upon",
        "max_tokens": 16,
        "min_tokens": 0,
        "top_k": -1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    flat = _body(ClientSpec(api="openai-completions", stream=False), messages=MESSAGES)
    assert flat == {"model": "m", "prompt": "Be brief.\n\nHi?"}


def test_extra_body_wins():
    spec = ClientSpec(
        temperature=0.7,
        extra_body={
            "temperature": 0.0,
            "stream_options": {"include_usage": False, "continuous_usage_stats": True},
            "max_tokens": 5,
            "chat_template_kwargs": {"enable_thinking": False},
        },
    )
    body = _body(spec, text="x", max_tokens=64)
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 5
    assert body["stream_options"] == {"include_usage": False, "continuous_usage_stats": True}
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


# decode_chunk --------------------------------------------------------------------------

_HEAD = (
    b'{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1718000000,'
    b'"model":"Qwen/Qwen3-0.6B","system_fingerprint":null,'
)


def test_role_chunk():
    c = decode_chunk(
        _HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        b'"logprobs":null,"finish_reason":null}]}'
    )
    assert c.id == "chatcmpl-abc" and c.usage is None and c.error is None
    (choice,) = c.choices
    assert choice.delta is not None and choice.delta.content == ""
    assert choice.finish_reason is None


def test_content_delta_with_unicode_and_escapes():
    c = decode_chunk(
        _HEAD
        + b'"choices":[{"index":0,"delta":{"content":"Caf\\u00e9 \xf0\x9f\x99\x82 \\"q\\"\\n"},'
        b'"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}'
    )
    assert c.choices[0].delta.content == 'Café 🙂 "q"\n'


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas(field):
    c = decode_chunk(
        _HEAD
        + b'"choices":[{"index":0,"delta":{"'
        + field.encode()
        + b'":"Let me think."},"logprobs":null,"finish_reason":null}]}'
    )
    delta = c.choices[0].delta
    assert getattr(delta, field) == "Let me think."
    assert delta.content is None


def test_finish_chunk():
    c = decode_chunk(
        _HEAD + b'"choices":[{"index":0,"delta":{"content":""},"logprobs":null,'
        b'"finish_reason":"length","stop_reason":null}]}'
    )
    assert c.choices[0].finish_reason == "length"


def test_usage_chunk_with_completion_token_details():
    c = decode_chunk(
        _HEAD + b'"choices":[],"usage":{"prompt_tokens":17,"total_tokens":117,'
        b'"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":16},'
        b'"completion_tokens_details":{"reasoning_tokens":60,"accepted_prediction_tokens":0}}}'
    )
    assert c.choices == []
    assert c.usage is not None
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (17, 100)
    assert c.usage.completion_tokens_details is not None
    assert c.usage.completion_tokens_details.reasoning_tokens == 60
    plain = decode_chunk(
        b'{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,'
        b'"completion_tokens_details":null}}'
    )
    assert plain.usage.completion_tokens == 2 and plain.usage.completion_tokens_details is None


def test_completions_chunk_and_non_streamed_response():
    c = decode_chunk(
        b'{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":'
        b'[{"index":0,"text":" world","logprobs":null,"finish_reason":null,"stop_reason":null,'
        b'"prompt_logprobs":null}],"usage":null}'
    )
    assert c.choices[0].text == " world"
    whole = decode_chunk(
        b'{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"m","choices":'
        b'[{"index":0,"message":{"role":"assistant","content":"42","reasoning_content":"sum",'
        b'"tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],'
        b'"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2},'
        b'"prompt_logprobs":null,"kv_transfer_params":null}'
    )
    message = whole.choices[0].message
    assert message is not None and (message.content, message.reasoning_content) == ("42", "sum")
    assert whole.usage.completion_tokens == 2


def test_unknown_fields_are_ignored_at_every_level():
    c = decode_chunk(
        b'{"id":"x","future":{"a":[1,2,{"b":null}]},"service_tier":"default","choices":[{"index":1,'
        b'"delta":{"content":"ok","tool_calls":[{"index":0,"function":{"arguments":"{}"}}],"new":1},'
        b'"matched_stop":2,"finish_reason":null}],"usage":{"completion_tokens":3,"extra":"y"}}'
    )
    assert c.choices[0].index == 1 and c.choices[0].delta.content == "ok"
    assert c.usage.completion_tokens == 3


def test_error_event_inside_a_200_stream():
    c = decode_chunk(
        b'{"error":{"object":"error","message":"The decoder prompt cannot be empty",'
        b'"type":"BadRequestError","param":null,"code":400}}'
    )
    assert c.error is not None
    assert c.error["message"] == "The decoder prompt cannot be empty"
    assert c.choices == [] and c.usage is None


def test_malformed_chunk_raises_a_decode_error():
    with pytest.raises(msgspec.DecodeError):
        decode_chunk(b'{"id":"x","choices":[{"delta":')
    with pytest.raises(msgspec.DecodeError):  # ValidationError is a DecodeError
        decode_chunk(b'{"choices":[{"delta":{"content":5}}]}')


# error_message -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            b'{"error":{"message":"Incorrect API key provided: sk-...","type":"invalid_request_error",'
            b'"param":null,"code":"invalid_api_key"}}',
            "HTTP 401: Incorrect API key provided: sk-...",
        ),
        (
            400,
            b'{"error":{"message":"This model\'s maximum context length is 4096 tokens.",'
            b'"type":"BadRequestError","param":null,"code":400}}',
            "HTTP 400: This model's maximum context length is 4096 tokens.",
        ),
        (
            404,
            b'{"object":"error","message":"The model `foo` does not exist.","type":"NotFoundError",'
            b'"param":null,"code":404}',
            "HTTP 404: The model `foo` does not exist.",
        ),
        (404, b'{"detail":"Not Found"}', "HTTP 404: Not Found"),
        (500, b"Internal Server Error", "HTTP 500: Internal Server Error"),
        (
            502,
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n",
            "HTTP 502: <html> <head><title>502 Bad Gateway</title></head> </html>",
        ),
        (503, b"", "HTTP 503"),
        (500, b"\xff\xfeoops", "HTTP 500: \ufffd\ufffdoops"),
        (429, b'{"error":"rate limited"}', "HTTP 429: rate limited"),
    ],
)
def test_error_message(status, body, expected):
    assert error_message(status, body) == expected


def test_fastapi_validation_detail_is_one_line():
    body = (
        b'{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required",\n'
        b'"input":{"messages":[]}}]}'
    )
    message = error_message(422, body)
    assert message.startswith("HTTP 422: ") and "Field required" in message and "\n" not in message


@pytest.mark.parametrize("n", [199, 200])
def test_error_message_at_the_limit_is_kept_whole(n):
    detail = "x" * n
    assert (
        error_message(500, json.dumps({"error": {"message": detail}}).encode())
        == f"HTTP 500: {detail}"
    )


def test_long_multi_line_error_is_cut_to_one_line_of_200():
    detail = "Traceback (most recent call last):\n" + "\n\t".join(
        f'  File "/app/vllm/entrypoints/x{i}.py", line {i}' for i in range(40)
    )
    for body in (json.dumps({"error": {"message": detail}}).encode(), detail.encode()):
        message = error_message(500, body)
        assert message.startswith("HTTP 500: Traceback (most recent call last): File ")
        rest = message[len("HTTP 500: ") :]
        assert len(rest) == 200 and rest.endswith("...")
        assert "\n" not in message and "\t" not in message and "  " not in message


# ClientSpec.redacted -------------------------------------------------------------------


def test_redacted_removes_the_key_and_secret_headers_only():
    spec = ClientSpec(
        url="http://h:8000",
        api_key="sk-live-123",
        headers=(
            ("Authorization", "Bearer sk-live-123"),
            ("X-Api-Key", "k-456"),
            ("X-Request-Id", "run-7"),
            ("Content-Type", "application/json"),
        ),
    )
    data = spec.redacted()
    assert "api_key" not in data
    assert data["headers"] == [
        ["Authorization", "<redacted>"],
        ["X-Api-Key", "<redacted>"],
        ["X-Request-Id", "run-7"],
        ["Content-Type", "application/json"],
    ]
    text = json.dumps(data)  # plain data, ready for the runs table
    assert "sk-live-123" not in text and "k-456" not in text
    assert data["url"] == CHAT and data["max_tokens"] == 256
    assert spec.api_key == "sk-live-123"  # the spec itself still has it


def test_api_key_is_not_in_the_repr():
    spec = ClientSpec(url="http://h:8000", api_key="sk-live-123")
    assert "sk-live-123" not in repr(spec) and "sk-live-123" not in str(spec)


def test_redacted_removes_a_password_in_the_url():
    data = ClientSpec(url="http://bench:hunter2@h:8000/v1").redacted()
    assert "hunter2" not in json.dumps(data)


# LoadSpec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"parallel": 0}, "--parallel"),
        ({"parallel": -3}, "--parallel"),
        ({"number": 0}, "--number"),
        ({"rate": 0.0}, "--rate"),
        ({"rate": -1.0}, "--rate"),
        ({"rate": math.nan}, "--rate"),
        ({"warmup": -1}, "--warmup"),
        ({"rate": math.inf, "number": None, "duration": 5.0}, "--number"),
        ({"ramp_from": 1.0, "ramp_to": 5.0, "parallel": None}, "--duration"),
        ({"ramp_from": 1.0, "parallel": None, "duration": 5.0}, "--ramp-to"),
        ({"rate": 2.0, "trace": "t.jsonl"}, "--trace"),
        ({"arrival": "uniform", "rate": 2.0}, "--arrival"),
        ({"duration": 0.0}, "--duration"),
        ({"burstiness": 0.0, "rate": 5.0}, "--burstiness"),
        ({"burstiness": math.inf, "rate": 5.0}, "--burstiness"),
        ({"max_concurrency": 0, "rate": 5.0}, "--max-concurrency"),
        ({"parallel": None}, "--parallel"),
    ],
)
def test_load_spec_rejects(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        LoadSpec(**kwargs)


def test_load_spec_accepts_the_edges():
    assert LoadSpec(parallel=1, number=1, warmup=0).concurrency == 1
    open_loop = LoadSpec(parallel=None, rate=math.inf, number=10)
    assert open_loop.open_loop and open_loop.concurrency is None
    with pytest.raises(ConfigError, match="--number"):
        LoadSpec(parallel=None, rate=math.inf, number=None, duration=5.0)
    assert LoadSpec(rate=2.0, max_concurrency=3).concurrency == 3
