"""Thinking efficiency: how much of its reasoning a model needed before it had the answer.

The six figures of ThinkBench (popularised by EvalScope), per sample, averaged per subset:

* reasoning tokens T: the tokens of the thinking text;
* first-correct tokens T̂: the tokens from the start of the thinking text to the end of the
  first step at which a correct final answer can be recognised (0 when no step has one);
* reflection tokens T − T̂: what the model spent after it already had the answer;
* token efficiency T̂ / T (0 when no step is correct, and when there is no thinking text);
* thought count: sub-chain markers ("alternatively", "but wait", …) in the thinking text,
  case-insensitive, whole phrases at word boundaries ("waitress" is no "wait");
* accuracy: the grade of the final answer, from :mod:`.graders` (passed in).

The thinking text is the captured reasoning (``reasoning_content``), else the output before
its last ``</think>`` (a leading ``<think>`` dropped), else the whole output. Steps are
character spans into it, so a prefix's tokens are counted on the exact text up to a step's
end. Tokens come from the model's tokenizer when one is given (``token_source`` "tokenizer");
without one, T is the server's reasoning-token usage and T̂ = T × chars(prefix) / chars(text)
("usage"); without that either, ceil(chars / 4) ("chars").

Where these figures differ from EvalScope's script, on purpose: T̂ includes the step in which
the answer appears (EvalScope stops before it, so an answer in the first step gives T̂ = 0);
markers are counted as whole phrases, not substrings; accuracy is the final answer's grade,
not "some step was correct"; and ``max_think_tokens`` filters on T, not on the whole output.

Everything here is a pure function of plain data, safe in the grading worker processes of
:mod:`.pool` (the checker of :func:`candidate_checker` pickles). The LLM judge, which finds the
first correct step or re-paragraphs the text instead, is in :mod:`.judge`.

>>> text = "Let x = 2.\\n\\nSo the answer is 4.\\n\\nBut wait, check: 2 + 2 = 4."
>>> f = analyse(text, None, lambda c: c == "4", count_tokens=lambda s: len(s.split()))
>>> f.reasoning_tokens, f.first_correct_tokens, f.first_correct_step, f.thought_count
(17, 9, 1, 1)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from perfbench.config import STEP_STRATEGIES, THOUGHT_MARKERS
from perfbench.grade import extract, graders
from perfbench.tokens import estimate_tokens

Source = Literal["reasoning", "think_tag", "output"]
TokenSource = Literal["tokenizer", "usage", "chars"]
Span = tuple[int, int]

THINK_START, THINK_END = "<think>", "</think>"
#: A "= value" at the end of a step longer than this is a formula, not an answer.
MAX_EQUALS_VALUE = 60
#: Distinct candidate answers checked per thinking text, at most (see first_correct_step).
MAX_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class StepSplit:
    """The steps of a thinking text and how they were found (``note`` says why on a fallback)."""

    steps: tuple[Span, ...]
    strategy: str  # "separator", "keywords" or "llm"
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ThinkFigures:
    """One sample's thinking figures; ``first_correct_step`` indexes ``steps`` (0-based)."""

    reasoning_tokens: int
    first_correct_tokens: int
    reflection_tokens: int
    efficiency: float
    thought_count: int
    steps: tuple[Span, ...]
    first_correct_step: int | None
    source: Source
    token_source: TokenSource
    strategy: str
    note: str | None = None


# -- the thinking text ----------------------------------------------------------------------------


def thinking_text(reasoning: str | None, output: str | None) -> tuple[str, Source]:
    """The text whose tokens count as thinking, and where it came from."""
    if reasoning and reasoning.strip():
        return reasoning, "reasoning"
    output = output or ""
    at = output.rfind(THINK_END)
    if at < 0:
        return output, "output"
    text = output[:at]
    opened = text.lstrip()
    if opened.startswith(THINK_START):
        text = opened[len(THINK_START) :]
    return text, "think_tag"


