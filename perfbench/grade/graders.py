"""Graders: does an answer text match the gold answer?

One function per grader, each ``(text, gold, choices, pattern) -> Verdict``, chosen by name
(a dataset names its grader; ``--grader`` overrides it):

* ``math``: equivalence by math-verify (LaTeX, fractions, intervals, sets, percentages, units).
  The gold answer is wrapped in ``$…$`` before it is parsed (bare, ``\\dfrac{9}{7}`` parses to
  nothing); the prediction is the whole answer text, from which math-verify takes the last
  ``\\boxed{}`` or final-answer phrase.
* ``choice``: the option letter (see :func:`.extract.choice_letter`) against the gold letter.
* ``numeric``: GSM8K-style: the final number, thousands separators and currency signs removed,
  equal to the gold number within 1e-6 relative.
* ``exact``: the boxed answer (or the text's last line) equal to the gold answer, whitespace
  trimmed.
* ``regex``: the last match of ``pattern`` (its first group if it has one) equal to the gold.

Nothing here evaluates model text as code: math-verify parses LaTeX into sympy objects with its
own grammar, and the rest is string work. math-verify bounds its own work with SIGALRM, which
works only in a process's main thread, so these functions are meant to run in the worker
processes of :mod:`.pool` (in another thread they run without math-verify's time limits).
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from perfbench.config import GRADERS
from perfbench.grade import extract

__all__ = ["GRADERS", "Verdict", "equivalent", "grade"]

#: math-verify's own limits (seconds) for parsing one text and for comparing two answers.
PARSE_TIMEOUT = 5
VERIFY_TIMEOUT = 5


@dataclass(frozen=True, slots=True)
class Verdict:
    """A graded answer: what was extracted, whether it is right, and whether it was findable."""

    pred: str | None
    correct: bool
    format_ok: bool  # the text had an answer in the expected form (boxed, letter, number)
    error: str | None = None  # the grader itself failed (timeout, parser error): counted wrong


def grade(
    grader: str,
    text: str,
    gold: str,
    *,
    choices: Sequence[str] | None = None,
    pattern: str | None = None,
) -> Verdict:
    """Grade one answer text (already cut with ``remove_until``) against ``gold``."""
    try:
        fn = _GRADERS[grader]
    except KeyError:
        raise ValueError(f"unknown grader {grader!r}; choose from {', '.join(GRADERS)}") from None
    return fn(text, gold, choices, pattern)


def _math(text: str, gold: str, choices: Sequence[str] | None, pattern: str | None) -> Verdict:
    text = _FBOX.sub(r"\\boxed", text)  # math-verify knows only \boxed; extract knows both
    gold_parsed, gold_timeout = _parse_gold(gold)
    pred_parsed, pred_timeout = _parse(_without_earlier_boxes(text))
    boxed = extract.last_boxed(text)
    pred = boxed if boxed is not None else extract.final_answer_line(text)
    if len(pred_parsed) >= 2 and isinstance(pred_parsed[1], str):
        pred = pred_parsed[1]
    if not gold_parsed:
        why = "math-verify timed out parsing the gold answer" if gold_timeout else None
        return Verdict(pred, False, pred is not None, why or "the gold answer did not parse")
    if not pred_parsed:
        why = "math-verify timed out parsing the answer" if pred_timeout else None
        return Verdict(pred, False, False, why)
    # math-verify equates 9% with 9 but not 12.5% with 12.5 (it does so only for integers):
    # also offer the bare number of a plain percentage, on either side.
    gold_bare = _percent_free(gold)
    if gold_bare is not None:
        gold_parsed = [*gold_parsed, *_parse(f"${gold_bare}$")[0]]
    pred_bare = _percent_free(pred or "")
    if pred_bare is not None:
        pred_parsed = [*pred_parsed, *_parse(f"${pred_bare}$")[0]]
    correct, timed_out = _verify(gold_parsed, pred_parsed)
    why = "math-verify timed out comparing the answers" if timed_out and not correct else None
    return Verdict(pred, correct, boxed is not None or pred is not None, why)


def _without_earlier_boxes(text: str) -> str:
    """The text after the boxes that precede the final answer, so that the last box wins.

    math-verify gathers every box of a text into one set when it falls back to its greedy
    ``\\boxed{.+}`` pattern ("First \\boxed{2}. ... so \\boxed{3}." grades as {2, 3}). Boxes
    joined to the last one by "and", "or" or a comma stay: "\\boxed{2} and \\boxed{3}" is the
    answer {2, 3}.
    """
    boxes = extract.boxed_all(text)
    if len(boxes) < 2:
        return text
    group_start = boxes[-1][0]
    for start, end, _ in reversed(boxes[:-1]):
        if end > group_start:  # a box around the final one
            continue
        if _JOINED.fullmatch(text[end:group_start]):
            group_start = start
            continue
        return text[end:]
    return text


_JOINED = re.compile(r"[\s$]*(?:,|(?:,\s*)?(?:and|or))[\s$]*")
_FBOX = re.compile(r"\\fbox(?![A-Za-z])")
_PERCENT = re.compile(r"\s*\$?\s*(-?(?:\d+(?:\.\d+)?|\.\d+))\s*\\?%\s*\$?\s*")


def _percent_free(answer: str) -> str | None:
    match = _PERCENT.fullmatch(answer)
    return match.group(1) if match else None


def _limit(seconds: int) -> int | None:
    # SIGALRM works only in a process's main thread; elsewhere math-verify must run unbounded.
    return seconds if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> tuple[list[object], bool]:
    """math-verify's parse: (the parsed answers, or [] when none; did it time out?)."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        return list(parse(text, parsing_timeout=_limit(PARSE_TIMEOUT), raise_on_error=True)), False
    except TimeoutException:
        return [], True
    except Exception:  # math-verify's own choice when not raising: no answer
        return [], False


