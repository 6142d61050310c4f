"""Prompts and the dataset registry.

A dataset is one small module that calls ``register`` with a name, a one-line description and
a loader ``(WorkloadSpec) -> list[Prompt]``. ``perfbench/workload/__init__.py`` imports the
modules; adding a dataset is adding a module and one import line.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError

DATASETS_DIR = Path(__file__).resolve().parent / "data"  # also reached as datasets/ at the top


@dataclass(frozen=True, slots=True)
class Prompt:
    """One thing to send: chat ``messages`` or plain ``text`` (one of them), and what it expects.

    ``max_tokens`` overrides the run's --max-tokens for this prompt (e.g. the reply length of a
    recorded conversation); ``answer``, ``choices``, ``grader``, ``subset`` and ``metadata``
    carry what a grader needs.
    """

    id: str
    text: str | None = None
    messages: tuple[Mapping[str, Any], ...] | None = None
    max_tokens: int | None = None
    answer: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    dataset: str | None = None  # the registry name it came from (reports break results down by it)
    subset: str | None = None  # e.g. "level 3" or "algebra": what grading tables group by
    choices: tuple[str, ...] | None = None  # multiple choice: the options, in letter order
    grader: str | None = None  # which grader scores it ("math", "choice", "numeric", ...)
    exact_output: bool = False  # ask for exactly max_tokens (min_tokens + ignore_eos)
    tools: tuple[Mapping[str, Any], ...] | None = None  # chat: the tools offered (OpenAI's shape)
    # a synthetic prompt made unique per request: the span of its text that each request
    # replaces with its own head (``heads``), so that no two requests share more than the prefix
    unique_span: tuple[int, int] | None = None
    heads: UniqueHeads | None = None
    # a text built when its request is made rather than held (a trace row's blocks): neither
    # ``text`` nor ``messages`` then
    composed: Composed | None = None
    # a conversation: the user's later turns, each sent after the answer to the one before
    followups: tuple[Turn, ...] = ()

    def __post_init__(self) -> None:
        if self.composed is None and (self.text is None) == (self.messages is None):
            raise ValueError("a Prompt has either text or messages")

    @property
    def chars(self) -> int:
        if self.text is not None:
            return len(self.text)
        return sum(len(str(m.get("content", ""))) for m in self.messages or ())

    @property
    def turns(self) -> int:
        """How many turns the prompt is: 1, or a conversation's first and its followups."""
        return 1 + len(self.followups)

    def with_head(self, head: str) -> str:
        """The text with its ``unique_span`` replaced by ``head`` (a request's own)."""
        assert self.text is not None and self.unique_span is not None
        start, end = self.unique_span
        return self.text[:start] + head + self.text[end:]


@dataclass(frozen=True, slots=True)
class Turn:
    """A later user turn of a conversation: what the user says, and the reply length it asks
    for (the recorded reply's, or the synthetic one's, exactly when ``exact_output``)."""

    content: str
    max_tokens: int | None = None
    exact_output: bool = False


class Composed(Protocol):
    """A prompt's text, made for each request from the run's salt: a trace of 12,000 rows of
    12,000 tokens would hold about 580 MB of request bodies if every row's were kept."""

    @property
    def tokens(self) -> int:
        """The text's exact length in the workload's tokenizer."""
        ...

    def text(self, salt: int) -> str: ...