# -- thoughts and steps ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _marker_pattern(markers: tuple[str, ...]) -> re.Pattern[str]:
    words = [m.strip() for m in markers]
    if not words or not all(words):
        raise ValueError("thought markers must be non-empty phrases")
    # Longest first, so that "but wait" wins over a "wait" in the same list and counts once.
    phrases = sorted({r"\s+".join(map(re.escape, w.split())) for w in words}, key=len, reverse=True)
    return re.compile(rf"(?<!\w)(?:{'|'.join(phrases)})(?!\w)", re.IGNORECASE)


def count_thoughts(text: str, markers: Sequence[str] = THOUGHT_MARKERS) -> int:
    """Marker occurrences: case-insensitive, whole phrases, any whitespace between words."""
    return sum(1 for _ in _marker_pattern(tuple(markers)).finditer(text))


_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


def split_steps(text: str, strategy: str, markers: Sequence[str] = THOUGHT_MARKERS) -> list[Span]:
    """The steps of ``text`` as (start, end) spans, trimmed of whitespace, empty ones dropped.

    ``separator`` cuts at blank lines (one or more empty or whitespace-only lines);
    ``keywords`` cuts before each marker occurrence. ``llm`` needs a judge: see
    :meth:`.judge.Judge.paragraphs`.
    """
    if strategy == "separator":
        cuts = [(m.start(), m.end()) for m in _BLANK_LINES.finditer(text)]
        starts = [0] + [end for _, end in cuts]
        ends = [start for start, _ in cuts] + [len(text)]
    elif strategy == "keywords":
        starts = [0] + [m.start() for m in _marker_pattern(tuple(markers)).finditer(text)]
        ends = starts[1:] + [len(text)]
    elif strategy == "llm":
        raise ValueError("the llm strategy re-paragraphs with a judge: use Judge.paragraphs")
    else:
        raise ValueError(f"unknown step strategy {strategy!r}; choose from {STEP_STRATEGIES}")
    spans = (trim_span(text, a, b) for a, b in zip(starts, ends))
    return [span for span in spans if span is not None]


