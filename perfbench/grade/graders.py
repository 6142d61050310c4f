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

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from perfbench.grade import extract

GRADERS = ("math", "choice", "numeric", "exact", "regex")

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
    from math_verify import parse, verify

    timeouts = threading.current_thread() is threading.main_thread()
    parse_limit = PARSE_TIMEOUT if timeouts else None
    gold_parsed = parse(_dollars(gold), parsing_timeout=parse_limit)
    pred_parsed = parse(text, parsing_timeout=parse_limit)
    boxed = extract.last_boxed(text)
    pred = boxed if boxed is not None else extract.final_answer_line(text)
    if len(pred_parsed) >= 2 and isinstance(pred_parsed[1], str):
        pred = pred_parsed[1]
    if not gold_parsed:
        return Verdict(pred, False, pred is not None, "the gold answer did not parse")
    if not pred_parsed:
        return Verdict(pred, False, False)
    correct = verify(gold_parsed, pred_parsed, timeout_seconds=VERIFY_TIMEOUT if timeouts else None)
    return Verdict(pred, bool(correct), boxed is not None or pred is not None)


def equivalent(gold: str, candidate: str) -> bool:
    """Is one extracted candidate answer (e.g. a boxed expression) equivalent to the gold?"""
    return _math(f"${candidate}$", gold, None, None).correct


def _dollars(gold: str) -> str:
    gold = gold.strip()
    return gold if gold.startswith("$") else f"${gold}$"


def _choice(text: str, gold: str, choices: Sequence[str] | None, pattern: str | None) -> Verdict:
    n = len(choices) if choices else 4
    letter = extract.choice_letter(text, n)
    want = gold.strip().strip("()").upper()
    if len(want) != 1 and choices:  # the gold given as the option's text
        texts = [c.strip() for c in choices]
        if gold.strip() in texts:
            want = chr(ord("A") + texts.index(gold.strip()))
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
