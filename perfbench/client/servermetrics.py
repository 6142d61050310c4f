"""Server-side figures: the server's Prometheus ``/metrics``, scraped during a run.

What the client measures says how long requests took; what the server publishes says why:
how many requests it ran at once, how many waited, how full its KV cache was, whether it
preempted, and how many tokens it processed. A run scrapes them every ``interval`` seconds,
plus once right before its first request, once between warm-up and the measured requests, and
once right after its last request (so that counter deltas cover exactly the requests sent).

Canonical keys, and the names each engine publishes them under (the first name a server
publishes wins, so that an engine exporting an old and a new spelling is not counted twice):

===================  ======================================  ====================================  ==================================
key                  vLLM                                    SGLang                                lmdeploy
===================  ======================================  ====================================  ==================================
running (gauge)      vllm:num_requests_running               sglang:num_running_reqs               lmdeploy:num_requests_running
waiting (gauge)      vllm:num_requests_waiting               sglang:num_queue_reqs                 lmdeploy:num_requests_waiting
kv_usage (0..1)      vllm:kv_cache_usage_perc,               sglang:token_usage                    lmdeploy:gpu_cache_usage_perc
                     vllm:gpu_cache_usage_perc (older)
preemptions          vllm:num_preemptions_total              sglang:num_retracted_requests_total   (none published)
prompt_tokens        vllm:prompt_tokens_total                sglang:prompt_tokens_total            lmdeploy:prompt_tokens_total
generation_tokens    vllm:generation_tokens_total            sglang:generation_tokens_total        lmdeploy:generation_tokens_total
prefix_queries       vllm:prefix_cache_queries_total,        (none: see cache_hit_rate)            (none published)
                     vllm:gpu_prefix_cache_queries_total (older)
prefix_hits          vllm:prefix_cache_hits_total,           (none: see cache_hit_rate)            (none published)
                     vllm:gpu_prefix_cache_hits_total (older)
cache_hit_rate       (none: see the two above)               sglang:cache_hit_rate                 (none published)
===================  ======================================  ====================================  ==================================

Sources: vLLM's "Production Metrics" documentation and ``vllm/v1/metrics/loggers.py``
(``kv_cache_usage_perc`` replaced ``gpu_cache_usage_perc``); SGLang's "Production Metrics"
documentation (``--enable-metrics``) and ``python/sglang/srt/metrics/collector.py``, whose
retraction counter is its preemption count (the ``sglang:num_retracted_reqs`` gauge is the last
batch's, not a count, so it is not used); some SGLang builds spell the prefix ``sglang_``, and
both spellings are accepted; lmdeploy's ``lmdeploy/metrics/loggers.py`` (``api_server
--enable-metrics``). Other engines (TGI, TensorRT-LLM, llama.cpp) publish none of these names:
their runs say "not available".

Several label sets of one name (several models, data-parallel engines, tensor-parallel ranks
that each publish) are **summed** for counts and tokens, and reduced to their **maximum** for
KV usage, a fraction: the fullest cache is the one that makes requests wait.

Keeping the scrape off the benchmark's hot path: it runs as one task on the run's event loop,
on its own aiohttp session and connection (never one of the benchmark's), one scrape at a time
with a bounded timeout; only the lines of the names above are parsed, picked out of the page a
16 KB slice at a time with a turn of the loop between slices (a vLLM ``/metrics`` page is
100-300 KB, mostly histograms: parsing all of it takes ~100 ms, searching it in one piece ~2 ms);
samples are handed to a sink in a worker thread every few seconds, in one transaction, like the
request records. Memory is bounded by the flush period: at most ``FLUSH_S`` seconds of samples
(six numbers a scrape) are held at once.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Clock = Callable[[], int]
Sample = tuple[int, str, float]  # (ns since the run's t0, canonical key, value)
Sink = Callable[[list[Sample]], None]


def _spellings(*names: str) -> tuple[str, ...]:
    """SGLang names under both prefixes it has used (``sglang:`` and ``sglang_``)."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if name.startswith("sglang:"):
            out.append("sglang_" + name[len("sglang:") :])
    return tuple(out)


