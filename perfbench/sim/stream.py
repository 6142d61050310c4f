"""One streamed response on the wire: what each engine step writes, faults included.

:class:`ResponseStream` is the engine's sink for a streaming request. For step ``s`` it writes, in
one HTTP chunk straight to the transport: the role event(s) if ``s == 0`` (vLLM sends the role
with the first output, not before), one token event per choice still generating, the finish
event of each choice that ends at ``s``, and after the last step the usage event (if asked) and
``[DONE]``. Faults from the request's :class:`~perfbench.sim.faults.FaultPlan` are applied here.
"""

from __future__ import annotations

import asyncio

from .faults import NO_FAULTS, FaultPlan
from .wire import DONE, Encoder, error_event, http_chunk

Token = tuple[str, bytes]


class ResponseStream:
    """Engine sink writing one streaming response's events (see the module docstring)."""

    __slots__ = (
        "transport",
        "enc",
        "pool",
        "starts",
        "reasoning_k",
        "lengths",
        "finish_reasons",
        "steps",
        "tail",
        "faults",
        "outcome",
        "tokens_written",
        "_single",
    )

    def __init__(
        self,
        transport: asyncio.Transport | None,
        enc: Encoder,
        *,
        pool: tuple[Token, ...],
        starts: list[int],
        lengths: list[int],
        reasoning_k: list[int],
        finish_reasons: list[str],
        tail: bytes,
        faults: FaultPlan = NO_FAULTS,
        tool: tuple[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.enc = enc
        self.pool = pool
        self.starts = starts
        if tool is not None:  # step 0 opens the call (its "reasoning" wrapper), later ones go on
            enc.calling(tool, len(lengths))
            reasoning_k = [1] * len(lengths)
        self.reasoning_k = reasoning_k
        self.lengths = lengths
        self.finish_reasons = finish_reasons
        self.steps = max(lengths)
        self.tail = tail  # usage event (if asked) + [DONE]
        self.faults = faults
        self.outcome = "ok"  # or "disconnect", "error_event", "client_gone", "shutdown"
        self.tokens_written = 0
        self._single = len(lengths) == 1

    def step_bytes(self, step: int) -> bytes:
        """The SSE bytes of one step, without faults and without HTTP framing."""
        enc = self.enc
        if self._single:
            k = self.reasoning_k[0]
            pre = enc.reasoning_pre[0] if step < k else enc.token_pre[0]
            data = pre + self.pool[self.starts[0] + step][1] + enc.post
            if step == 0:
                data = enc.role(0) + data
            if step == self.steps - 1:
                data += enc.finish(0, self.finish_reasons[0]) + self.tail
            self.tokens_written += 1
            return data
        parts: list[bytes] = []
        if step == 0:
            parts.extend(enc.role(i) for i in range(len(self.lengths)))
        for i, length in enumerate(self.lengths):
            if step < length:
                pre = enc.reasoning_pre[i] if step < self.reasoning_k[i] else enc.token_pre[i]
                parts += (pre, self.pool[self.starts[i] + step][1], enc.post)
                self.tokens_written += 1
                if step == length - 1:
                    parts.append(enc.finish(i, self.finish_reasons[i]))
        if step == self.steps - 1:
            parts.append(self.tail)
        return b"".join(parts)

    def emit(self, step: int) -> bool:
        """Write step ``step`` to the transport; False ends the sequence (fault or client gone)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.outcome = "client_gone"
            return False
        faults = self.faults
        if faults is NO_FAULTS:
            data = self.step_bytes(step)
        else:
            if step == faults.disconnect_at:
                self.outcome = "disconnect"
                transport.abort()
                return False
            if step == faults.error_event_at:
                self.outcome = "error_event"
                data = error_event("The simulated engine failed while generating.") + DONE
                if step == 0 and self.enc.chat:
                    data = self.enc.role(0) + data
                transport.write(http_chunk(data))
                return False
            data = self.step_bytes(step)
            if step == faults.malformed_at:
                data = self.enc.malformed() + data
        transport.write(http_chunk(data))
        return True


def usage_tail(
    enc: Encoder,
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int | None,
    include_usage: bool,
    cached_tokens: int | None = None,
) -> bytes:
    """What follows the last token: the usage event if the client asked for it, then [DONE]."""
    if include_usage:
        return enc.usage(prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens) + DONE
    return DONE