@functools.lru_cache(maxsize=64)
def _parse_gold(gold: str) -> tuple[list[object], bool]:
    """The gold answer parsed once per worker: a thinking pass checks many candidates against it."""
    parsed, timed_out = _parse(_dollars(gold))
    return parsed, timed_out


def _verify(gold: list[object], pred: list[object]) -> tuple[bool, bool]:
    """math-verify's verify over every (gold, pred) pair: (any equal?, did any pair time out?).

    Pair by pair, as verify does, but with ``raise_on_error`` so that a timeout is reported and
    not silently scored as a wrong answer.
    """
    from math_verify import verify
    from math_verify.errors import TimeoutException

    timed_out = False
    for g, p in itertools.product(gold, pred):
        try:
            if verify(g, p, timeout_seconds=_limit(VERIFY_TIMEOUT), raise_on_error=True):
                return True, timed_out
        except TimeoutException:
            timed_out = True
        except Exception:  # verify scores a pair it cannot compare as unequal
            continue
    return False, timed_out


def equivalent(gold: str, candidate: str) -> bool:
    """Is one extracted candidate answer (e.g. a boxed expression) equivalent to the gold?"""
    return _math(f"${candidate}$", gold, None, None).correct


def _dollars(gold: str) -> str:
    gold = gold.strip()
    return gold if gold.startswith("$") else f"${gold}$"


def _choice(text: str, gold: str, choices: Sequence[str] | None, pattern: str | None) -> Verdict:
    n = len(choices) if choices else 4
    letter = extract.choice_letter(text, n)
    want = extract.gold_letter(gold, choices)
    return Verdict(letter, letter is not None and letter == want, letter is not None)


def _numeric(text: str, gold: str, choices: Sequence[str] | None, pattern: str | None) -> Verdict:
    pred = extract.final_number(text)
    want = extract.parse_number(gold)
    if want is None:
        return Verdict(pred, False, pred is not None, "the gold answer is not a number")
    got = None if pred is None else extract.parse_number(pred)
    if got is None:
        return Verdict(pred, False, False)
    return Verdict(pred, abs(got - want) <= 1e-6 * max(1.0, abs(want)), True)


def _exact(text: str, gold: str, choices: Sequence[str] | None, pattern: str | None) -> Verdict:
    pred = extract.last_boxed(text)
    boxed = pred is not None
    if pred is None:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        pred = lines[-1] if lines else None
    return Verdict(pred, pred is not None and pred.strip() == gold.strip(), boxed)


def _regex(text: str, gold: str, choices: Sequence[str] | None, pattern: str | None) -> Verdict:
    if not pattern:
        raise ValueError("the regex grader needs a pattern (--regex)")
    matches = list(re.finditer(pattern, text))
    if not matches:
        return Verdict(None, False, False)
    last = matches[-1]
    pred = last.group(1) if last.re.groups else last.group(0)
    pred = (pred or "").strip()
    return Verdict(pred, pred == gold.strip(), True)


_Grader = Callable[[str, str, "Sequence[str] | None", "str | None"], Verdict]
_GRADERS: dict[str, _Grader] = {
    "math": _math,
    "choice": _choice,
    "numeric": _numeric,
    "exact": _exact,
    "regex": _regex,
}
