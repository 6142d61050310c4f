"""The OpenAI wire format: request bodies out, typed chunks in.

Decoding goes through typed ``msgspec`` Structs rather than ``json.loads``: fields we do not
name are skipped without being built, which is most of the per-token cost saved on the hot path
(see DESIGN.md, "The hot path, measured").
"""

from __future__ import annotations

from typing import Any

import msgspec

from perfbench.config import ClientSpec


class Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    # tool calls, or (streamed) pieces of them, decoded as plain JSON: servers differ in their
    # shape (a list, or one object; arguments as text, or as an object), and a shape this
    # client did not expect must not turn a good response into a malformed one
    tool_calls: Any = None


class Message(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: Any = None


class Choice(msgspec.Struct, gc=False):
    index: int = 0
    delta: Delta | None = None
    message: Message | None = None
    text: str | None = None
    finish_reason: str | None = None


class TokenDetails(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class PromptDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None


class Usage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    completion_tokens_details: TokenDetails | None = None
    prompt_tokens_details: PromptDetails | None = None


class Chunk(msgspec.Struct, gc=False):
    """One streamed event, or a whole non-streamed response: the same fields matter."""

    id: str | None = None
    choices: list[Choice] = []
    usage: Usage | None = None
    error: Any = None


decode_chunk = msgspec.json.Decoder(Chunk).decode
decode_chunks = msgspec.json.Decoder(list[Chunk]).decode
encode = msgspec.json.Encoder().encode


def build_body(
    spec: ClientSpec,
    model: str,
    messages: list[dict[str, Any]] | None,
    text: str | None,
    max_tokens: int | None,
    exact: bool = False,
    tools: list[Any] | None = None,
) -> bytes:
    """The JSON body of one request; ``extra_body`` is merged last and wins.

    ``exact`` asks for exactly ``max_tokens`` tokens with vLLM's and SGLang's ``min_tokens`` and
    ``ignore_eos``; servers that do not know them may refuse the request (turn it off with
    ``--extra-body '{"ignore_eos": false, "min_tokens": null}'`` or choose another dataset).
    """
    body: dict[str, Any] = {"model": model}
    if spec.api == "openai-chat":
        body["messages"] = messages if messages is not None else [{"role": "user", "content": text}]
        if tools:
            body["tools"] = tools
    else:
        body["prompt"] = text if text is not None else _flatten(messages or [])
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if spec.min_tokens is not None:
        body["min_tokens"] = spec.min_tokens
    if exact and max_tokens is not None:
        body["min_tokens"] = max_tokens
        body["ignore_eos"] = True
    for key in ("temperature", "top_p", "top_k"):
        value = getattr(spec, key)
        if value is not None:
            body[key] = value
    if spec.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(spec.extra_body)
    return encode(body)


def _flatten(messages: list[dict[str, Any]]) -> str:
    return "\n\n".join(str(m.get("content", "")) for m in messages)


def error_message(status: int, body: bytes) -> str:
    """A short, one-line message from an error response (OpenAI, vLLM and FastAPI shapes)."""
    detail = ""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        detail = body.decode("utf-8", "replace")
    else:
        if isinstance(data, dict):
            err = data.get("error", data.get("detail", data.get("message", "")))
            if isinstance(err, dict):
                err = err.get("message", err)
            detail = "" if err is None else str(err)
        else:
            detail = str(data)
    detail = " ".join(detail.split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
