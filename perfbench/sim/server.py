"""The HTTP face of the simulated engine: aiohttp routes in vLLM's OpenAI-compatible shape.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming and not),
``GET /v1/models``, ``GET /health``, ``GET /version`` and ``GET /metrics``. A request is read into
a :class:`~perfbench.sim.request.GenRequest`, given its output (lengths, texts, faults) from its own
seeded generator, then either handed to the :class:`~perfbench.sim.engine.Engine`, which decides
when each token is written, or, with ``--burst``, written whole at once.

With ``--answers``, a request whose key text is in the answer book gets answer texts instead of
the pool's words (:mod:`perfbench.sim.answers`), at the lengths planned as for any other request;
its ``x-perfbench-sim-answer`` header (and timing-log record) says, per choice, whether the draw
was correct, how many reasoning tokens were written and where the first answer's step ends.

Determinism: each request gets a ``random.Random`` seeded from ``--seed`` and the request's
arrival number, or, when the body carries a ``seed``, from ``--seed``, that seed and the prompt's
token count (so a seeded request gets the same output whatever the arrival order). A greedy
request (``temperature`` 0) draws its output (length, text, answer) from ``--seed`` and a digest
of its model, endpoint and prompt alone, as a real engine's greedy decoding depends on nothing
else; its faults still come from the arrival draw (a fault is the engine's, not the model's).
With ``--batch-variance`` a greedy output also depends on the batch it was decoded in
(:mod:`perfbench.sim.variance`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

import msgspec
from aiohttp import web

from . import metrics, wire
from .answers import Answer, AnswerRow, compose
from .arrival import arrival_ns
from .config import SimConfig
from .engine import Engine, Sequence
from .faults import NO_STEP, FaultPlan, draw_faults
from .prefix import BLOCK_TOKENS, PrefixCache
from .request import GenRequest, RequestError, parse_request
from .stream import ResponseStream, Token, usage_tail
from .timing_log import TimingLog
from .tokens import TokenPool, output_length
from .variance import prompt_digest

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
JSON_HEADERS = {"Content-Type": "application/json"}
BURST_CACHE_SIZE = 4096
ANSWER_HEADER = "x-perfbench-sim-answer"


@dataclass
class Output:
    """What one request will generate, decided before it is queued."""

    lengths: list[int]
    finish_reasons: list[str]
    reasoning_k: list[int]
    faults: FaultPlan
    starts: list[int]  # where each choice's text begins in the token pool
    # An answered request: its own token run (in place of the shared pool) and each answer.
    pool: tuple[Token, ...] | None = None
    answers: list[Answer] | None = None
    tool: tuple[str, str] | None = None  # a tool call: (call id, function name)
    cached_tokens: int | None = None  # prompt tokens found in the prefix cache (None: no cache)
    reported_cached: int | None = None  # ... as usage reports them (--enable-prompt-tokens-details)
    digest: int = 0  # a greedy request's prompt digest (0: sampled)
    row: AnswerRow | None = None  # an answered request's gold answer (a flip draws again)
    answer_ratio: float | None = None  # ... and the reasoning ratio its answers were drawn with
    diverged: tuple[int, int] | None = None  # --batch-variance: (first changed step, batch size)

    def headers(self, base: dict[str, str]) -> dict[str, str]:
        if self.answers is None:
            return base
        return {**base, ANSWER_HEADER: ",".join(a.header() for a in self.answers)}

    @property
    def completion_tokens(self) -> int:
        return sum(self.lengths)

    @property
    def engine_reason(self) -> str:
        """Why the engine stopped, as vLLM's metrics count it: a tool call is a ``stop``."""
        reason = self.finish_reasons[0]
        return "stop" if reason == "tool_calls" else reason

    def reasoning_tokens(self, config: SimConfig, chat: bool) -> int | None:
        return sum(self.reasoning_k) if chat and config.reasoning_ratio > 0 else None


