"""The streaming HTTP client: ``RequestSpec`` in, ``RequestRecord`` out.

Timing rules (DESIGN.md, "Metric definitions"):

* The send stamp is taken when aiohttp writes the request to the socket (the body's write
  method, just before the one write of request line, headers and body), not when we asked for
  the request: on a busy loop the two differ by however long other tasks ran in between, and
  that wait is the client's, not the server's.
* Every read of the body is stamped when the event loop hands it from the socket to aiohttp's
  parser (``_StampingHandler.data_received``), not when our task gets to run; each event in that
  read shares the stamp, which is its true arrival as far as a Python process can see.
* Connections are opened before the run (``prewarm``), so that TCP setup never lands inside a
  measured request.

The per-chunk loop in ``_stream`` is the hottest code in the project: it does one typed decode
per event and appends one integer per token-carrying chunk; everything else is done once per
request. ``benchmarks/client_overhead.py`` measures it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import msgspec
import yarl
from aiohttp.client_proto import ResponseHandler

from perfbench.client.record import RequestRecord, RequestSpec
from perfbench.client.sse import SSEDecoder, as_json_array
from perfbench.client.wire import Chunk, decode_chunk, decode_chunks, error_message
from perfbench.config import ClientSpec
from perfbench.errors import ServerRejected, ServerUnreachable
from perfbench.tokens import estimate_tokens

Clock = Callable[[], int]


class _StampedBody(aiohttp.BytesPayload):
    """A request body that notes when aiohttp writes it to the socket: the send time.

    aiohttp writes the request line, headers and a small body in one socket write, from
    the payload's write method; stamping there, just before that write, costs one clock read
    (a trace signal would cost about 75 µs of CPU per request).
    """

    def __init__(self, body: bytes, clock: Clock) -> None:
        super().__init__(body, content_type="application/json")
        self.clock = clock
        self.sent = 0

    async def write(self, writer: Any) -> None:
        if not self.sent:
            self.sent = self.clock()
        await super().write(writer)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        if not self.sent:
            self.sent = self.clock()
        await super().write_with_length(writer, content_length)


class _StampingHandler(ResponseHandler):
    """aiohttp's client protocol, noting when bytes come off the socket.

    ``data_received`` is where the event loop hands a socket read to the HTTP parser: the
    earliest moment Python sees the bytes. A task woken by them runs later, after whatever
    else is ready on the loop (with hundreds of streams, up to milliseconds later), so the
    stream reader stamps each block with this time rather than with when it got to run.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock) -> None:
        super().__init__(loop)
        self.clock = clock
        self.arrived_ns = 0

    def data_received(self, data: bytes) -> None:
        self.arrived_ns = self.clock()
        super().data_received(data)