def last_user_text(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The text content of the last message with role ``user`` (None when there is none): what
    a chat prompt asks, for the simulator's answer book and the grading exports."""
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    return content if isinstance(content, str) else None


@dataclass(frozen=True, slots=True)
class UniqueHeads:
    """What makes each request's synthetic prompt its own: ``length`` one-token words, picked by
    the request's number (plus a salt drawn for the run, so that another run, or another
    invocation against the same server, does not send the same prompts again).

    ``words`` are pieces that count one token with and without a leading space, so a head of
    them, at the start of a prompt or after its shared prefix, always counts ``length`` tokens.
    Distinct for ``len(words) ** length`` requests (64 words and 6 of them: 68 billion).
    """

    words: tuple[str, ...]
    length: int

    def head(self, number: int) -> str:
        base = len(self.words)
        out = []
        for _ in range(self.length):
            number, digit = divmod(number, base)
            out.append(self.words[digit])
        return " ".join(out)


Loader = Callable[[WorkloadSpec], list[Prompt]]


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    load: Loader
    needs_path: bool = False


REGISTRY: dict[str, Dataset] = {}


def register(
    name: str, description: str, *, needs_path: bool = False
) -> Callable[[Loader], Loader]:
    def decorate(load: Loader) -> Loader:
        REGISTRY[name] = Dataset(name, description, load, needs_path)
        return load

    return decorate


MIX_SIZE = 10_000


def load_prompts(spec: WorkloadSpec) -> list[Prompt]:
    """The prompts of a workload, in dataset order; raises DatasetError with the fix."""
    if spec.sessions:
        _check_conversations(spec)
    if spec.mix:
        return _mixed(spec)
    if spec.prompt is not None:
        if not spec.prompt.strip():
            raise DatasetError("--prompt is empty; give the text to send")
        return [Prompt(id="prompt", text=spec.prompt, dataset="prompt")]
    dataset = REGISTRY.get(spec.dataset)
    if dataset is None:
        known = ", ".join(sorted(REGISTRY))
        raise DatasetError(f"unknown --dataset {spec.dataset!r}; known datasets: {known}")
    if dataset.needs_path and not spec.dataset_path:
        raise DatasetError(f"--dataset {spec.dataset} needs --dataset-path FILE")
    if spec.dataset_path and not Path(spec.dataset_path).is_file():
        raise DatasetError(f"--dataset-path {spec.dataset_path}: no such file")
    prompts = dataset.load(spec)
    if not prompts:
        raise DatasetError(f"--dataset {spec.dataset} gave no prompts; check the file's content")
    if any(p.dataset is None for p in prompts):
        prompts = [
            p if p.dataset else dataclasses.replace(p, dataset=spec.dataset) for p in prompts
        ]
    if spec.shuffle:
        order = random.Random(spec.seed).sample(range(len(prompts)), len(prompts))
        prompts = [prompts[i] for i in order]
    if spec.n > 1:  # each prompt n times in a row: the samples of one row share its prompt id
        prompts = [p for p in prompts for _ in range(spec.n)]
    return prompts


#: the datasets that make conversations: recorded turns, or synthetic ones of --turns
CONVERSATIONS = ("sharegpt", "random")


def _check_conversations(spec: WorkloadSpec) -> None:
    if spec.prompt is not None or spec.dataset not in CONVERSATIONS:
        what = "--prompt" if spec.prompt is not None else f"--dataset {spec.dataset}"
        raise DatasetError(
            f"{what} has no conversations: for --multi-turn/--turns use --dataset sharegpt "
            "(recorded turns) or --dataset random --turns N (synthetic turns)"
        )
    if spec.dataset == "random" and spec.turns is None:
        raise DatasetError("--dataset random makes conversations of --turns N turns: give --turns")


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc


def _mixed(spec: WorkloadSpec) -> list[Prompt]:
    """A collection: each slot drawn from one dataset by weight (seeded), that dataset's rows in turn.

    A mix of eval datasets holds each row exactly once, the weights setting how the datasets
    interleave; any other mix holds ``MIX_SIZE`` slots drawn by weight (cycling each dataset's
    rows) and the run cycles it.
    """
    parts = []
    for name, path, weight in spec.mix:
        sub = dataclasses.replace(spec, mix=(), dataset=name, dataset_path=path, shuffle=False)
        parts.append((load_prompts(sub), weight))
    rng = random.Random(spec.seed)
    if all(any(p.answer is not None for p in prompts) for prompts, _ in parts):
        return _interleaved(parts, rng)
    size = max(MIX_SIZE, sum(len(p) for p, _ in parts))
    picks = rng.choices(range(len(parts)), weights=[w for _, w in parts], k=size)
    cursors = [0] * len(parts)
    out = []
    for k in picks:
        prompts = parts[k][0]
        out.append(prompts[cursors[k] % len(prompts)])
        cursors[k] += 1
    return out


def _interleaved(parts: list[tuple[list[Prompt], float]], rng: random.Random) -> list[Prompt]:
    """Every row of every dataset once; the next row comes from a dataset drawn by weight."""
    queues = [(list(prompts), weight) for prompts, weight in parts]
    cursors = [0] * len(queues)
    out: list[Prompt] = []
    while True:
        live = [k for k, (prompts, _) in enumerate(queues) if cursors[k] < len(prompts)]
        if not live:
            return out
        k = rng.choices(live, weights=[queues[i][1] for i in live])[0]
        out.append(queues[k][0][cursors[k]])
        cursors[k] += 1