@dataclass
class SimState:
    config: SimConfig
    engine: Engine
    timing_log: TimingLog | None = None
    arrivals: int = 0
    base_seed: int = field(default_factory=lambda: int.from_bytes(os.urandom(8), "little"))
    burst_cache: dict[tuple[Any, ...], list[bytes]] = field(default_factory=dict)
    started: int = field(default_factory=lambda: int(time.time()))

    pool: TokenPool = field(init=False)
    prefix: PrefixCache | None = field(init=False)

    def __post_init__(self) -> None:
        if self.config.seed is not None:
            self.base_seed = self.config.seed
        self.pool = TokenPool(self.base_seed, self.config.max_model_len)
        blocks = self.config.kv_tokens // BLOCK_TOKENS
        # --burst measures the client at full speed: no cache to look up on its path
        off = self.config.no_prefix_caching or self.config.burst
        self.prefix = None if off else PrefixCache(blocks)

    def rng_for(self, req: GenRequest) -> random.Random:
        """The request's arrival draw: its faults, and its output unless it is greedy."""
        self.arrivals += 1
        if req.seed is not None:
            key = f"{self.base_seed}/seed/{req.seed}/{req.prompt_tokens}"
            return random.Random(key)
        return random.Random(self.base_seed * 1_000_003 + self.arrivals)

    def plan(self, req: GenRequest, row: AnswerRow | None = None) -> Output:
        """Decide the request's output, or raise RequestError if it can never be served.

        ``row``: the request's gold answer, if the answer book has it.
        """
        c = self.config
        room = c.max_model_len - req.prompt_tokens
        wanted = req.max_tokens if req.max_tokens is not None else max(room, 0)
        if room < 1 or wanted > room:
            raise RequestError(
                f"This model's maximum context length is {c.max_model_len} tokens. However, you "
                f"requested {req.prompt_tokens + wanted} tokens ({req.prompt_tokens} in the "
                f"messages, {wanted} in the completion). Please reduce the length of the "
                "messages or completion."
            )
        rng = self.rng_for(req)
        digest = prompt_digest(req.model, req.chat, req.text) if req.greedy else 0
        # greedy: the output from the prompt alone (the natural length always drawn, so that
        # ignore_eos does not move the text: a longer cap only extends the same output)
        said = random.Random((self.base_seed << 64) | digest) if digest else rng
        lengths: list[int] = []
        for _ in range(req.n):
            if req.ignore_eos and not digest:
                length = wanted
            else:
                natural = output_length(
                    said, c.output_len_dist, c.output_len_mean, c.output_len_sigma
                )
                length = wanted if req.ignore_eos else min(max(natural, req.min_tokens), wanted)
            lengths.append(length)
        why = self.engine.check(req.n, req.prompt_tokens + sum(lengths))
        if why:
            raise RequestError(why)
        finish = ["length" if length >= wanted else "stop" for length in lengths]
        ratio = c.reasoning_ratio if req.chat else 0.0
        reasoning_k = [round(ratio * length) for length in lengths]
        faults = draw_faults(c, rng, max(lengths))
        starts = [self.pool.start(said) for _ in lengths]
        out = Output(lengths, finish, reasoning_k, faults, starts, digest=digest)
        if self.prefix is not None:
            out.cached_tokens = self.prefix.lookup(req.text, req.prompt_tokens)
            if c.enable_prompt_tokens_details:
                out.reported_cached = out.cached_tokens
        if req.tool is not None:
            self._tool_call(out, req.tool)
        elif row is not None:
            self._answer(out, row, said, ratio)
        return out

    def diverge_from(self, out: Output, step: int, batch: int) -> bool:
        """--batch-variance: each choice still generating at ``step`` continues as another text
        from there on (see :mod:`perfbench.sim.variance`); False when none changed. Records the
        first step whose token changed, and ``batch``, in ``out.diverged``."""
        shared = self.pool.tokens
        pool = out.pool if out.pool is not None else shared
        rng = random.Random((out.digest << 32) ^ (step << 16) ^ batch)
        runs: list[list[Token]] = []
        first: int | None = None
        for i, (start, length) in enumerate(zip(out.starts, out.lengths, strict=True)):
            run = list(pool[start : start + length])
            if step < length:
                other = self._other_text(out, i, length, run[step], step, rng)
                at = next((k for k in range(step, length) if other[k] != run[k]), None)
                if at is not None:
                    run[at:] = other[at:]
                    first = at if first is None else min(first, at)
            runs.append(run)
        if first is None:
            return False
        out.diverged = (first, batch)
        starts = list(itertools.accumulate((len(r) for r in runs[:-1]), initial=0))
        out.pool = tuple(itertools.chain.from_iterable(runs))
        out.starts[:] = starts  # in place: the response stream reads this list
        return True

    def _other_text(
        self, out: Output, i: int, length: int, replaced: Token, step: int, rng: random.Random
    ) -> list[Token]:
        """Choice ``i``'s text had its token at ``step`` flipped: another answer to the same
        question, or another run of the pool whose token at ``step`` is not ``replaced``."""
        if out.row is not None:
            return self._compose(out.row, length, rng, out.answer_ratio).tokens
        tokens = self.pool.tokens
        at = self.pool.start(rng)
        for _ in range(TokenPool.SIZE):  # the pool is random: the first or second try differs
            if tokens[at + step] != replaced:
                break
            at = (at + 1) % TokenPool.SIZE
        return list(tokens[at : at + length])

    def _tool_call(self, out: Output, tool: tuple[str, str]) -> None:
        """Each choice calls the request's first tool: its arguments, ``{"<first parameter>":
        "<words>"}``, streamed one piece a token, at the planned length."""
        name, param = tool
        tokens: list[Token] = []
        starts: list[int] = []
        for start, length in zip(out.starts, out.lengths, strict=True):
            starts.append(len(tokens))
            if length == 1:
                pieces = ["{}"]
            else:
                words = [
                    w.replace('"', "").replace("\\", "") for w in self.pool.text(start, length - 2)
                ]
                pieces = ['{"' + param + '": "', *words, '"}']
            tokens += [(p, msgspec.json.encode(p)) for p in pieces]
        out.pool = tuple(tokens)
        out.starts = starts
        out.reasoning_k = [0] * len(out.lengths)
        out.finish_reasons = ["tool_calls"] * len(out.lengths)
        out.tool = ("chatcmpl-tool-" + os.urandom(8).hex(), name)

    def _answer(self, out: Output, row: AnswerRow, rng: random.Random, ratio: float) -> None:
        """Give each choice an answer to ``row`` instead of pool words, at its planned length."""
        out.answer_ratio = ratio if ratio > 0 else None
        answers = [self._compose(row, length, rng, out.answer_ratio) for length in out.lengths]
        tokens: list[Token] = []
        starts: list[int] = []
        for answer in answers:
            starts.append(len(tokens))
            tokens += answer.tokens
        out.pool = tuple(tokens)
        out.starts = starts
        out.reasoning_k = [a.reasoning_k for a in answers]
        out.answers = answers
        out.row = row

    def _compose(
        self, row: AnswerRow, length: int, rng: random.Random, ratio: float | None
    ) -> Answer:
        c = self.config
        return compose(
            row,
            length,
            rng,
            reasoning_ratio=ratio,
            accuracy=c.answer_accuracy,
            first=c.first_correct,
            thoughts=c.answer_thoughts,
        )