def trim_span(text: str, start: int, end: int) -> Span | None:
    """``text[start:end]`` without its surrounding whitespace, as a span; None when empty."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


# -- the first correct step -----------------------------------------------------------------------

_EQUALS = re.compile(r"(?<![<>!=:\\])=(?!=)")
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")  # a word that is no LaTeX command


def answer_candidates(step: str) -> list[str]:
    """What a step offers as a final answer, in order, without repeats.

    Every boxed expression; the value of each line's "the answer is …" / "Answer: …" phrase;
    and the value after the last "=" of the step's last line, when it is short and has no
    words of three letters or more (LaTeX commands aside): "= 42 cm", not "= 42, so we …".
    """
    found = [inside for _, _, inside in extract.boxed_all(step)]
    for line in step.splitlines():
        phrase = extract.final_answer_line(line)
        if phrase is not None:
            found.append(phrase)
    lines = step.strip().splitlines()
    if lines:
        last = lines[-1]
        equals = list(_EQUALS.finditer(last))
        if equals:
            value = _clean_value(last[equals[-1].end() :])
            if value and len(value) <= MAX_EQUALS_VALUE and not _PROSE.search(value):
                found.append(value)
    return list(dict.fromkeys(c for c in (f.strip() for f in found) if c))


def _clean_value(value: str) -> str:
    value = value.strip()
    changed = True
    while changed and value:
        before = value
        value = value.rstrip(".,;:!").strip()
        for closer in ("$$", "$", "\\]", "\\)"):
            value = value.removesuffix(closer).strip()
        value = value.lstrip("$").strip()
        changed = value != before
    return value


def first_correct_step(
    text: str, steps: Sequence[Span], is_correct: Callable[[str], bool]
) -> int | None:
    """Index of the earliest step holding a candidate answer that ``is_correct`` accepts.

    At most ``MAX_CANDIDATES`` distinct candidates are checked (each costs a math-verify parse
    and comparison, ~10 ms): a thinking text with more guesses than that is searched only up to
    the last step whose candidates fit.
    """
    checked: dict[str, bool] = {}
    for index, (start, end) in enumerate(steps):
        for candidate in answer_candidates(text[start:end]):
            if candidate not in checked:
                if len(checked) >= MAX_CANDIDATES:
                    return None
                checked[candidate] = bool(is_correct(candidate))
            if checked[candidate]:
                return index
    return None


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    """Is one candidate answer right? A picklable ``is_correct`` built on :mod:`.graders`."""

    grader: str
    gold: str
    choices: tuple[str, ...] | None = None

    def __call__(self, candidate: str) -> bool:
        candidate = candidate.strip()
        if not candidate:
            return False
        if self.grader == "math":
            if "".join(candidate.split()) == "".join(self.gold.strip().strip("$").split()):
                return True
            try:
                return graders.equivalent(self.gold, candidate)
            except Exception:  # math-verify on model text: a failure is a wrong candidate
                return False
        if self.grader == "regex":  # the pattern finds the answer in a whole text, not here
            return candidate == self.gold.strip()
        if self.grader == "choice":  # boxed, so that "\\text{C}" and "(C)" read as letters too
            candidate = f"\\boxed{{{candidate}}}"
        return graders.grade(self.grader, candidate, self.gold, choices=self.choices).correct


def candidate_checker(
    grader: str, gold: str, choices: Sequence[str] | None = None
) -> Callable[[str], bool]:
    """The ``is_correct`` for :func:`first_correct_step`, the way ``grader`` compares answers.

    ``math``: equivalence by math-verify; ``choice``, ``numeric``, ``exact``: the grader run
    on the candidate alone; ``regex``: the candidate equal to the gold, whitespace trimmed.
    """
    if grader not in graders.GRADERS:
        raise ValueError(f"unknown grader {grader!r}; choose from {', '.join(graders.GRADERS)}")
    return AnswerCheck(grader, gold, tuple(choices) if choices is not None else None)


# -- tokens and figures ---------------------------------------------------------------------------


def _prefix_counter(
    text: str,
    source: Source,
    count_tokens: Callable[[str], int] | None,
    usage_reasoning_tokens: int | None,
) -> tuple[Callable[[int], int], TokenSource]:
    """``tokens(end)``, the tokens of ``text[:end]``, and where the counts come from."""
    if count_tokens is not None:
        counter, total = count_tokens, count_tokens(text)

        def by_tokenizer(end: int) -> int:  # a prefix never counts more than the whole
            return total if end >= len(text) else min(total, counter(text[:end]))

        return by_tokenizer, "tokenizer"
    if usage_reasoning_tokens and source != "output" and text:
        usage = usage_reasoning_tokens

        def by_usage(end: int) -> int:
            return round(usage * min(end, len(text)) / len(text))

        return by_usage, "usage"

    def by_chars(end: int) -> int:
        return estimate_tokens(min(end, len(text)))

    return by_chars, "chars"


def measure(
    text: str,
    source: Source,
    split: StepSplit,
    first: int | None,
    *,
    markers: Sequence[str] = THOUGHT_MARKERS,
    count_tokens: Callable[[str], int] | None = None,
    usage_reasoning_tokens: int | None = None,
) -> ThinkFigures:
    """The figures of a thinking text whose steps and first correct step are already known.

    ``usage_reasoning_tokens`` (the server's count) is used only without ``count_tokens``, and
    only for a text that is reasoning (captured, or inside think tags), not a whole output.
    """
    if first is not None and not 0 <= first < len(split.steps):
        raise ValueError(f"first correct step {first} is not one of {len(split.steps)} steps")
    tokens, token_source = _prefix_counter(text, source, count_tokens, usage_reasoning_tokens)
    total = tokens(len(text))
    useful = 0 if first is None else tokens(split.steps[first][1])
    return ThinkFigures(
        reasoning_tokens=total,
        first_correct_tokens=useful,
        reflection_tokens=total - useful,
        efficiency=useful / total if total > 0 else 0.0,
        thought_count=count_thoughts(text, markers),
        steps=split.steps,
        first_correct_step=first,
        source=source,
        token_source=token_source,
        strategy=split.strategy,
        note=split.note,
    )


def analyse(
    reasoning: str | None,
    output: str | None,
    is_correct: Callable[[str], bool],
    *,
    markers: Sequence[str] = THOUGHT_MARKERS,
    strategy: str = "separator",
    count_tokens: Callable[[str], int] | None = None,
    usage_reasoning_tokens: int | None = None,
) -> ThinkFigures:
    """One sample's figures, rule-based: thinking text, steps, first correct step, tokens.

    ``is_correct`` is usually ``candidate_checker(grader, gold, choices)``. With a judge, do
    the same in three calls: :func:`thinking_text`, ``Judge.paragraphs`` or
    :func:`split_steps`, ``Judge.first_correct_step``, then :func:`measure`.
    """
    text, source = thinking_text(reasoning, output)
    split = StepSplit(tuple(split_steps(text, strategy, markers)), strategy)
    first = first_correct_step(text, split.steps, is_correct)
    return measure(
        text,
        source,
        split,
        first,
        markers=markers,
        count_tokens=count_tokens,
        usage_reasoning_tokens=usage_reasoning_tokens,
    )


# -- per-subset means -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThinkRow:
    """One sample for :func:`aggregate`: its subset, figures and final-answer grade."""

    subset: str
    figures: ThinkFigures
    correct: bool


@dataclass(frozen=True, slots=True)
class ThinkSummary:
    """Means over a subset's kept samples (None when none was kept)."""

    subset: str
    num: int  # samples kept
    over_limit: int  # samples dropped because T > max_think_tokens
    reasoning_tokens: float | None
    first_correct_tokens: float | None
    reflection_tokens: float | None
    efficiency: float | None  # mean of the per-sample ratios T̂ / T
    thought_count: float | None
    accuracy: float | None


def aggregate(
    rows: Iterable[ThinkRow], *, max_think_tokens: int | None = None, count: int | None = None
) -> list[ThinkSummary]:
    """Per-subset means, subsets in order of first appearance; ``rows`` in request order.

    As ThinkBench does, per subset: keep the samples whose T is at most ``max_think_tokens``,
    then the first ``count`` of those.
    """
    if max_think_tokens is not None and max_think_tokens < 1:
        raise ValueError("max_think_tokens must be at least 1")
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")
    kept: dict[str, list[ThinkRow]] = {}
    over: dict[str, int] = {}
    for row in rows:
        group = kept.setdefault(row.subset, [])
        over.setdefault(row.subset, 0)
        if max_think_tokens is not None and row.figures.reasoning_tokens > max_think_tokens:
            over[row.subset] += 1
        elif count is None or len(group) < count:
            group.append(row)
    return [_summary(subset, group, over[subset]) for subset, group in kept.items()]


def _summary(subset: str, group: list[ThinkRow], over_limit: int) -> ThinkSummary:
    def mean(values: Iterable[float]) -> float | None:
        items = list(values)
        return sum(items) / len(items) if items else None

    figures = [row.figures for row in group]
    return ThinkSummary(
        subset=subset,
        num=len(group),
        over_limit=over_limit,
        reasoning_tokens=mean(f.reasoning_tokens for f in figures),
        first_correct_tokens=mean(f.first_correct_tokens for f in figures),
        reflection_tokens=mean(f.reflection_tokens for f in figures),
        efficiency=mean(f.efficiency for f in figures),
        thought_count=mean(f.thought_count for f in figures),
        accuracy=mean(float(row.correct) for row in group),
    )
