"""The simulated engine's configuration: one frozen dataclass, its presets and its flags.

Every field maps to one ``--kebab-case`` flag. ``--preset NAME`` picks a starting point from
:data:`PRESETS`; flags given explicitly override it. From Python::

    from dataclasses import replace
    from perfbench.sim import PRESETS, serve
    serve(replace(PRESETS["llama-8b-a100"], seed=1), port=8000)
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .answers import AnswerBook

OUTPUT_LEN_DISTS = ("fixed", "uniform", "exponential", "lognormal")
REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass(frozen=True)
class SimConfig:
    """How the simulated engine behaves. The defaults are the ``fast`` preset.

    Latencies are in the units their names say. The timing model they feed is described in
    :mod:`perfbench.sim.engine`.
    """

    served_model_name: tuple[str, ...] = ("perfbench-sim",)
    # Engine capacity.
    max_num_seqs: int = 256
    kv_tokens: int = 1_000_000
    max_model_len: int = 32_768
    # Timing model.
    ttft_ms: float = 30.0
    prefill_us_per_token: float = 20.0
    itl_ms: float = 5.0
    itl_ms_per_seq: float = 0.01
    burst: bool = False
    # What comes out when the request does not pin the length.
    output_len_mean: float = 200.0
    output_len_dist: str = "lognormal"
    output_len_sigma: float = 0.5
    reasoning_ratio: float = 0.0
    reasoning_field: str = "reasoning_content"
    seed: int | None = None
    # Faults, each a probability per request.
    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_rate: float = 0.0
    disconnect_rate: float = 0.0
    malformed_rate: float = 0.0
    stall_rate: float = 0.0
    stall_ms: float = 1000.0
    error_event_rate: float = 0.0
    ignore_length_hints: bool = False
    # Greedy outputs that depend on the batch (see perfbench.sim.variance).
    batch_variance: float = 0.0
    no_prefix_caching: bool = False
    enable_prompt_tokens_details: bool = False
    # Answers to prompts with a gold answer (see perfbench.sim.answers).
    answers: str | None = None
    answer_accuracy: float = 0.7
    first_correct: float = 0.5
    answer_thoughts: int = 2
    # Observability.
    timing_log: str | None = None
    access_log: bool = False
    # Not a flag: the book read from ``answers`` when the config is built, so that a bad file
    # is a config error (one sentence naming the line) rather than a failure at startup.
    answer_book: AnswerBook | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.served_model_name
        if isinstance(names, str):  # a friendly Python caller; the CLI always passes a sequence
            object.__setattr__(self, "served_model_name", (names,))
        elif not isinstance(names, tuple):
            object.__setattr__(self, "served_model_name", tuple(names))
        if not self.served_model_name or not all(self.served_model_name):
            raise ValueError("--served-model-name needs at least one non-empty name.")
        _at_least("--max-num-seqs", self.max_num_seqs, 1)
        _at_least("--max-model-len", self.max_model_len, 2)
        _at_least("--kv-tokens", self.kv_tokens, 1)
        if self.kv_tokens < self.max_model_len:
            raise ValueError(
                f"--kv-tokens ({self.kv_tokens}) must be >= --max-model-len "
                f"({self.max_model_len}), or the longest request could never run."
            )
        for flag in ("ttft_ms", "prefill_us_per_token", "itl_ms", "itl_ms_per_seq", "stall_ms"):
            _at_least(_flag(flag), getattr(self, flag), 0)
        _at_least("--output-len-mean", self.output_len_mean, 1)
        _at_least("--output-len-sigma", self.output_len_sigma, 0)
        if self.output_len_dist not in OUTPUT_LEN_DISTS:
            raise ValueError(f"--output-len-dist must be one of {', '.join(OUTPUT_LEN_DISTS)}.")
        if self.reasoning_field not in REASONING_FIELDS:
            raise ValueError(f"--reasoning-field must be one of {', '.join(REASONING_FIELDS)}.")
        for flag in (
            "reasoning_ratio",
            "error_rate",
            "rate_limit_rate",
            "disconnect_rate",
            "malformed_rate",
            "stall_rate",
            "error_event_rate",
            "batch_variance",
        ):
            value = getattr(self, flag)
            if not 0.0 <= value <= 1.0:  # also rejects NaN
                raise ValueError(f"{_flag(flag)} must be between 0 and 1.")
        if not 400 <= self.error_status <= 599:
            raise ValueError("--error-status must be an HTTP error status (400-599).")
        for flag in ("answer_accuracy", "first_correct"):
            if not 0.0 <= getattr(self, flag) <= 1.0:
                raise ValueError(f"{_flag(flag)} must be between 0 and 1.")
        if not isinstance(self.answer_thoughts, int) or self.answer_thoughts < 0:
            raise ValueError("--answer-thoughts must be an integer >= 0.")
        if self.answers is not None:
            from .answers import load_book

            object.__setattr__(self, "answer_book", load_book(self.answers))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _at_least(flag: str, value: float, low: float) -> None:
    if not value >= low:  # also rejects NaN
        raise ValueError(f"{flag} must be >= {low:g}.")


PRESETS: dict[str, SimConfig] = {
    # No latency at all: the client and the wire are all that is measured.
    "instant": SimConfig(ttft_ms=0.0, prefill_us_per_token=0.0, itl_ms=0.0, itl_ms_per_seq=0.0),
    # The default: quick enough for demos and tests, slow enough to look like streaming.
    "fast": SimConfig(),
    # Rough single-GPU figures for a Llama-3-8B in bf16 on one A100 80GB (~450k KV tokens).
    "llama-8b-a100": SimConfig(
        max_num_seqs=256,
        kv_tokens=450_000,
        max_model_len=8_192,
        ttft_ms=25.0,
        prefill_us_per_token=80.0,
        itl_ms=8.0,
        itl_ms_per_seq=0.09,
    ),
    # Rough figures for a Llama-3-70B in bf16 with tensor parallelism 4 on H100 80GB.
    "llama-70b-h100x4": SimConfig(
        max_num_seqs=256,
        kv_tokens=450_000,
        max_model_len=32_768,
        ttft_ms=45.0,
        prefill_us_per_token=70.0,
        itl_ms=15.0,
        itl_ms_per_seq=0.1,
    ),
}
DEFAULT_PRESET = "fast"

# Help text per field; the flag name, type and choices come from the dataclass itself.
_HELP: dict[str, str] = {
    "served_model_name": "model name(s) served; requests for any other get 404",
    "max_num_seqs": "most sequences decoded at once; more wait in a FIFO queue",
    "kv_tokens": "KV-cache budget in tokens; a sequence holds prompt + output tokens",
    "max_model_len": "longest prompt + max_tokens accepted; longer requests get 400",
    "ttft_ms": "fixed time from admission to the first token, before prefill cost",
    "prefill_us_per_token": "prefill cost per prompt token, added to the time to first token",
    "itl_ms": "time between tokens with one running sequence",
    "itl_ms_per_seq": "extra time between tokens per additional running sequence",
    "burst": "no timing at all: write each whole stream as fast as the socket takes it",
    "output_len_mean": "mean output length when the request does not force one (tokens)",
    "output_len_dist": "distribution of output lengths (capped by max_tokens)",
    "output_len_sigma": "shape (sigma of log) of the lognormal output-length distribution",
    "reasoning_ratio": "share of each chat output streamed as reasoning deltas (0..1)",
    "reasoning_field": "delta field that carries reasoning tokens",
    "seed": "seed for output lengths, texts and faults (default: random)",
    "error_rate": "probability that a request fails with --error-status before streaming",
    "error_status": "HTTP status used by --error-rate",
    "rate_limit_rate": "probability that a request gets 429 with Retry-After: 1",
    "disconnect_rate": "probability that a stream is cut (connection aborted) after a few tokens",
    "malformed_rate": "probability that one event of a stream is invalid JSON",
    "stall_rate": "probability that a stream pauses --stall-ms mid-way",
    "stall_ms": "length of a stall injected by --stall-rate",
    "error_event_rate": "probability of an error event inside a 200 stream, then [DONE]",
    "ignore_length_hints": "ignore min_tokens and ignore_eos, as servers that do not know them do",
    "batch_variance": "probability per decode step that a greedy (temperature 0) token flips while "
    "the batch holds more than one sequence, keyed by prompt, step and batch size, so that outputs "
    "depend on the batch as a kernel that is not batch-invariant makes them (0: batch-invariant)",
    "no_prefix_caching": "no prefix cache: every prompt token is prefilled, usage reports no "
    "cached tokens (by default, as vLLM, prompt blocks seen before are not prefilled again; "
    "--burst has no cache)",
    "enable_prompt_tokens_details": "report the cached prompt tokens in each usage "
    "(prompt_tokens_details.cached_tokens), as vLLM does with this flag",
    "answers": "JSONL answer book ({prompt or problem, answer, grader, choices} per line): a "
    "request whose last user message (or prompt) is in it gets reasoning, then \\boxed{answer}",
    "answer_accuracy": "share of --answers answers that are correct (0..1)",
    "first_correct": "where the first answer's step ends, as a share of the reasoning tokens (0..1)",
    "answer_thoughts": "reflection sub-chains after the first answer, each opening with a marker "
    "such as 'But wait'",
    "timing_log": "append one JSON line per finished request to this file",
    "access_log": "log each request to stderr (aiohttp access log)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset`` and one flag per :class:`SimConfig` field to ``parser``.

    Every flag defaults to ``None`` so that :func:`config_from_args` can tell an explicit flag
    from the preset's value.
    """
    group = parser.add_argument_group("simulated engine")
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help=f"starting values for the flags below (default: {DEFAULT_PRESET})",
    )
    for f in dataclasses.fields(SimConfig):
        if not f.init:
            continue
        kwargs: dict[str, Any] = {"default": None, "help": _HELP[f.name], "dest": f.name}
        default = getattr(PRESETS[DEFAULT_PRESET], f.name)
        if f.name == "served_model_name":
            kwargs.update(nargs="+", metavar="NAME")
        elif isinstance(default, bool):
            kwargs.update(action="store_true")
        elif f.name == "output_len_dist":
            kwargs.update(choices=OUTPUT_LEN_DISTS)
        elif f.name == "reasoning_field":
            kwargs.update(choices=REASONING_FIELDS)
        elif f.name == "seed":
            kwargs.update(type=int, metavar="N")
        elif f.name in ("timing_log", "answers"):
            kwargs.update(metavar="FILE")
        else:
            kwargs.update(type=type(default), metavar=_metavar(f.name))
        if not isinstance(default, bool) and f.name not in ("seed", "timing_log", "answers"):
            kwargs["help"] += f" ({DEFAULT_PRESET} preset: {_show(default)})"
        group.add_argument(_flag(f.name), **kwargs)


def _metavar(name: str) -> str:
    if name.endswith("_rate") or name in ("reasoning_ratio", "answer_accuracy", "batch_variance"):
        return "P"
    if name == "first_correct":
        return "F"
    if name == "answer_thoughts":
        return "K"
    if name.endswith("_ms") or name.endswith("_ms_per_seq"):
        return "MS"
    if name.endswith("_us_per_token"):
        return "US"
    if name == "error_status":
        return "STATUS"
    if name == "output_len_sigma":
        return "SIGMA"
    return "N"


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_from_args(ns: argparse.Namespace) -> SimConfig:
    """Build the config from parsed flags: the preset, overridden by every flag given."""
    base = PRESETS[getattr(ns, "preset", None) or DEFAULT_PRESET]
    changes = {
        f.name: getattr(ns, f.name)
        for f in dataclasses.fields(SimConfig)
        if f.init and getattr(ns, f.name, None) is not None
    }
    if "served_model_name" in changes:
        changes["served_model_name"] = tuple(changes["served_model_name"])
    return dataclasses.replace(base, **changes)