STATE = web.AppKey("perfbench_sim_state", SimState)


def build_app(config: SimConfig) -> web.Application:
    """The simulated engine as an aiohttp application, to serve with any aiohttp runner.

    Example::

        runner = web.AppRunner(build_app(SimConfig(itl_ms=10)))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    """
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = SimState(config=config, engine=Engine(config))
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/version", _version)
    app.router.add_get("/metrics", _metrics)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


async def _on_startup(app: web.Application) -> None:
    state = app[STATE]
    if state.config.timing_log:
        state.timing_log = TimingLog(state.config.timing_log)
        state.timing_log.start()


async def _on_shutdown(app: web.Application) -> None:
    # End every sequence so that open streams finish now instead of holding the shutdown.
    app[STATE].engine.close()


async def _on_cleanup(app: web.Application) -> None:
    state = app[STATE]
    if state.timing_log is not None:
        await state.timing_log.close()


# -- simple routes ------------------------------------------------------------------------------


async def _health(request: web.Request) -> web.Response:
    return web.Response()


async def _version(request: web.Request) -> web.Response:
    return _json({"version": "perfbench-sim"})


async def _models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    config = state.config
    data = [
        {
            "id": name,
            "object": "model",
            "created": state.started,
            "owned_by": "vllm",
            "root": name,
            "parent": None,
            "max_model_len": config.max_model_len,
        }
        for name in config.served_model_name
    ]
    return _json({"object": "list", "data": data})


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    text = metrics.render(state.engine, state.config.served_model_name[0])
    return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(obj), headers=JSON_HEADERS)


def _error(err: RequestError) -> web.Response:
    headers = {"Content-Type": "application/json"}
    if err.status == 429:
        headers["Retry-After"] = "1"
    body = wire.error_object(err.message, err.error_type, err.status, err.param)
    return web.Response(status=err.status, body=body, headers=headers)


