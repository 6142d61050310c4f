"""Reading an OpenAI-style request body into the few facts the sim acts on.

Only what changes the simulated output is read. Of the sampling knobs only ``temperature`` 0
matters: it makes the request greedy, so that its output is a function of the prompt (as a real
engine's greedy decoding is); ``top_p``, ``top_k`` and any other temperature are accepted and
change nothing. A bad body raises :class:`RequestError`, which the server turns into an
OpenAI-style error object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .tokens import count_text_tokens


class RequestError(Exception):
    """A request the sim refuses, with the HTTP status and OpenAI error type to answer with."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param

    @property
    def error_type(self) -> str:
        return {404: "NotFoundError", 429: "RateLimitError"}.get(
            self.status, "BadRequestError" if self.status < 500 else "InternalServerError"
        )


@dataclass(frozen=True, slots=True)
class GenRequest:
    """One generation request, as the sim understands it."""

    chat: bool
    model: str
    prompt_tokens: int
    n: int
    max_tokens: int | None  # None: up to the model's length limit
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    seed: int | None
    # What an answer book is keyed on: the last user message's text (chat) or the prompt string
    # (completions); None for a token-id prompt or a chat with no user message.
    key: str | None = None
    # A chat request offering tools (and not forbidding them with tool_choice "none"): the
    # first tool's function name and its first parameter, which the sim's call fills in.
    tool: tuple[str, str] | None = None
    # The prompt as the prefix cache sees it: a chat's roles and contents, or the prompt.
    text: str = ""
    # temperature 0: greedy decoding, the output a function of the model and the prompt alone
    greedy: bool = False


_decoder = msgspec.json.Decoder()


def parse_request(
    raw: bytes, *, chat: bool, models: tuple[str, ...], length_hints: bool = True
) -> GenRequest:
    """Decode and validate a ``/v1/chat/completions`` or ``/v1/completions`` body."""
    try:
        body = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise RequestError(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")

    model = body.get("model")
    if model is None:
        model = models[0]
    elif not isinstance(model, str):
        raise RequestError("`model` must be a string.", param="model")
    elif model not in models:
        raise RequestError(f"The model `{model}` does not exist.", status=404)

    prompt_tokens, key = _chat_prompt(body) if chat else _completion_prompt(body)
    text = _prefix_text(body, chat)

    n = _int(body, "n", low=1) or 1
    max_tokens = _int(body, "max_completion_tokens", low=1) if chat else None
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", low=1)
    min_tokens = (_int(body, "min_tokens", low=0) or 0) if length_hints else 0
    if max_tokens is not None and min_tokens > max_tokens:
        raise RequestError("`min_tokens` must be <= `max_tokens`.", param="min_tokens")
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError("`stream_options` must be an object.", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError("`seed` must be an integer.", param="seed")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, (int, float))
        or isinstance(temperature, bool)
        or temperature < 0
    ):
        raise RequestError("`temperature` must be a number >= 0.", param="temperature")
    return GenRequest(
        chat=chat,
        model=model,
        prompt_tokens=prompt_tokens,
        n=n,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_bool(body, "ignore_eos") and length_hints,
        stream=stream,
        include_usage=include_usage,
        seed=seed,
        key=key,
        tool=_tool(body) if chat else None,
        text=text,
        greedy=temperature == 0,
    )


def _prefix_text(body: dict[str, Any], chat: bool) -> str:
    if not chat:
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else str(prompt)
    parts = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        parts.append(f"<{message['role']}>{content or ''}")
    return "".join(parts)


def _tool(body: dict[str, Any]) -> tuple[str, str] | None:
    """The tool the sim will call: the first of ``tools`` (OpenAI's function-tool shape)."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
        for t in tools
    ):  # fmt: skip
        raise RequestError(
            '`tools` must be a list of {"type": "function", "function": {"name": …}}.',
            param="tools",
        )
    if not tools or body.get("tool_choice") == "none":
        return None
    function = tools[0]["function"]
    properties = (function.get("parameters") or {}).get("properties") or {}
    first = next(iter(properties), "input") if isinstance(properties, dict) else "input"
    return function["name"], str(first)


def _chat_prompt(body: dict[str, Any]) -> tuple[int, str | None]:
    """The prompt's token count, and the content of its last user message (the answer key).

    A content given as parts is keyed on its text parts joined by newlines (as vLLM joins them).
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("`messages` must be a non-empty list.", param="messages")
    chars = 0
    key: str | list[Any] | None = None
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError("Each message must be an object with a `role`.", param="messages")
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
        elif content is not None:
            raise RequestError("A message `content` must be a string or a list.", param="messages")
        if message["role"] == "user":
            key = content
    if isinstance(key, list):  # rare: joined only here, for the one message that needs it
        key = "\n".join(
            p["text"] for p in key if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return count_text_tokens(chars), key


def _completion_prompt(body: dict[str, Any]) -> tuple[int, str | None]:
    """The prompt's token count, and the prompt string (the answer key) if it is one."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        return count_text_tokens(len(prompt)), prompt
    if isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
        return len(prompt), None
    if isinstance(prompt, list) and len(prompt) > 1:
        raise RequestError("The sim does not support batched prompts; send one per request.")
    raise RequestError("`prompt` must be a string or a list of token ids.", param="prompt")


def _int(body: dict[str, Any], key: str, *, low: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int or value < low:
        raise RequestError(f"`{key}` must be an integer >= {low}.", param=key)
    return value


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"`{key}` must be a boolean.", param=key)
    return value
