"""Frozen, validated configuration: built by the CLI (or a Python caller), read by everyone else.

Each spec rejects a bad value when it is built, with one sentence naming the flag, so that a
run never starts with a configuration it cannot honour. Change a field with
``dataclasses.replace``; there is no settings singleton.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from perfbench.errors import ConfigError
from perfbench.redact import redact_url, secret_name

Api = Literal["openai-chat", "openai-completions"]
API_PATHS: dict[str, str] = {
    "openai-chat": "/chat/completions",
    "openai-completions": "/completions",
}
DEFAULT_DB = Path("outputs") / "perfbench.db"


def resolve_endpoint(url: str, api: Api | None) -> tuple[str, str, Api]:
    """Turn what the user typed into (endpoint URL, models URL, api).

    Accepts a server root (``http://h:8000``), an API base (``http://h:8000/v1``) or a full
    endpoint (``http://h:8000/v1/chat/completions``); a full endpoint also decides ``api``
    when it was not given.

    >>> resolve_endpoint("http://127.0.0.1:8000", None)[0]
    'http://127.0.0.1:8000/v1/chat/completions'
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--url {url!r} is not an http(s) URL; try --url http://127.0.0.1:8000")
    path = parts.path.rstrip("/")
    for name, suffix in API_PATHS.items():
        if path.endswith(suffix):
            if api is not None and api != name:
                raise ConfigError(f"--url ends in {suffix} but --api is {api}; drop one of them")
            api = name  # type: ignore[assignment]
            path = path[: -len(suffix)]
            break
    if api is None:
        api = "openai-chat"
    if not path.endswith("/v1"):
        path = f"{path}/v1"

    def build(p: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, p, parts.query, ""))

    return build(path + API_PATHS[api]), build(path + "/models"), api


@dataclass(frozen=True)
class ClientSpec:
    """Where and how to send requests. ``api_key`` never leaves the process.

    ``url=None`` means the embedded simulated engine, started for the run. ``thinking`` sets
    ``chat_template_kwargs.enable_thinking`` in every body (reasoning models), on top of
    ``extra_body``.
    """

    url: str | None = None
    api: Api | None = None
    model: str | None = None
    stream: bool = True
    max_tokens: int | None = 256
    min_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    thinking: bool | None = None

    def __post_init__(self) -> None:
        if self.thinking is not None:
            kwargs = dict(self.extra_body.get("chat_template_kwargs") or {})
            kwargs["enable_thinking"] = self.thinking
            object.__setattr__(
                self, "extra_body", {**self.extra_body, "chat_template_kwargs": kwargs}
            )
        if self.url is not None:
            endpoint, _, api = resolve_endpoint(self.url, self.api)
            object.__setattr__(self, "url", endpoint)
            object.__setattr__(self, "api", api)
        elif self.api is None:
            object.__setattr__(self, "api", "openai-chat")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError("--max-tokens must be at least 1")
        if self.min_tokens is not None and self.min_tokens < 0:
            raise ConfigError("--min-tokens must be 0 or more")
        if (
            self.min_tokens is not None
            and self.max_tokens is not None
            and self.min_tokens > self.max_tokens
        ):
            raise ConfigError("--min-tokens must not exceed --max-tokens")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError("--temperature must be 0 or more")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError("--top-p must be in (0, 1]")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("--connect-timeout and --read-timeout must be positive")
        for key, _ in self.headers:
            if not key or any(c in key for c in " :\r\n"):
                raise ConfigError(f"--header name {key!r} is not a valid HTTP header name")

    @property
    def models_url(self) -> str:
        assert self.url is not None, "the endpoint is known once the run starts"
        return resolve_endpoint(self.url, self.api)[1]

    def redacted(self) -> dict[str, Any]:
        """The spec as plain data with every secret removed (for the runs table)."""
        data = dataclasses.asdict(self)
        data.pop("api_key")
        data["url"] = redact_url(self.url) if self.url else None
        data["headers"] = [[k, "<redacted>" if secret_name(k) else v] for k, v in self.headers]
        return data


def parse_headers(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``K:V`` (or ``K=V``, as evalscope and vLLM write them) strings (``--header``) as (name,
    value) pairs, both stripped."""
    from perfbench.redact import split_header

    headers = []
    for item in items:
        key, sep, value = split_header(item)
        if not sep or not key.strip():
            raise ConfigError(f"--header {item!r} is not K:V, e.g. --header 'X-Team: search'")
        headers.append((key.strip(), value.strip()))
    return tuple(headers)


def parse_sim_args(text: str) -> tuple[str, ...]:
    """``--sim-args``: the simulator's flags, split as a shell would split them."""
    import shlex

    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError(
            f"--sim-args {text!r}: {exc} (quote the whole value once, e.g. "
            "--sim-args '--ttft-ms 50 --itl-ms 5')"
        ) from None


def parse_extra_body(text: str | None) -> dict[str, Any]:
    """``--extra-body``: a JSON object merged into every request body."""
    if not text:
        return {}
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--extra-body is not valid JSON ({exc.msg} at column {exc.colno}); "
            "e.g. --extra-body '{\"ignore_eos\": true}'"
        ) from None
    if not isinstance(extra, dict):
        raise ConfigError("--extra-body must be a JSON object, e.g. '{\"ignore_eos\": true}'")
    return extra


@dataclass(frozen=True)
class LoadSpec:
    """When to send: one run's load shape.

    Closed loop: ``parallel`` workers, each sending its next request when the previous one
    ends. Open loop, optionally capped at ``max_concurrency`` in flight: ``rate`` requests/s
    with gamma-distributed gaps (``burstiness`` 1 is Poisson; lower is burstier) or evenly
    spaced (``arrival="constant"``); a linear ramp from ``ramp_from`` to ``ramp_to`` requests/s
    over ``duration``; or the arrival times of a recorded ``trace`` (``trace_speed`` 2 replays
    it twice as fast; ``trace_block_size`` is the tokens per hash id of a Mooncake trace). A run ends after ``number`` requests or ``duration`` seconds of
    scheduling, whichever comes first; with neither, the workload decides (an eval dataset is
    sent once per row, anything else 10 requests per worker, at least 100). ``warmup``
    requests are sent first, recorded, and left out of every figure.
    """

    parallel: int | None = 1
    number: int | None = None
    rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    duration: float | None = None
    warmup: int = 0
    seed: int = 0
    arrival: str = "poisson"  # poisson (gamma with burstiness) | constant
    ramp_from: float | None = None
    ramp_to: float | None = None
    trace: str | None = None
    trace_speed: float = 1.0
    trace_block_size: int = 512

    def __post_init__(self) -> None:
        if self.parallel is not None and self.parallel < 1:
            raise ConfigError("--parallel must be at least 1")
        if self.number is not None and self.number < 1:
            raise ConfigError("--number must be at least 1")
        if self.rate is not None and not (self.rate > 0):
            raise ConfigError("--rate must be positive (use inf for all at once)")
        if not (self.burstiness > 0) or math.isinf(self.burstiness):
            raise ConfigError("--burstiness must be a positive number")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError("--max-concurrency must be at least 1")
        if self.duration is not None and not (self.duration > 0):
            raise ConfigError("--duration must be positive")
        if self.warmup < 0:
            raise ConfigError("--warmup must be 0 or more")
        if self.rate is not None and math.isinf(self.rate) and self.duration is not None:
            raise ConfigError("--rate inf sends everything at once: give --number, not --duration")
        if self.arrival not in ("poisson", "constant"):
            raise ConfigError("--arrival must be poisson or constant")
        if (self.ramp_from is None) != (self.ramp_to is None):
            raise ConfigError("give both --ramp-from and --ramp-to")
        if self.ramp_from is not None:
            assert self.ramp_to is not None
            if self.duration is None:
                raise ConfigError("a ramp runs over --duration seconds: give --duration")
            if self.rate is not None or self.trace is not None:
                raise ConfigError("--ramp-from/--ramp-to replace --rate and --trace: give one")
            if self.ramp_from < 0 or self.ramp_to < 0 or self.ramp_from == self.ramp_to == 0:
                raise ConfigError("--ramp-from and --ramp-to must be >= 0, not both 0")
        if self.trace is not None and self.rate is not None:
            raise ConfigError("--trace sets the arrival times: drop --rate")
        if not self.trace_speed > 0:
            raise ConfigError("--trace-speed must be positive")
        if self.trace_block_size < 1:
            raise ConfigError("--trace-block-size must be a positive number of tokens")
        if self.trace_block_size != 512 and self.trace is None:
            raise ConfigError("--trace-block-size sizes a trace's hash_ids: give --trace FILE")
        if not self.open_loop and self.parallel is None:
            raise ConfigError("give --parallel (closed loop) or --rate (open loop)")

    @property
    def open_loop(self) -> bool:
        return self.rate is not None or self.ramp_from is not None or self.trace is not None

    @property
    def concurrency(self) -> int | None:
        """The most requests in flight at once, or None when the open loop is uncapped."""
        if not self.open_loop:
            return self.parallel
        return self.max_concurrency


def paired_loads(
    *,
    parallel: Sequence[int] | None = None,
    number: Sequence[int] | None = None,
    rate: Sequence[float] | None = None,
    max_concurrency: int | None = None,
    burstiness: float = 1.0,
    duration: float | None = None,
    warmup: int = 0,
    seed: int = 0,
    arrival: str = "poisson",
    ramp_from: float | None = None,
    ramp_to: float | None = None,
    trace: str | None = None,
    trace_speed: float = 1.0,
    trace_block_size: int = 512,
) -> tuple[LoadSpec, ...]:
    """One load per ``parallel`` (closed loop) or ``rate`` (open loop) value, each paired with
    its ``number`` (one number serves every value), as ``--parallel 1 8 --number 10 80`` pairs
    them. With ``rate``, one ``parallel`` value caps requests in flight, as
    ``max_concurrency`` does. A ramp or a trace is one open-loop load.

    >>> [(x.parallel, x.number) for x in paired_loads(parallel=[1, 8], number=[10, 80])]
    [(1, 10), (8, 80)]
    """
    if rate and parallel and len(parallel) > 1:
        raise ConfigError(
            "with --rate, give one --parallel (it caps requests in flight) or use --max-concurrency"
        )
    open_shape = ramp_from is not None or ramp_to is not None or trace is not None
    if open_shape and rate:
        raise ConfigError("--rate, --ramp-from/--ramp-to and --trace are alternatives: give one")
    axis: Sequence[float | int | None] = (
        rate if rate else ([None] if open_shape else (parallel or [1]))
    )
    numbers: Sequence[int | None]
    if number is None:
        numbers = [None] * len(axis)
    elif len(number) == 1:
        numbers = list(number) * len(axis)
    elif len(number) != len(axis):
        what = "--rate" if rate else "--parallel"
        raise ConfigError(
            f"--number has {len(number)} values and {what} {len(axis)}: "
            f"give one, or one per {what} value"
        )
    else:
        numbers = number
    loads = []
    for value, n in zip(axis, numbers):
        if rate or open_shape:
            cap = max_concurrency or (parallel[0] if parallel else None)
            load = LoadSpec(
                parallel=None,
                number=n,
                rate=value,
                burstiness=burstiness,
                max_concurrency=cap,
                arrival=arrival,
                ramp_from=ramp_from,
                ramp_to=ramp_to,
                trace=trace,
                trace_speed=trace_speed,
                trace_block_size=trace_block_size,
                duration=duration,
                warmup=warmup,
                seed=seed,
            )
        else:
            assert value is not None
            load = LoadSpec(
                parallel=int(value),
                number=n,
                duration=duration,
                warmup=warmup,
                seed=seed,
                trace_block_size=trace_block_size,  # refused without a trace
            )
        loads.append(load)
    return tuple(loads)


@dataclass(frozen=True)
class WorkloadSpec:
    """What to send: a dataset by name (with a file or hub id where it needs one), or one prompt.

    ``seed`` also seeds the embedded simulator (its ``--seed``, unless ``sim_args`` give one).
    ``tokenizer`` names the tokenizer that sizes synthetic prompts and counts tokens locally: a
    local folder or Hugging Face hub id, or ``tiktoken:NAME``. ``input_len``/``output_len``/
    ``range_ratio``/``prefix_len`` shape synthetic prompts (the ``random`` dataset);
    ``prompt_template`` (with ``{problem}``/``{question}`` style fields) overrides an eval
    dataset's own template. ``mix`` makes one workload of several datasets, drawn by weight.
    """

    dataset: str = "openqa"
    dataset_path: str | None = None
    prompt: str | None = None
    seed: int = 0
    tokenizer: str | None = None
    input_len: int | None = None
    output_len: int | None = None
    range_ratio: float = 0.0
    prefix_len: int = 0
    prompt_template: str | None = None
    shuffle: bool = False
    mix: tuple[tuple[str, str | None, float], ...] = ()  # (dataset, path, weight): a collection
    n: int = 1  # samples per prompt, as repeated requests (pass@k, maj@k)
    prefix_groups: int = 1  # random: G shared prefixes of prefix_len tokens, prompt k in k mod G
    reuse_prompts: bool = False  # random: send the pool's prompts again, not one per request
    start_date: str | None = None  # live_code_bench: problems from this contest date (YYYY-MM-DD)
    end_date: str | None = None  # ... up to this one, inclusive
    # conversations sent as sessions: each turn after the last answer (plus ``think_time``
    # seconds), with the whole history; ``turns``: random's synthetic conversations have this
    # many, a recorded one (sharegpt) at most this many
    multi_turn: bool = False
    turns: int | None = None
    think_time: float = 0.0

    @staticmethod
    def parse_mix(items: Sequence[str]) -> tuple[tuple[str, str | None, float], ...]:
        """``NAME[=PATH][:WEIGHT]`` strings (``--mix``) as ``mix`` entries; the weight is 1 when
        not given.

        >>> WorkloadSpec.parse_mix(["openqa:3", "gsm8k=gsm8k.jsonl"])
        (('openqa', None, 3.0), ('gsm8k', 'gsm8k.jsonl', 1.0))
        """
        out = []
        for item in items:
            head, colon, weight_text = item.rpartition(":")
            if not colon or "=" in weight_text:
                head, weight_text = item, "1"
            name, eq, path = head.partition("=")
            try:
                weight = float(weight_text)
            except ValueError:
                raise ConfigError(
                    f"--mix {item!r}: the weight after ':' must be a number"
                ) from None
            out.append((name, path if eq else None, weight))
        return tuple(out)

    def __post_init__(self) -> None:
        for name, _, weight in self.mix:
            if not weight > 0:
                raise ConfigError(f"--mix {name}: the weight must be positive")
        if self.input_len is not None and self.input_len < 1:
            raise ConfigError("--input-len must be at least 1")
        if self.output_len is not None and self.output_len < 1:
            raise ConfigError("--output-len must be at least 1")
        if not 0 <= self.range_ratio < 1:
            raise ConfigError("--range-ratio must be in [0, 1)")
        if self.prefix_len < 0:
            raise ConfigError("--prefix-len must be 0 or more")
        if self.prefix_groups < 1:
            raise ConfigError("--prefix-groups must be 1 or more")
        if self.prefix_groups > 1 and not self.prefix_len:
            raise ConfigError("--prefix-groups needs --prefix-len (the length of each prefix)")
        if self.n < 1:
            raise ConfigError("--n must be at least 1")
        if self.turns is not None and self.turns < 1:
            raise ConfigError(
                f"--turns {self.turns}: a conversation has at least 1 turn (the user's first)"
            )
        if not 0 <= self.think_time < math.inf:
            raise ConfigError(f"--think-time {self.think_time}: give 0 or more seconds")
        if self.think_time and not self.sessions:
            raise ConfigError(
                "--think-time is the pause between a conversation's turns: add --multi-turn "
                "(sharegpt) or --turns N"
            )
        if self.sessions and self.n > 1:
            raise ConfigError(
                "--samples/--n sends one prompt several times: not with conversations"
            )

    @property
    def sessions(self) -> bool:
        """Whether the workload runs as conversations (``--multi-turn`` or ``--turns``)."""
        return self.multi_turn or self.turns is not None


GRADERS = ("math", "choice", "numeric", "exact", "regex", "code")
THOUGHT_MARKERS = (
    "alternatively",
    "but wait",
    "let me reconsider",
    "another way",
    "another approach",
    "another method",
    "another angle",
)
STEP_STRATEGIES = ("separator", "keywords", "llm")


@dataclass(frozen=True)
class ThinkSpec:
    """How the thinking-efficiency figures are computed (``perfbench grade --think``).

    ``markers`` are the sub-chain openers counted as thoughts; ``steps`` splits the thinking
    text (blank lines, before each marker, or re-paragraphed by the judge); ``judge_url`` and
    ``judge_model`` name an OpenAI-compatible LLM that finds the first correct step instead of
    the rule-based grader. ``max_think_tokens`` keeps samples whose thinking is at most that
    long and ``count`` the first N samples, as ThinkBench's filters do.
    """

    markers: tuple[str, ...] = THOUGHT_MARKERS
    steps: str = "separator"
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = field(default=None, repr=False)  # never stored or printed
    max_think_tokens: int | None = None
    count: int | None = None
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.steps not in STEP_STRATEGIES:
            raise ConfigError(f"--steps must be one of {', '.join(STEP_STRATEGIES)}")
        if not self.markers or not all(m.strip() for m in self.markers):
            raise ConfigError("--markers needs at least one non-empty marker")
        if self.steps == "llm" and not self.judge_url:
            raise ConfigError("--steps llm needs a judge: add --judge-url (and --judge-model)")
        if self.judge_url is not None and not self.judge_url.startswith(("http://", "https://")):
            raise ConfigError(f"--judge-url {self.judge_url!r} is not an http(s) URL")
        if self.max_think_tokens is not None and self.max_think_tokens < 1:
            raise ConfigError("--max-think-tokens must be at least 1")
        if self.count is not None and self.count < 1:
            raise ConfigError("--count must be at least 1")

    @property
    def method(self) -> str:
        """The key of these figures in the thinking table: split strategy + who finds the step."""
        return f"{self.steps}+{'llm' if self.judge_url else 'rule'}"


@dataclass(frozen=True)
class GradeSpec:
    """What ``perfbench grade`` does: which grader (None: each prompt's own), how to cut the
    text (``remove_until``, e.g. ``</think>``), the regex for the regex grader, the k values of
    pass@k (None: powers of two up to the samples per prompt), thinking efficiency (``think``),
    and the worker pool (``workers`` processes, ``timeout`` seconds per answer)."""

    grader: str | None = None
    remove_until: str | None = None
    regex: str | None = None
    ks: tuple[int, ...] | None = None
    think: ThinkSpec | None = None
    workers: int | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.grader is not None and self.grader not in GRADERS:
            raise ConfigError(f"--grader must be one of {', '.join(GRADERS)}")
        if (self.grader == "regex") != (self.regex is not None):
            raise ConfigError("--grader regex and --regex PATTERN go together")
        if self.regex is not None:
            import re

            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ConfigError(
                    f"--regex {self.regex!r} is not a regular expression: {exc}"
                ) from None
        if self.ks is not None and any(k < 1 for k in self.ks):
            raise ConfigError("--k values must be at least 1")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("--grade-workers must be at least 1")
        if not self.timeout > 0:
            raise ConfigError("--grade-timeout must be positive")


@dataclass(frozen=True)
class ServerMetricsSpec:
    """Scraping the server's Prometheus ``/metrics`` during a run (docs/metrics.md).

    ``enabled``: None scrapes when the pre-run check finds metrics there (auto), True requires
    them (the run stops before it starts when they are missing), False never scrapes.
    ``url`` replaces the default address, the server root of ``--url`` plus ``/metrics``.
    """

    enabled: bool | None = None
    interval: float = 1.0
    url: str | None = None

    def __post_init__(self) -> None:
        if not 0.1 <= self.interval <= 3600:  # also rejects NaN
            raise ConfigError("--server-metrics-interval must be between 0.1 and 3600 seconds")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ConfigError(f"--server-metrics-url {self.url!r} is not an http(s) URL")


@dataclass(frozen=True)
class DeterminismSpec:
    """``perf --determinism``: the same prompts at temperature 0 at every concurrency level, each
    level's outputs held against concurrency 1's (perfbench/compare/determinism.py).

    ``rerun``: how many of the prompts a second concurrency-1 pass, after the other levels, sends
    again (None: all of them; 0: no second pass). Its differences are the engine's own
    run-to-run variance with no batch, which tells whether the levels' differences come with
    load; it costs another pass at the slowest level, hence the choice.
    """

    rerun: int | None = None

    def __post_init__(self) -> None:
        if self.rerun is not None and (isinstance(self.rerun, bool) or self.rerun < 0):
            raise ConfigError(f"--rerun {self.rerun!r}: give 0 or more prompts (0: no re-run)")


@dataclass(frozen=True)
class PerfSpec:
    """Everything ``perfbench.run`` needs; one run per entry of ``loads``.

    >>> spec = PerfSpec(client=ClientSpec(url="http://127.0.0.1:8000"),
    ...                 loads=(LoadSpec(parallel=4, number=40),))
    """

    client: ClientSpec
    loads: tuple[LoadSpec, ...]
    workload: WorkloadSpec = WorkloadSpec()
    db_path: Path = DEFAULT_DB
    name: str | None = None
    sim_args: tuple[str, ...] = ()  # flags of the embedded simulator (see embedded_args)
    command: str = ""
    grade: GradeSpec | None = None  # grade each run's answers when it ends (perf --grade)
    server_metrics: ServerMetricsSpec = ServerMetricsSpec()  # the server's /metrics, sampled
    workers: int | Literal["auto"] | None = None  # load-generating processes (None: this one)
    ray: str | None = None  # run the workers as Ray actors: an address, or "" for RAY_ADDRESS/auto
    on_worker_loss: Literal["stop", "continue"] = "stop"  # when a worker dies mid-run
    wait_for_server: float = 0.0  # seconds to wait for a server that went away (0: stop)
    max_error_rate: float | None = 0.25  # a run whose failed share is above it exits 1
    repeat: int = 1  # run each load this many times (replicates, for an honest compare)
    resume: int | None = None  # finish this interrupted/killed/failed run instead (one load)
    pause_s: float = 0.0  # seconds between one run's end and the next's start (--sleep-interval)
    determinism: DeterminismSpec | None = None  # the loads are concurrency levels to hold against 1

    def __post_init__(self) -> None:
        if not self.loads:
            raise ConfigError("at least one load (--parallel/--number pair) is needed")
        if self.workers is not None and self.workers != "auto":
            if isinstance(self.workers, bool) or not isinstance(self.workers, int):
                raise ConfigError(f"--workers {self.workers!r}: give a whole number or auto")
            if self.workers < 1:
                raise ConfigError("--workers must be at least 1 (or auto); 1 is this process alone")
        if not self.wait_for_server >= 0:
            raise ConfigError("--wait-for-server must be 0 or more seconds")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate <= 1:
            raise ConfigError("--max-error-rate must be a fraction between 0 and 1, e.g. 0.05")
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise ConfigError(f"--repeat {self.repeat!r}: give a whole number of runs, 1 or more")
        if not 0 <= self.pause_s < math.inf:
            raise ConfigError(f"--sleep-interval {self.pause_s}: give 0 or more seconds")
        if self.on_worker_loss not in ("stop", "continue"):
            raise ConfigError("--on-worker-loss must be stop or continue")
        if self.workload.sessions:
            self._check_sessions()
        if self.determinism is not None:
            self._check_determinism()

    def _check_sessions(self) -> None:
        """What conversations cannot be run with (yet), each in one line."""
        if (self.workers not in (None, 1)) or self.ray is not None:
            raise ConfigError(
                "conversations run in this process: drop --workers/--ray (one process keeps "
                "about 1,300 requests/s of streams)"
            )
        if self.resume is not None:
            raise ConfigError("--resume continues single-turn runs; run the conversations again")
        if any(load.trace is not None for load in self.loads):
            raise ConfigError("--trace replays single requests: drop --multi-turn/--turns")
        if self.workload.mix:
            raise ConfigError("--mix draws single prompts: drop --multi-turn/--turns")
        if self.determinism is not None:
            raise ConfigError("--determinism compares single requests: drop --multi-turn/--turns")

    def _check_determinism(self) -> None:
        """--determinism: closed-loop levels of one size at temperature 0 (set here when not
        given), so that every level sends the same greedy requests."""
        temperature = self.client.temperature
        if temperature is not None and temperature != 0:
            raise ConfigError(
                f"--determinism compares greedy outputs at temperature 0: drop --temperature "
                f"{temperature:g}"
            )
        if any(x.open_loop for x in self.loads):
            raise ConfigError(
                "--determinism compares closed-loop concurrency levels (e.g. --parallel 1 8 32): "
                "drop --rate, --ramp-from/--ramp-to and --trace"
            )
        if any(x.duration is not None for x in self.loads):
            raise ConfigError(
                "--determinism sends every prompt once per level: drop --duration (--number N "
                "sends the first N)"
            )
        if len({x.number for x in self.loads}) > 1:
            raise ConfigError(
                "--determinism sends the same prompts at every level: give one --number"
            )
        if self.repeat != 1:
            raise ConfigError(
                "--determinism runs concurrency 1 again itself (--rerun): drop --repeat"
            )
        if self.resume is not None:
            raise ConfigError(
                "--determinism cannot --resume one level: run the levels again (or resume "
                "without --determinism and use `perfbench report --determinism`)"
            )
        levels = {x.parallel for x in self.loads}
        if levels == {1} and self.determinism is not None and self.determinism.rerun == 0:
            raise ConfigError(
                "--determinism --parallel 1 --rerun 0 has nothing to compare: add levels "
                "(--parallel 1 8 32) or let concurrency 1 run again"
            )
        if temperature is None:
            object.__setattr__(self, "client", dataclasses.replace(self.client, temperature=0.0))

    @property
    def embedded_args(self) -> tuple[str, ...]:
        """The embedded simulator's flags (``client.url`` None): ``sim_args``, seeded with the
        workload's seed (a ``--seed`` in ``sim_args`` comes later, and wins)."""
        return ("--seed", str(self.workload.seed), *self.sim_args)
