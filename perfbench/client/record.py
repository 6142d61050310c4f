"""The records the client takes and hands on. Plain frozen data: no I/O, no library types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

STATUSES = (
    "ok",
    "connect",
    "timeout",
    "http",
    "disconnect",
    "malformed",
    "stream_error",
    "cancelled",
    "worker_lost",
    "unclassified",
    "in_flight",
)
"""Every request ends in exactly one of these.

ok: the response completed. connect: no connection could be made. timeout: the connect or read
timeout expired. http: a non-200 status before any streaming. disconnect: the connection closed
before the response was complete. malformed: a body or event that is not the expected JSON.
stream_error: the server sent an error event inside a 200 stream. cancelled: the run stopped
(Ctrl-C, SIGTERM, end of --duration) while the request was waiting or in flight.
worker_lost: the worker process (or Ray actor or node) that sent it died with it in flight.
unclassified: a failure imported from another tool's result file (``perfbench import``) that
does not say which kind it was; its message is kept.
in_flight: the row written when the request started, which its end replaces; one that stays is
a request in flight when the run's process was killed.
"""


#: the error an ``in_flight`` row carries: it is only read when its end was never written
IN_FLIGHT = "in flight when the run's process ended without recording it (killed?)"


def started(req: RequestSpec) -> RequestRecord:
    """The row a request gets when it starts, replaced by its record when it ends: after a
    ``kill -9`` the requests in flight are still in the database, as ``in_flight``."""
    return RequestRecord(
        index=req.index,
        warmup=req.warmup,
        prompt_id=req.prompt_id,
        status="in_flight",
        intended_ns=req.intended_ns,
        dataset=req.dataset,
        error=IN_FLIGHT,
        session=req.session,
        turn=req.turn,
        turns=req.turns,
    )


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request as the schedule hands it to the client: a ready body and when to send it."""

    index: int
    body: bytes
    intended_ns: int
    warmup: bool = False
    prompt_id: str | None = None
    prompt_chars: int = 0
    dataset: str | None = None  # carried through to the record, for per-dataset reports
    expected_tokens: int | None = None  # the exact output length asked for, if any
    prompt_tokens_local: int | None = None  # the prompt's count in the local tokenizer, if any
    session: int | None = None  # a conversation's: its session's number in the run
    turn: int | None = None  # ... this turn's (1 first)
    turns: int | None = None  # ... and how many its conversation has


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What happened to one request. Times are ``perf_counter_ns`` stamps (absolute, one clock).

    ``chunk_ns`` holds the arrival stamp of every token-carrying chunk, in order: the first is
    the TTFT stamp, the last the last-token stamp. Any stamp is None when the request never got
    that far.
    """

    index: int
    warmup: bool
    prompt_id: str | None
    status: str
    intended_ns: int
    sent_ns: int | None = None
    ttfb_ns: int | None = None
    first_token_ns: int | None = None
    first_content_ns: int | None = None
    last_token_ns: int | None = None
    end_ns: int | None = None
    chunk_ns: Sequence[int] = ()
    reasoning_chunks: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    token_source: str | None = None
    output_text: str = ""
    reasoning_text: str = ""
    finish_reason: str | None = None
    http_status: int | None = None
    error: str | None = None
    response_id: str | None = None
    streamed: bool = True
    dataset: str | None = None
    expected_tokens: int | None = None
    tool_calls: str | None = None  # JSON: the answer's tool calls, [{"id", "name", "arguments"}]
    cached_tokens: int | None = None  # prompt tokens the server took from its prefix cache
    session: int | None = None  # a conversation's turn: its session in the run, which turn,
    turn: int | None = None  # and of how many
    turns: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def durations_ms(self) -> dict[str, float | None]:
        """Every per-request figure of DESIGN.md's definitions, in ms (None where the request
        never got that far): this is their one implementation, and the store keeps what it
        returns. ``*_intended`` are measured from the plan, not from the send."""

        def ms(a: int | None, b: int | None) -> float | None:
            return None if a is None or b is None else (b - a) / 1e6

        n = len(self.chunk_ns)
        tpot = self.tpot_ns
        return {
            "schedule_lag_ms": ms(self.intended_ns, self.sent_ns),
            "ttfb_ms": ms(self.sent_ns, self.ttfb_ns),
            "ttft_ms": ms(self.sent_ns, self.first_token_ns),
            "ttfa_ms": ms(self.sent_ns, self.first_content_ns),
            "tpot_ms": None if tpot is None else tpot / 1e6,
            "itl_ms": (self.chunk_ns[-1] - self.chunk_ns[0]) / (n - 1) / 1e6
            if n > 1 and self.streamed
            else None,
            "e2e_ms": ms(self.sent_ns, self.end_ns),
            "ttft_intended_ms": ms(self.intended_ns, self.first_token_ns),
            "e2e_intended_ms": ms(self.intended_ns, self.end_ns),
        }

    def recounted(self, count: Callable[[str], int]) -> RequestRecord:
        """The record with its output tokens counted by a local tokenizer, where the server
        reported none (``token_source`` chunks or estimate becomes tokenizer); the server's
        ``usage`` always wins. Called off the event loop (by the store's writer thread)."""
        if self.token_source in (None, "usage"):
            return self
        tokens = count(self.reasoning_text + self.output_text)
        return replace(self, completion_tokens=tokens, token_source="tokenizer")

    @property
    def ttft_ns(self) -> int | None:
        if self.first_token_ns is None or self.sent_ns is None:
            return None
        return self.first_token_ns - self.sent_ns

    @property
    def e2e_ns(self) -> int | None:
        if self.end_ns is None or self.sent_ns is None:
            return None
        return self.end_ns - self.sent_ns

    @property
    def tpot_ns(self) -> float | None:
        """(last token − first token) / (output tokens − 1); None for 1-token or unstreamed."""
        n = self.completion_tokens
        if (
            not self.streamed
            or n is None
            or n < 2
            or self.first_token_ns is None
            or self.last_token_ns is None
        ):
            return None
        return (self.last_token_ns - self.first_token_ns) / (n - 1)