# -- generation ---------------------------------------------------------------------------------


async def _chat(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


async def _generate(request: web.Request, *, chat: bool) -> web.StreamResponse:
    recv_ns = arrival_ns(request)
    state = request.app[STATE]
    state.engine.poll()
    config = state.config
    try:
        req = parse_request(
            await request.read(),
            chat=chat,
            models=config.served_model_name,
            length_hints=not config.ignore_length_hints,
        )
        book = config.answer_book
        row = book.lookup(req.key) if book is not None and req.key is not None else None
        out = state.plan(req, row)
    except RequestError as err:
        return _error(err)
    rid = wire.new_id(chat)
    if out.faults.status:
        _log(state, rid, recv_ns, None, out.faults.status, out, tokens=0)
        status = out.faults.status
        message = (
            "Rate limit exceeded (simulated); retry after 1 second."
            if status == 429
            else "The simulated engine failed (injected error)."
        )
        return _error(RequestError(message, status=status))
    if config.burst:
        return await _burst(request, state, req, out, rid, recv_ns)
    if req.stream:
        return await _stream(request, state, req, out, rid, recv_ns)
    return await _whole(request, state, req, out, rid, recv_ns)


def _response_stream(
    state: SimState,
    req: GenRequest,
    out: Output,
    rid: str,
    transport: asyncio.Transport | None,
) -> ResponseStream:
    enc = wire.Encoder(
        chat=req.chat,
        rid=rid,
        model=req.model,
        n=req.n,
        reasoning_field=state.config.reasoning_field,
    )
    tail = usage_tail(
        enc,
        req.prompt_tokens,
        out.completion_tokens,
        out.reasoning_tokens(state.config, req.chat),
        req.include_usage,
        out.reported_cached,
    )
    return ResponseStream(
        transport,
        enc,
        pool=out.pool if out.pool is not None else state.pool.tokens,
        starts=out.starts,
        lengths=out.lengths,
        reasoning_k=out.reasoning_k,
        finish_reasons=out.finish_reasons,
        tail=tail,
        faults=out.faults,
        tool=out.tool,
    )


async def _stream(
    request: web.Request, state: SimState, req: GenRequest, out: Output, rid: str, recv_ns: int
) -> web.StreamResponse:
    """The timed streaming path: headers now, then each step when the engine says."""
    resp = web.StreamResponse(headers=out.headers(SSE_HEADERS))
    await resp.prepare(request)
    sink = _response_stream(state, req, out, rid, request.transport)
    vary = _vary(state, out)
    seq = Sequence(
        lengths=out.lengths,
        prompt_tokens=req.prompt_tokens,
        recv_ns=recv_ns,
        sink=sink,
        finish_reason=out.engine_reason,
        cached_tokens=out.cached_tokens or 0,
        stall_at=out.faults.stall_at,
        stall_ns=round(state.config.stall_ms * 1e6),
        vary=vary,
        on_diverge=_diverger(state, out, sink) if vary else None,
    )
    completed = await _run(state, seq)
    state.engine.poll()
    if not completed and sink.outcome == "ok":  # the engine shut down under this stream
        sink.outcome = "shutdown"
        if request.transport is not None:
            request.transport.abort()
    if sink.outcome in ("ok", "error_event"):
        try:
            await resp.write_eof()
        except ConnectionError:
            sink.outcome = "client_gone"
    _log(state, rid, recv_ns, seq, 200, out, tokens=sink.tokens_written)
    return resp


def _vary(state: SimState, out: Output) -> int:
    """The digest the engine flips a greedy request's tokens by (0: its tokens never flip)."""
    if not state.config.batch_variance or out.tool is not None:
        return 0
    return out.digest


def _diverger(
    state: SimState, out: Output, sink: ResponseStream | None
) -> Callable[[int, int], None]:
    """What the engine calls when a greedy request's token flips: the output (and the stream
    writing it, if any) continues as another text from that step on."""

    def diverge(step: int, batch: int) -> None:
        if state.diverge_from(out, step, batch) and sink is not None:
            assert out.pool is not None
            sink.pool = out.pool

    return diverge


async def _run(state: SimState, seq: Sequence) -> bool:
    """Run a sequence through the engine; True if every step was written."""
    state.engine.submit(seq)
    try:
        return await seq.done
    finally:
        if not seq.done.done():  # cancelled (server shutdown): free its place
            state.engine.cancel(seq)


class _StopAt:
    """Sink for a non-streaming request that a fault cuts short at ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def emit(self, step: int) -> bool:
        return step != self.step


async def _whole(
    request: web.Request, state: SimState, req: GenRequest, out: Output, rid: str, recv_ns: int
) -> web.StreamResponse:
    """A non-streaming request: the same engine timing, one JSON body at the end."""
    faults = out.faults
    cut = min(
        (at for at in (faults.disconnect_at, faults.error_event_at) if at != NO_STEP),
        default=NO_STEP,
    )
    vary = _vary(state, out)
    seq = Sequence(
        lengths=out.lengths,
        prompt_tokens=req.prompt_tokens,
        recv_ns=recv_ns,
        sink=_StopAt(cut) if cut != NO_STEP else None,
        finish_reason=out.engine_reason,
        cached_tokens=out.cached_tokens or 0,
        stall_at=faults.stall_at,
        stall_ns=round(state.config.stall_ms * 1e6),
        vary=vary,
        on_diverge=_diverger(state, out, None) if vary else None,
    )
    completed = await _run(state, seq)
    tokens = out.completion_tokens
    if cut != NO_STEP or not completed:
        if (cut == faults.disconnect_at or not completed) and request.transport is not None:
            _log(state, rid, recv_ns, seq, 0, out, tokens=0)
            request.transport.abort()
            return web.Response()  # never reaches the client
        _log(state, rid, recv_ns, seq, 500, out, tokens=0)
        return _error(RequestError("The simulated engine failed while generating.", status=500))
    body = _whole_body(state, req, out, rid)
    if faults.malformed_at != NO_STEP:
        body = body[: len(body) // 2]
    _log(state, rid, recv_ns, seq, 200, out, tokens=tokens)
    return web.Response(body=body, headers=out.headers(JSON_HEADERS))


def _whole_body(state: SimState, req: GenRequest, out: Output, rid: str) -> bytes:
    texts: list[tuple[str, str]] = []
    pool = out.pool if out.pool is not None else state.pool.tokens
    for start, length, k in zip(out.starts, out.lengths, out.reasoning_k, strict=True):
        words = [t[0] for t in pool[start : start + length]]
        texts.append(("".join(words[:k]), "".join(words[k:])))
    return wire.completion_body(
        chat=req.chat,
        rid=rid,
        model=req.model,
        texts=texts,
        finish_reasons=out.finish_reasons,
        tool=out.tool,
        prompt_tokens=req.prompt_tokens,
        completion_tokens=out.completion_tokens,
        reasoning_tokens=out.reasoning_tokens(state.config, req.chat),
        reasoning_field=state.config.reasoning_field,
        cached_tokens=out.reported_cached,
    )


async def _burst(
    request: web.Request, state: SimState, req: GenRequest, out: Output, rid: str, recv_ns: int
) -> web.StreamResponse:
    """``--burst``: no timing; the whole response is written as fast as the socket takes it.

    A fault-free stream is built from a cached template per (endpoint, model, lengths, reasoning
    split, finish reasons): the template's shared event prefix (id, created, model) is swapped for
    this response's in one ``bytes.join``, and the usage/[DONE] tail appended. Token texts are
    therefore the same for every stream of one shape in this mode (answered requests, whose
    texts are their own, are built without the cache). Burst requests skip the engine (no queue,
    no running/waiting gauges) and non-streaming ones get only the HTTP-status faults.
    """
    stats = state.engine.stats
    stats.prompt_tokens += req.prompt_tokens
    stats.generation_tokens += out.completion_tokens
    if not req.stream:
        body = _whole_body(state, req, out, rid)
        stats.finished[out.engine_reason] += 1
        _log(state, rid, recv_ns, None, 200, out, tokens=out.completion_tokens)
        return web.Response(body=body, headers=out.headers(JSON_HEADERS))
    if out.faults.name is None:
        # One Response, chunked like vLLM's, so that aiohttp writes headers, body and the final
        # chunk in a single send: on loopback each send costs more than building the body.
        whole = web.Response(
            body=_burst_body(state, req, out, rid), headers=out.headers(SSE_HEADERS)
        )
        whole.enable_chunked_encoding()
        stats.finished[out.engine_reason] += 1
        if state.timing_log is not None:
            # Handed to aiohttp now; it writes the whole response as soon as this returns.
            now = perf_counter_ns()
            state.timing_log.add(
                _record(
                    rid, 200, None, recv_ns, recv_ns, now, now, now, now, out.completion_tokens, out
                )
            )
        return whole
    # With faults: the same sink as the timed path, driven without timing.
    resp = web.StreamResponse(headers=out.headers(SSE_HEADERS))
    await resp.prepare(request)
    sink = _response_stream(state, req, out, rid, request.transport)
    first_ns = perf_counter_ns()
    for step in range(sink.steps):
        if step == out.faults.stall_at:
            await asyncio.sleep(state.config.stall_ms / 1e3)
        if not sink.emit(step):
            break
    if sink.outcome in ("ok", "error_event"):
        try:
            await resp.write_eof()
        except ConnectionError:
            sink.outcome = "client_gone"
    stats.finished[out.engine_reason if sink.outcome == "ok" else "abort"] += 1
    if state.timing_log is not None:
        end_ns = perf_counter_ns()
        state.timing_log.add(
            _record(
                rid,
                200,
                out.faults.name,
                recv_ns,
                recv_ns,
                first_ns,
                first_ns,
                end_ns,
                end_ns,
                sink.tokens_written,
                out,
            )
        )
    return resp


def _burst_body(state: SimState, req: GenRequest, out: Output, rid: str) -> bytes:
    if out.pool is not None:  # an answer: its own text, so no template to share
        sink = _response_stream(state, req, out, rid, None)
        return b"".join(sink.step_bytes(step) for step in range(sink.steps))
    key = (
        req.chat,
        req.model,
        tuple(out.lengths),
        tuple(out.reasoning_k),
        tuple(out.finish_reasons),
    )
    cache = state.burst_cache
    parts = cache.get(key)
    enc = wire.Encoder(
        chat=req.chat,
        rid=rid,
        model=req.model,
        n=req.n,
        reasoning_field=state.config.reasoning_field,
    )
    if parts is None:
        template = ResponseStream(
            None,
            enc,
            pool=state.pool.tokens,
            starts=out.starts,
            lengths=out.lengths,
            reasoning_k=out.reasoning_k,
            finish_reasons=out.finish_reasons,
            tail=b"",
        )
        body = b"".join(template.step_bytes(step) for step in range(template.steps))
        parts = body.split(enc.head)
        if len(cache) >= BURST_CACHE_SIZE:
            cache.clear()
        cache[key] = parts
    body = enc.head.join(parts)
    return body + usage_tail(
        enc,
        req.prompt_tokens,
        out.completion_tokens,
        out.reasoning_tokens(state.config, req.chat),
        req.include_usage,
        out.reported_cached,
    )


# -- timing log ---------------------------------------------------------------------------------


def _log(
    state: SimState,
    rid: str,
    recv_ns: int,
    seq: Sequence | None,
    status: int,
    out: Output,
    *,
    tokens: int,
) -> None:
    if state.timing_log is None:
        return
    end_ns = perf_counter_ns()
    name = out.faults.name
    if seq is None:
        record = _record(rid, status, name, recv_ns, None, None, None, None, end_ns, tokens, out)
    else:
        record = _record(
            rid,
            status,
            name,
            recv_ns,
            seq.admit_ns or None,
            seq.first_due_ns or None,
            seq.first_ns or None,
            seq.last_ns or None,
            end_ns,
            tokens,
            out,
        )
        steps = seq.step
        record["late_max_ns"] = seq.late_max_ns
        record["late_mean_ns"] = seq.late_sum_ns // steps if steps else None
    state.timing_log.add(record)


def _record(
    rid: str,
    status: int,
    fault: str | None,
    recv_ns: int,
    admit_ns: int | None,
    first_due_ns: int | None,
    first_ns: int | None,
    last_ns: int | None,
    end_ns: int,
    tokens: int,
    out: Output,
) -> dict[str, Any]:
    record = {
        "id": rid,
        "status": status,
        "fault": fault,
        "recv_ns": recv_ns,
        "admit_ns": admit_ns,
        "first_due_ns": first_due_ns,
        "first_token_ns": first_ns,
        "last_token_ns": last_ns,
        "end_ns": end_ns,
        "tokens": tokens,
    }
    if out.answers is not None:
        record["answers"] = [a.describe() for a in out.answers]
    if out.diverged is not None:
        record["diverged_at"], record["diverged_batch"] = out.diverged
    return record
