"""vLLM's OpenAI-compatible wire format, pre-encoded.

A streamed response is hundreds of events that differ only in the token text, so each response
encodes its shared pieces once (:class:`Encoder`): everything before the token text and everything
after it. A token event is then ``pre + token_json + post``, where ``token_json`` was encoded once
for the whole vocabulary (:data:`perfbench.sim.tokens.VOCAB`). The result matches what vLLM writes,
byte for byte in shape (compact JSON, the same keys in the same order)::

    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}
    data: {"id":"chatcmpl-…",…,"choices":[{"index":0,"delta":{"content":" the"},"logprobs":null,"finish_reason":null}]}
    data: {"id":"chatcmpl-…",…,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}]}
    data: {"id":"chatcmpl-…",…,"choices":[],"usage":{"prompt_tokens":5,"total_tokens":21,"completion_tokens":16}}
    data: [DONE]

``/v1/completions`` is the same with ``"object":"text_completion"``, ``"text"`` in place of
``"delta"``, ``cmpl-`` ids and no role event. Every event ends with a blank line.

The HTTP/1.1 chunked framing lives here too (:func:`http_chunk`), because the timed path writes
straight to the transport instead of going through aiohttp's writer.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

DONE = b"data: [DONE]\n\n"
_json = msgspec.json.encode


def new_id(chat: bool) -> str:
    """A response id in vLLM's shape: ``chatcmpl-`` or ``cmpl-`` and 32 hex digits."""
    return ("chatcmpl-" if chat else "cmpl-") + os.urandom(16).hex()


def http_chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (``Transfer-Encoding: chunked``) carrying ``data``."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def error_object(message: str, error_type: str, code: int, param: str | None = None) -> bytes:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return _json({"error": {"message": message, "type": error_type, "param": param, "code": code}})


class Encoder:
    """The pre-encoded pieces of one response (one id, one model, one endpoint).

    ``token_pre[i]`` and ``post`` wrap a content token of choice ``i``; ``reasoning_pre[i]`` wraps
    a reasoning token. Everything else is built on demand, being written once per choice at most.
    """

    __slots__ = ("chat", "head", "token_pre", "reasoning_pre", "post", "_field")

    def __init__(
        self, *, chat: bool, rid: str, model: str, n: int, reasoning_field: str, created: int = 0
    ) -> None:
        self.chat = chat
        self._field = reasoning_field.encode()
        obj = b"chat.completion.chunk" if chat else b"text_completion"
        self.head = b'data: {"id":"%b","object":"%b","created":%d,"model":%b,"choices":[' % (
            rid.encode(),
            obj,
            created or int(time.time()),
            _json(model),
        )
        if chat:
            self.token_pre = tuple(
                self.head + b'{"index":%d,"delta":{"content":' % i for i in range(n)
            )
            self.reasoning_pre = tuple(
                self.head + b'{"index":%d,"delta":{"%b":' % (i, self._field) for i in range(n)
            )
            self.post = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        else:
            self.token_pre = tuple(self.head + b'{"index":%d,"text":' % i for i in range(n))
            self.reasoning_pre = self.token_pre
            self.post = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def calling(self, call: tuple[str, str], n: int) -> None:
        """Make every choice's tokens pieces of a tool call's arguments: what wraps the first
        piece (``reasoning_pre``, for a stream whose first step is its "reasoning") names the
        call (id, type, function name), as vLLM's tool parsers stream it; what wraps a later
        piece (``token_pre``) carries arguments only."""
        self.reasoning_pre = tuple(self._tool_pre(i, call) for i in range(n))
        self.token_pre = tuple(self._tool_pre(i, None) for i in range(n))
        self.post = b'}}]},"logprobs":null,"finish_reason":null}]}\n\n'

    def _tool_pre(self, index: int, call: tuple[str, str] | None) -> bytes:
        head = self.head + b'{"index":%d,"delta":{"tool_calls":[{"index":0,' % index
        if call is None:
            return head + b'"function":{"arguments":'
        rid, name = call
        return head + b'"id":%b,"type":"function","function":{"name":%b,"arguments":' % (
            _json(rid),
            _json(name),
        )

    def role(self, index: int) -> bytes:
        """The first event of a chat choice: the assistant role and empty content."""
        if not self.chat:
            return b""
        return self.head + (
            b'{"index":%d,"delta":{"role":"assistant","content":""},'
            b'"logprobs":null,"finish_reason":null}]}\n\n' % index
        )

    def finish(self, index: int, reason: str) -> bytes:
        """The event that closes a choice: empty delta (or text) and its finish_reason."""
        empty = b'"delta":{"content":""}' if self.chat else b'"text":""'
        rest = b'"logprobs":null,"finish_reason":"%b","stop_reason":null}]}\n\n' % reason.encode()
        return self.head + b'{"index":%d,%b,%b' % (index, empty, rest)

    def usage(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        reasoning_tokens: int | None,
        cached_tokens: int | None = None,
    ) -> bytes:
        """The trailing usage event (``"choices":[]``), sent when ``include_usage`` was asked."""
        return self.head + b'],"usage":%b}\n\n' % _json(
            usage_dict(prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens)
        )

    def malformed(self) -> bytes:
        """An event whose JSON is cut short, as a broken proxy or a buggy server would send."""
        return self.head[: self.head.index(b'"object"') + 4] + b"\n\n"


def error_event(message: str, error_type: str = "InternalServerError", code: int = 500) -> bytes:
    """An error inside a 200 stream, as vLLM sends when generation fails after streaming began."""
    return b"data: %b\n\n" % error_object(message, error_type, code)


def usage_dict(
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int | None,
    cached_tokens: int | None = None,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    if cached_tokens is not None:  # vLLM with --enable-prompt-tokens-details; SGLang always
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return usage


def completion_body(
    *,
    chat: bool,
    rid: str,
    model: str,
    texts: list[tuple[str, str]],
    finish_reasons: list[str],
    tool: tuple[str, str] | None = None,
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int | None,
    reasoning_field: str,
    cached_tokens: int | None = None,
) -> bytes:
    """A non-streaming ``chat.completion`` or ``text_completion`` object.

    ``texts[i]`` is choice ``i``'s (reasoning text, answer text).
    """
    choices: list[dict[str, Any]] = []
    for i, ((reasoning, content), reason) in enumerate(zip(texts, finish_reasons, strict=True)):
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning_tokens is not None:
                message[reasoning_field] = reasoning
            message["tool_calls"] = []
            if tool is not None:  # (call id, function name): the content is the arguments
                message["content"] = None
                message["tool_calls"] = [
                    {"id": tool[0], "type": "function",
                     "function": {"name": tool[1], "arguments": content}}
                ]  # fmt: skip
            choice: dict[str, Any] = {"index": i, "message": message}
        else:
            choice = {"index": i, "text": reasoning + content}
        choice.update(logprobs=None, finish_reason=reason, stop_reason=None)
        choices.append(choice)
    return _json(
        {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": usage_dict(prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens),
        }
    )