#: canonical key -> the names that carry it, in order of preference
NAMES: dict[str, tuple[str, ...]] = {
    "running": (
        "vllm:num_requests_running",
        *_spellings("sglang:num_running_reqs"),
        "lmdeploy:num_requests_running",
    ),
    "waiting": (
        "vllm:num_requests_waiting",
        *_spellings("sglang:num_queue_reqs"),
        "lmdeploy:num_requests_waiting",
    ),
    "kv_usage": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        *_spellings("sglang:token_usage"),
        "lmdeploy:gpu_cache_usage_perc",
    ),
    "preemptions": (
        "vllm:num_preemptions_total",
        *_spellings("sglang:num_retracted_requests_total"),
    ),
    "prompt_tokens": (
        "vllm:prompt_tokens_total",
        *_spellings("sglang:prompt_tokens_total"),
        "lmdeploy:prompt_tokens_total",
    ),
    "generation_tokens": (
        "vllm:generation_tokens_total",
        *_spellings("sglang:generation_tokens_total"),
        "lmdeploy:generation_tokens_total",
    ),
    # prefix caching, in tokens: vLLM counts the prompt tokens it looked up and those it found
    "prefix_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "prefix_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    # SGLang publishes a gauge: the share of prompt tokens its radix cache served (0..1)
    "cache_hit_rate": (*_spellings("sglang:cache_hit_rate"),),
}
_ALL_NAMES = frozenset(n for names in NAMES.values() for n in names)
# the sample lines of the names above, picked out of a page before parsing
_LINES = re.compile(
    r"^(?:" + "|".join(re.escape(n) for n in sorted(_ALL_NAMES)) + r")[{ \t].*$", re.M
)

#: seconds of samples held before they are handed to the sink
FLUSH_S = 5.0


def metrics_url(endpoint: str) -> str:
    """The server root of an endpoint URL, plus ``/metrics``.

    >>> metrics_url("http://h:8000/v1/chat/completions")
    'http://h:8000/metrics'
    >>> metrics_url("https://gw.example/llama/v1/completions")
    'https://gw.example/llama/metrics'
    """
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    cut = path.rfind("/v1")
    if cut >= 0 and (len(path) == cut + 3 or path[cut + 3] == "/"):
        path = path[:cut]
    return urlunsplit((parts.scheme, parts.netloc, path + "/metrics", "", ""))


def parse(text: str, *, prefilter: bool = True) -> dict[str, tuple[str, float]]:
    """The canonical figures of one ``/metrics`` page: key -> (the name it came from, value).

    Raises ValueError when the page is not Prometheus text. With ``prefilter`` only the lines
    of known names are parsed (see the module docstring); without, the whole page is, which is
    what the pre-run check does, once, to tell a metrics page from anything else.
    """
    body = "\n".join(_LINES.findall(text)) if prefilter else text
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name in _ALL_NAMES and isinstance(s.value, int | float):
                found.setdefault(s.name, []).append(float(s.value))
    out: dict[str, tuple[str, float]] = {}
    for key, names in NAMES.items():
        for name in names:
            values = found.get(name)
            if values is not None:
                out[key] = (name, max(values) if key == "kv_usage" else math.fsum(values))
                break
    return out


QUICK_SCRAPES = 20  # the first scrapes of a run come QUICK_INTERVAL apart (a short sweep level)
QUICK_INTERVAL = 0.1


@dataclass
class Availability:
    """What the pre-run check found: the names the server publishes, or why there are none."""

    url: str
    names: dict[str, str] = field(default_factory=dict)  # canonical key -> raw name
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None