class _SendGate:
    """Lets a few requests start per turn of the event loop.

    Starting a request costs aiohttp about 150 µs of CPU. When many requests start together
    (every closed-loop round with equal-length streams), running those starts back to back keeps
    the loop from polling its sockets for tens of milliseconds, and every read that arrives
    meanwhile is stamped that much late. The gate hands out ``PER_TURN`` starts per loop
    iteration, with a socket poll between turns; the wait shows as schedule lag on the request's row, where it
    belongs, instead of as server latency on other requests' rows.
    """

    PER_TURN = 2  # ~0.3 ms of starts between two socket polls (see docs/performance.md)

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._pending = False

    def turn(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        if not self._pending:
            self._pending = True
            loop.call_soon(self._release)
        return fut

    def _release(self) -> None:
        waiters = self._waiters
        started = 0
        while waiters and started < self.PER_TURN:
            fut = waiters.popleft()
            if not fut.done():  # a cancelled waiter gives its turn to the next
                fut.set_result(None)
                started += 1
        if waiters:
            asyncio.get_running_loop().call_soon(self._release)  # runs after the next poll
        else:
            self._pending = False


class _Failed(Exception):
    """Internal: ends a request with a status and a message."""

    def __init__(self, status: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = http_status


class Client:
    """One pooled aiohttp session against one endpoint.

    >>> async with Client(spec, pool_size=8) as client:   # doctest: +SKIP
    ...     await client.prewarm(8)
    ...     record = await client.send(RequestSpec(0, body, time.perf_counter_ns()))
    """

    def __init__(self, spec: ClientSpec, *, pool_size: int, clock: Clock = time.perf_counter_ns):
        assert spec.url is not None
        self.spec = spec
        self.pool_size = pool_size
        self.clock = clock
        headers = {"Content-Type": "application/json"}
        if spec.stream:
            headers["Accept"] = "text/event-stream"
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key}"
        headers.update(dict(spec.headers))
        self._headers = headers
        self._url = yarl.URL(spec.url)
        self._session: aiohttp.ClientSession | None = None
        self.models_status: int | None = None  # what /v1/models answered in check()
        self._gate = _SendGate()

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, limit_per_host=0, ttl_dns_cache=None, keepalive_timeout=60
        )
        loop = asyncio.get_running_loop()
        # the connector builds each connection's protocol through ``_factory`` (aiohttp 3.x)
        connector._factory = functools.partial(_StampingHandler, loop=loop, clock=self.clock)  # type: ignore[assignment]
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.spec.connect_timeout, sock_read=self.spec.read_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with Client(...)`"
        return self._session

    async def check(self, connect_timeout: float = 1.0, timeout: float = 10.0) -> list[str]:
        """The pre-run check: can we reach the server, and which models does it serve?

        Raises ServerUnreachable when no connection is made within ``connect_timeout`` (so an
        unreachable server is reported in about a second) or no answer comes within ``timeout``,
        and ServerRejected on 401/403.
        Returns the served model ids ([] when the server has no ``/v1/models``).
        """
        url = self.spec.models_url
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
            ) as resp:
                body = await resp.read()
                if resp.status in (401, 403):
                    raise ServerRejected(
                        f"{url} refused the request ({error_message(resp.status, body)}): "
                        "check --api-key or OPENAI_API_KEY"
                    )
                self.models_status = resp.status
                if resp.status != 200:
                    return []
        except aiohttp.ClientConnectorError as exc:
            raise ServerUnreachable(
                f"cannot reach {url} ({_reason(exc)}): is the server running? check --url"
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise ServerUnreachable(
                f"cannot reach {url} (no connection within {connect_timeout:g}s): is the server "
                "running, and is the address right? check --url"
            ) from exc
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise ServerUnreachable(
                f"no answer from {url} within {timeout:g}s ({type(exc).__name__}): "
                "is the server running? check --url"
            ) from exc
        try:
            data = msgspec.json.decode(body)
            return [str(m["id"]) for m in data.get("data", [])]
        except (msgspec.DecodeError, AttributeError, KeyError, TypeError):
            return []

    async def prewarm(self, n: int) -> None:
        """Open up to ``n`` keep-alive connections now, so that no measured request pays for one."""
        url = self.spec.models_url

        async def one() -> None:
            try:
                async with self.session.get(url) as resp:
                    await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass

        await asyncio.gather(*(one() for _ in range(n)))

    async def send(self, req: RequestSpec) -> RequestRecord:
        """Send one request and return its record; never raises for a request's own failure.

        Cancellation (the run stopping) is recorded as status ``cancelled`` and the record is
        returned, so that every scheduled request yields exactly one row.
        """
        stamp = _StampedBody(req.body, self.clock)
        st = _State()
        asked = self.clock()
        try:
            await self._gate.turn()
            async with self.session.post(self._url, data=stamp) as resp:
                st.http_status = resp.status
                if resp.status != 200:
                    body = await resp.content.read(4096)
                    raise _Failed("http", error_message(resp.status, body), resp.status)
                if self.spec.stream:
                    await self._stream(resp, st)
                else:
                    await self._whole(resp, st)
        except _Failed as exc:
            st.status, st.error = exc.status, str(exc)
        except asyncio.CancelledError:
            st.status, st.error = "cancelled", "the run stopped before the request completed"
        except aiohttp.ClientConnectorError as exc:
            st.status, st.error = "connect", _reason(exc)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            st.status = "timeout"
            st.error = str(exc) or "no data within --read-timeout"
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            st.status, st.error = "disconnect", _short(exc)
        except aiohttp.ClientResponseError as exc:
            st.status, st.error = "malformed", _short(exc)
        except (aiohttp.ClientError, OSError) as exc:
            st.status, st.error = "disconnect", _short(exc)
        end = self.clock()
        return st.record(req, stamp.sent or asked, end)

    async def _stream(self, resp: aiohttp.ClientResponse, st: _State) -> None:
        clock = self.clock
        decoder = SSEDecoder()
        absorb = self._absorb
        done = False
        proto = _protocol(resp)
        try:
            async for block in resp.content.iter_any():
                now = proto.arrived_ns if proto is not None else clock()
                if not st.ttfb:
                    st.ttfb = now
                if decoder.idle:
                    if (
                        block.find(b"\n") == len(block) - 2
                        and block[-1:] == b"\n"
                        and block[:6] == b"data: "
                    ):
                        # the real-time case: one whole one-line event per read
                        data = block[6:-2]
                        if data == b"[DONE]":
                            done = True
                        else:
                            absorb((decode_chunk(data),), now, st)
                        continue
                    array = as_json_array(block)
                    if array is not None:
                        payload, done_here = array
                        if not payload:
                            done = True
                            continue
                        try:
                            chunks = decode_chunks(payload)
                        except msgspec.DecodeError:
                            pass  # not the simple shape after all: the decoder decides
                        else:
                            done = done or done_here
                            absorb(chunks, now, st)
                            continue
                chunks = []
                for event, data in decoder.decode(block):
                    if data == b"[DONE]":
                        done = True
                    elif not event:
                        chunks.append(decode_chunk(data))
                    elif event == "error":
                        if chunks:  # events before it in this read count, as in an earlier read
                            absorb(chunks, now, st)
                        raise _Failed("stream_error", error_message(200, data))
                if chunks:
                    absorb(chunks, now, st)
            for _, data in decoder.flush():
                if data == b"[DONE]":
                    done = True
                else:
                    absorb([decode_chunk(data)], clock(), st)
        except msgspec.DecodeError as exc:
            raise _Failed("malformed", f"undecodable event: {exc}") from exc
        if not done and st.finish_reason is None:
            raise _Failed("disconnect", "the stream ended before [DONE] or a finish_reason")

    @staticmethod
    def _absorb(chunks: Sequence[Chunk], now: int, st: _State) -> None:
        """Take in the chunks of one read, all stamped ``now`` (the read's arrival)."""
        stamps = st.chunk_ns
        for chunk in chunks:
            if chunk.error is not None:
                raise _Failed("stream_error", error_message(200, msgspec.json.encode(chunk.error)))
            if chunk.usage is not None:
                st.usage = chunk.usage
            carried = False
            for choice in chunk.choices:
                delta = choice.delta
                calls = None
                if delta is not None:
                    text = delta.content
                    thought = delta.reasoning_content or delta.reasoning
                    calls = delta.tool_calls
                else:
                    text = choice.text
                    thought = None
                if calls and choice.index == 0:  # a tool call is answer tokens too
                    carried = True
                    st.add_calls(calls)
                    if not st.first_content:
                        st.first_content = now
                if text or thought:
                    carried = True
                    if choice.index == 0:
                        if text:
                            st.content.append(text)
                            if not st.first_content:
                                st.first_content = now
                        if thought:
                            st.reasoning.append(thought)
                            st.reasoning_chunks += 1
                if choice.finish_reason is not None and choice.index == 0:
                    st.finish_reason = choice.finish_reason
            if carried:
                stamps.append(now)
            if st.response_id is None:
                st.response_id = chunk.id

    async def _whole(self, resp: aiohttp.ClientResponse, st: _State) -> None:
        body = await resp.read()
        proto = _protocol(resp)
        now = proto.arrived_ns if proto is not None else self.clock()
        st.ttfb = now
        try:
            chunk = decode_chunk(body)
        except msgspec.DecodeError as exc:
            raise _Failed("malformed", f"undecodable response: {exc}") from exc
        if chunk.error is not None:
            raise _Failed("stream_error", error_message(200, msgspec.json.encode(chunk.error)))
        st.usage = chunk.usage
        st.response_id = chunk.id
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            msg = choice.message
            text = msg.content if msg is not None else choice.text
            thought = (msg.reasoning_content or msg.reasoning) if msg is not None else None
            if text:
                st.content.append(text)
                st.first_content = now
            if thought:
                st.reasoning.append(thought)
            if msg is not None and msg.tool_calls:
                st.add_calls(msg.tool_calls)
                st.first_content = st.first_content or now
            st.finish_reason = choice.finish_reason
        st.chunk_ns.append(now)
        st.streamed = False


class _State:
    """The mutable working copy of one request's record, frozen at the end."""

    __slots__ = (
        "status",
        "error",
        "http_status",
        "ttfb",
        "first_content",
        "chunk_ns",
        "content",
        "reasoning",
        "reasoning_chunks",
        "usage",
        "finish_reason",
        "response_id",
        "streamed",
        "calls",
    )

    def __init__(self) -> None:
        self.status = "ok"
        self.error: str | None = None
        self.http_status: int | None = None
        self.ttfb = 0
        self.first_content = 0
        self.chunk_ns: list[int] = []
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_chunks = 0
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.response_id: str | None = None
        self.streamed = True
        self.calls: dict[int, list[Any]] | None = None  # tool call index -> [id, name, pieces]

    def add_calls(self, calls: Any) -> None:
        """Take in tool calls, or pieces of them (streamed): named once, arguments in pieces.
        A list of calls or one call; arguments as text (OpenAI, vLLM) or as an object (TGI)."""
        if self.calls is None:
            self.calls = {}
        for call in calls if isinstance(calls, list) else [calls]:
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            entry = self.calls.setdefault(index if isinstance(index, int) else 0, [None, None, []])
            if isinstance(call.get("id"), str):
                entry[0] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    entry[1] = function["name"]
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    if arguments:
                        entry[2].append(arguments)
                elif arguments is not None:
                    entry[2].append(json.dumps(arguments))

    def tool_calls(self) -> str | None:
        """The calls as JSON (``[{"id", "name", "arguments"}]``, by index), or None."""
        if not self.calls:
            return None
        return json.dumps(
            [
                {"id": rid, "name": name, "arguments": "".join(pieces)}
                for _, (rid, name, pieces) in sorted(self.calls.items())
            ]
        )

    def record(self, req: RequestSpec, sent: int, end: int) -> RequestRecord:
        chunks = self.chunk_ns
        output = "".join(self.content)
        thought = "".join(self.reasoning)
        usage = self.usage
        prompt_tokens = completion = reasoning_tokens = cached = None
        calls = self.tool_calls()
        source = None
        if usage is not None:
            prompt_tokens = usage.prompt_tokens
            completion = usage.completion_tokens
            details = usage.completion_tokens_details
            if details is not None:
                reasoning_tokens = details.reasoning_tokens
            if usage.prompt_tokens_details is not None:
                cached = usage.prompt_tokens_details.cached_tokens
        if completion is not None:
            source = "usage"
        elif self.status == "ok" or chunks:
            if self.streamed:
                completion, source = len(chunks), "chunks"
            else:
                completion, source = (
                    _estimate(output + thought + (calls or "")),
                    "estimate",
                )
        if prompt_tokens is None and self.status == "ok":
            # no usage from the server: estimate the input too (token_source says "not usage")
            prompt_tokens = req.prompt_tokens_local or max(1, estimate_tokens(req.prompt_chars))
        if reasoning_tokens is None and completion and self.reasoning_chunks and chunks:
            reasoning_tokens = round(completion * self.reasoning_chunks / len(chunks))
        return RequestRecord(
            index=req.index,
            warmup=req.warmup,
            prompt_id=req.prompt_id,
            status=self.status,
            intended_ns=req.intended_ns,
            sent_ns=sent,
            ttfb_ns=self.ttfb or None,
            first_token_ns=chunks[0] if chunks else None,
            first_content_ns=self.first_content or None,
            last_token_ns=chunks[-1] if chunks else None,
            end_ns=end,
            chunk_ns=chunks,
            reasoning_chunks=self.reasoning_chunks,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            reasoning_tokens=reasoning_tokens,
            token_source=source,
            output_text=output,
            reasoning_text=thought,
            finish_reason=self.finish_reason,
            http_status=self.http_status,
            error=self.error,
            response_id=self.response_id,
            streamed=self.streamed,
            dataset=req.dataset,
            expected_tokens=req.expected_tokens,
            tool_calls=calls,
            cached_tokens=cached,
            session=req.session,
            turn=req.turn,
            turns=req.turns,
        )


def _protocol(resp: aiohttp.ClientResponse) -> _StampingHandler | None:
    conn = resp.connection
    proto = conn.protocol if conn is not None else None
    return proto if isinstance(proto, _StampingHandler) and proto.arrived_ns else None


def _estimate(text: str) -> int:
    return estimate_tokens(len(text))


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return (os_error.strerror or str(os_error)).lower() if os_error else _short(exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