class Scraper:
    """Samples one server's ``/metrics`` during a run; see the module docstring.

    >>> async with Scraper(url, clock=time.perf_counter_ns) as s:   # doctest: +SKIP
    ...     found = await s.probe()
    ...     s.start(t0_ns, sink)
    ...     await s.sample()            # e.g. right before the first request
    ...     stats = await s.stop()      # a last sample, then everything to the sink
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = time.perf_counter_ns,
        interval: float = 1.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self.interval = interval
        self.timeout = min(max(interval, 1.0), 10.0)  # per scrape
        self.headers = dict(headers or {})
        self.scrapes = 0
        self.errors = 0
        self.lost = 0  # samples the sink could not store
        self.last_error: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._t0 = 0
        self._sink: Sink | None = None
        self._buffer: list[Sample] = []
        self._flushed_ns = 0
        self._task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Scraper:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ttl_dns_cache=None),
            headers=self.headers,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(self, timeout: float) -> str:
        assert self._session is not None, "use `async with Scraper(...)`"
        async with self._session.get(
            self.url, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status != 200:
                raise _ScrapeFailed(f"HTTP {resp.status}")
            return await resp.text(errors="replace")

    async def probe(self, timeout: float = 1.0) -> Availability:
        """The pre-run check: does the URL answer 200 with Prometheus text naming a known metric?"""
        try:
            text = await self._get(timeout)
        except _ScrapeFailed as exc:
            return Availability(self.url, reason=f"{self.url} answered {exc}")
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Availability(self.url, reason=f"{self.url}: {_why(exc, timeout)}")
        try:
            everything = parse(text, prefilter=False)
        except (ValueError, IndexError) as exc:
            return Availability(self.url, reason=f"{self.url} is not Prometheus text ({exc})")
        if not everything:
            return Availability(
                self.url,
                reason=f"{self.url} publishes none of the vLLM, SGLang or lmdeploy names",
            )
        return Availability(self.url, names={k: name for k, (name, _) in everything.items()})

    def start(self, t0_ns: int, sink: Sink) -> None:
        """Scrape every ``interval`` seconds from now on; samples are stamped in ns since t0."""
        self._t0, self._sink = t0_ns, sink
        self._flushed_ns = self.clock()
        self._task = asyncio.create_task(self._every())

    async def _every(self) -> None:
        """Scrape every ``interval``; the first ``QUICK_SCRAPES`` come at most 0.1 s apart, so
        that a run (or a sweep level) shorter than a couple of intervals still has samples
        of its own, where two boundary scrapes would read an idle server."""
        clock = self.clock
        scraped = 0

        def step() -> int:
            quick = scraped < QUICK_SCRAPES
            return int((min(self.interval, QUICK_INTERVAL) if quick else self.interval) * 1e9)

        due = clock() + step()
        while True:
            await asyncio.sleep(max(0, due - clock()) / 1e9)
            await self.sample()
            scraped += 1
            now = clock()
            due += step()
            if due < now:  # a slow scrape: skip the missed beats rather than catch up
                due = now + step() - (now - due) % step()

    async def sample(self) -> int | None:
        """Scrape now; the sample's time (ns since t0), or None when the scrape failed."""
        async with self._lock:
            before = self.clock()
            try:
                page = await self._get(self.timeout)
                after = self.clock()
                values = parse(await _known_lines(page), prefilter=False)
            except asyncio.CancelledError:
                raise
            except (_ScrapeFailed, asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
                self._failed(
                    str(exc) if isinstance(exc, _ScrapeFailed) else _why(exc, self.timeout)
                )
                return None
            except (ValueError, IndexError) as exc:
                self._failed(f"not Prometheus text ({exc})")
                return None
        self.scrapes += 1
        # the server rendered the page somewhere between the two stamps: take the middle
        t = (before + after) // 2 - self._t0
        self._buffer.extend((t, key, value) for key, (_, value) in values.items())
        if after - self._flushed_ns >= FLUSH_S * 1e9:
            self._flush(after)
        return t

    def _failed(self, why: str) -> None:
        self.scrapes += 1
        self.errors += 1
        self.last_error = why

    def _flush(self, now: int) -> None:
        """Hand the buffer to the sink in a worker thread: SQLite never runs on the loop."""
        self._flushed_ns = now
        if not self._buffer or self._sink is None:
            return
        batch, self._buffer = self._buffer, []
        task = asyncio.create_task(asyncio.to_thread(self._sink, batch))
        self._flushes.add(task)
        task.add_done_callback(functools.partial(self._flushed, len(batch)))

    def _flushed(self, size: int, task: asyncio.Task[None]) -> None:
        """A batch written, or lost (the database was busy past its timeout): counted, so that
        the run says so, never dropped in silence."""
        self._flushes.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        self.lost += size
        self.last_error = f"{size} samples could not be stored ({task.exception()})"

    async def stop(self, last: bool = True) -> int | None:
        """Stop scraping; with ``last``, take one more sample first (right after the last
        request). Returns that sample's time. Everything sampled has reached the sink (or is
        counted in ``lost``) when this returns."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        t = await self.sample() if last else None
        self._flush(self.clock())
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)  # counted in lost
        return t


class RunMetrics:
    """One run's server metrics, as the runner drives them: off, not available (and why), or
    scraped. Every method is a no-op unless scraping is on, so the runner has no branches.

    ``enabled`` is :class:`perfbench.config.ServerMetricsSpec`'s: None (auto), True (required:
    :meth:`check` raises a one-line usage error when the URL has no metrics), False (off).
    """

    def __init__(
        self,
        enabled: bool | None,
        url: str,
        *,
        interval: float = 1.0,
        headers: Mapping[str, str] | None = None,
        clock: Clock = time.perf_counter_ns,
    ) -> None:
        self.enabled, self.url, self.interval = enabled, url, interval
        self.found: Availability | None = None
        self.window_ns: list[int | None] = [None, None]
        self._scraper: Scraper | None = None
        if enabled is not False:
            self._scraper = Scraper(url, clock=clock, interval=interval, headers=headers)

    async def __aenter__(self) -> RunMetrics:
        if self._scraper is not None:
            await self._scraper.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._scraper is not None:
            await self._scraper.__aexit__()

    async def check(self) -> None:
        """The pre-run check (about a second at most); scraping stays on only if it passes."""
        if self._scraper is None:
            return
        self.found = await self._scraper.probe()
        if not self.found.available:
            await self._scraper.__aexit__()
            self._scraper = None
            if self.enabled:
                from perfbench.errors import ServerRejected

                raise ServerRejected(
                    f"--server-metrics: no server metrics ({self.found.reason}); serve them "
                    "(SGLang and lmdeploy: --enable-metrics), point --server-metrics-url at "
                    "them, or drop --server-metrics"
                )

    @property
    def on(self) -> bool:
        return self._scraper is not None

    def info(self) -> dict[str, Any]:
        """What the run records in ``runs.server["metrics"]``: the names matched, or why not."""
        if self.enabled is False:
            return {"available": False, "reason": "off"}
        found = self.found
        if found is None or not found.available:
            reason = found.reason if found is not None else "not checked"
            return {"available": False, "url": self.url, "reason": reason}
        out: dict[str, Any] = {
            "available": True,
            "url": self.url,
            "names": found.names,
            "interval_s": self.interval,
            "window_ns": self.window_ns,
        }
        s = self._scraper
        if s is not None:
            out.update(scrapes=s.scrapes, errors=s.errors, last_error=s.last_error)
            if s.lost:
                out["lost_samples"] = s.lost
        return out

    async def start(self, t0_ns: int, sink: Sink) -> None:
        """Take the first sample (before the first request) and scrape from then on."""
        if self._scraper is not None:
            self._scraper.start(t0_ns, sink)
            self.window_ns[0] = await self._scraper.sample()

    async def measured(self) -> None:
        """Warm-up is over: a sample that opens the measured window."""
        if self._scraper is not None:
            t = await self._scraper.sample()
            if t is not None:
                self.window_ns[0] = t

    async def finish(self) -> None:
        """The last request is done: a last sample, and every sample to the sink."""
        if self._scraper is not None:  # None when the last scrape failed: to the last sample
            self.window_ns[1] = await self._scraper.stop()


class _ScrapeFailed(Exception):
    pass


#: characters of a page searched between two turns of the event loop
SLICE = 16_384


async def _known_lines(page: str) -> str:
    """The lines of known names, picked out a slice at a time with a turn of the event loop in
    between: a 220 KB vLLM page costs about 2 ms to search, which in one piece would hold back
    every token that arrives meanwhile (and stamp it late); in 16 KB slices, about 0.15 ms."""
    found: list[str] = []
    start, end = 0, len(page)
    while start < end:
        stop = page.find("\n", start + SLICE)
        stop = end if stop < 0 else stop + 1
        found.extend(_LINES.findall(page, start, stop))
        start = stop
        if start < end:
            await asyncio.sleep(0)
    return "\n".join(found)


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
