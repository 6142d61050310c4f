"""Answering prompts that carry a gold answer: the answer book and the shape of one answer.

With ``--answers FILE`` the sim reads a JSONL *answer book*, one row per prompt::

    {"prompt": "exact text", "answer": "\\\\frac{9}{7}", "grader": "math", "choices": null}

``prompt`` is matched exactly against the request's key text: the content of the last message
with role ``user`` (chat; a list of content parts counts as its text parts joined by a newline)
or the prompt string (completions). A row may give ``problem`` instead, matched as a substring of
the key text when no exact match exists (the longest such problem wins). ``grader`` and
``choices`` are optional; ``"choice"`` and ``"code"`` change the format. :func:`write_answer_book`
writes the file from a client's prompts.

A ``"code"`` row's ``answer`` is a correct program and its optional ``wrong`` a broken one (the
default prints 0): the final part is the program in a fenced block, ```` ```python ```` … ```` ``` ````,
and the reasoning names no answer.

An answered choice keeps the length the sim planned (L tokens, one token per streamed chunk); only
its text changes. It is reasoning of R tokens, then a final part::

    <think>Then the ... batch, ... stream.\\n\\n        (plain steps, 15-40 filler tokens each)
    Next the ... so the answer is \\boxed{G}.\\n\\n      (the first-answer step: ends at T-hat)
    But wait, ... stream.\\n\\n                           (K reflection sub-chains, each opening
    Alternatively, ... so the answer is still \\boxed{G}.  with one marker; the last restates G)
    </think>\\n\\nThe final answer is $\\boxed{G}$.        (choice: "The answer is (C).")

With ``--reasoning-ratio`` > 0 on chat, the reasoning goes in the reasoning field instead of
``<think>…</think>`` (R = round(ratio * L), at least the structure's minimum), and the content is
plain steps then the final part. A wrong sample has a wrong answer W in place of G everywhere.

**Where the first answer ends.** Counting reasoning tokens from 1 (``<think>`` and ``</think>``
are not reasoning tokens; the ``\\n\\n`` separators are), the step that holds the first candidate
answer ends with its ``}.`` token at exactly::

    T-hat = min(max(floor(F * R + 1/2), ANSWER_STEP_MIN), R - tail_min(K))

where F is ``--first-correct``, K is ``--answer-thoughts`` and R the reasoning tokens planned;
:func:`first_answer_at` computes it. The clamps only bite when F is near 0 or 1 or R is short,
so |T-hat / R - F| <= 1 / (2R) otherwise. When L is too short for the structure the text is cut at
L tokens, like any other output; the ``x-perfbench-sim-answer`` header and the timing log report
what was emitted (see :meth:`Answer.describe`).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from perfbench.grade.extract import gold_letter

from .tokens import WORDS

Token = tuple[str, bytes]

# perfbench.config.THOUGHT_MARKERS are the words a thinking-efficiency grader counts as opening
# a new sub-chain of thought: no filler or fixed phrase here contains any of them.


def _tok(text: str) -> Token:
    return (text, msgspec.json.encode(text))


def _toks(*texts: str) -> list[Token]:
    return [_tok(t) for t in texts]


# Filler: the pool's words minus any that could form a marker, a candidate answer or an
# "answer is" phrase. Steps start with a capitalised word and end with ".".
_BANNED = {"another", "way", "ways", "but", "wait", "answer", "so", "method", "angle", "approach"}
_FILLER_WORDS = [_tok(" " + w) for w in WORDS if w not in _BANNED and len(w) > 1]
_STARTERS = _toks("Then", "Now", "Next", "First", "Here", "Also", "Still", "Thus", "Given")
_SHORT_STEPS = _toks("Right.", "Good.", "Fine.", "Okay.")
_FILLER_POOL_SIZE = 1 << 13
_FILLER: tuple[Token, ...] = tuple(random.Random(0).choices(_FILLER_WORDS, k=_FILLER_POOL_SIZE))

SEP = _tok("\n\n")
_DOT = _tok(".")
_THINK = _tok("<think>")
_END_THINK = _tok("</think>")
_OPENERS: tuple[list[Token], ...] = (
    _toks("But", " wait", ","),
    _toks("Alternatively", ","),
    _toks("Let", " me", " reconsider", "."),
    _toks("Another", " way", " to", " see", " it", ":"),
    _toks("Another", " approach", ":"),
    _toks("Another", " method", ":"),
    _toks("Another", " angle", ":"),
)
_OPENER_MAX = max(len(o) for o in _OPENERS)
_SO = _toks(" so", " the", " answer", " is", " \\boxed{")
_SO_STILL = _toks(" so", " the", " answer", " is", " still", " \\boxed{")
_CLOSE = _tok("}.")
_FINAL_BOXED = _toks("The", " final", " answer", " is", " $\\boxed{")
_FINAL_BOXED_END = _toks("}$", ".")
_FINAL_CHOICE = _toks("The", " answer", " is", " (")
_FINAL_CHOICE_END = _toks(").")

# Step lengths in tokens: a capitalised first word, 15-40 filler tokens, the closing token(s).
_FILL_LO, _FILL_HI = 15, 40
_STEP_LO, _STEP_HI = 1 + _FILL_LO + 1, 1 + _FILL_HI + 1
#: The shortest step that can hold the first answer: a first word and "so the answer is \boxed{G}."
ANSWER_STEP_MIN = 1 + len(_SO) + 2
_MARKER_STEP_MIN = _OPENER_MAX + 1  # an opener and "."
_RESTATE_EXTRA = len(_SO_STILL) + 2 - 1  # "so the answer is still \boxed{G}." instead of "."


def tail_min(thoughts: int) -> int:
    """The fewest reasoning tokens after the first answer's step that hold K reflections."""
    return thoughts * (1 + _MARKER_STEP_MIN) + (_RESTATE_EXTRA if thoughts else 0)


def reasoning_min(thoughts: int) -> int:
    """The fewest reasoning tokens that hold the whole structure; shorter reasoning is raised."""
    return ANSWER_STEP_MIN + tail_min(thoughts)


def first_answer_at(reasoning: int, first: float, thoughts: int) -> int:
    """T-hat: the reasoning token (counted from 1) that ends the first candidate answer's step."""
    return min(max(int(first * reasoning + 0.5), ANSWER_STEP_MIN), reasoning - tail_min(thoughts))


# -- the answer book ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """One gold answer, with what the sim writes for it when right and how it picks a wrong one."""

    answer: str
    grader: str | None
    choices: tuple[str, ...] | None
    right: str  # the candidate the sim writes when correct (one token)
    broken: str | None = None  # code: the program written when wrong

    def wrong(self, rng: random.Random) -> str:
        """A candidate answer that the row's grader cannot take for the gold one."""
        if self.grader == "code":
            return self.broken or "print(0)\n"
        if self.grader == "choice":
            n = len(self.choices) if self.choices else 4
            others = [chr(ord("A") + i) for i in range(n) if chr(ord("A") + i) != self.right]
            return rng.choice(others) if others else chr(ord(self.right[:1] or "A") + 1)
        return _wrong_math(self.right, rng)


def _row(
    answer: str, grader: str | None, choices: Sequence[str] | None, broken: str | None = None
) -> AnswerRow:
    if grader == "code":  # a program: its indentation and line ends are part of it
        return AnswerRow(answer, grader, None, answer, broken)
    gold = answer.strip()
    right = gold
    if grader == "choice":
        right = gold_letter(gold, choices)
    elif len(gold) > 2 and gold.startswith("$") and gold.endswith("$"):
        right = gold.strip("$").strip()
    return AnswerRow(answer, grader, tuple(choices) if choices is not None else None, right)


_INT = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d*\.\d+")


def _wrong_math(gold: str, rng: random.Random) -> str:
    """An answer math-verify does not find equal to ``gold``: a number moved by a non-zero
    offset, an equation with a wrong right-hand side, or ``{gold}+1``."""
    offset = rng.choice((-3, -2, -1, 1, 2, 3, 4, 5))
    plain = gold.replace(",", "").replace("\\$", "").replace("$", "").strip()
    if _INT.fullmatch(plain):
        return str(int(plain) + offset)
    if _DECIMAL.fullmatch(plain):
        try:
            return str(Decimal(plain) + offset)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            pass
    if "=" in gold:
        lhs, rhs = gold.rsplit("=", 1)
        return f"{lhs}={_wrong_math(rhs.strip(), rng)}"
    if "infty" in gold:  # infinity plus anything is still infinity
        return "0"
    return f"{{{gold}}}+1"


class AnswerBook:
    """The loaded answer book: exact prompts in a dict, problems searched as substrings."""

    CACHE_SIZE = 4096

    def __init__(self, exact: dict[str, AnswerRow], problems: list[tuple[str, AnswerRow]]) -> None:
        self.exact = exact
        # Longest first, so that the most specific problem wins.
        self.problems = sorted(problems, key=lambda p: -len(p[0]))
        self._found: dict[str, AnswerRow | None] = {}

    def __len__(self) -> int:
        return len(self.exact) + len(self.problems)

    def lookup(self, text: str) -> AnswerRow | None:
        """The row for a request's key text, or None."""
        row = self.exact.get(text)
        if row is not None or not self.problems:
            return row
        if text in self._found:
            return self._found[text]
        row = next((r for problem, r in self.problems if problem in text), None)
        if len(self._found) >= self.CACHE_SIZE:
            self._found.clear()
        self._found[text] = row
        return row


_row_decoder = msgspec.json.Decoder()


def load_book(path: str) -> AnswerBook:
    """Read an answer book; a bad file raises ValueError with one sentence naming the line."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ValueError(f"--answers {path}: cannot read it ({exc.strerror or exc}).") from None
    exact: dict[str, AnswerRow] = {}
    problems: dict[str, AnswerRow] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--answers {path}, line {number}"
        try:
            obj = _row_decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc}).") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: each line must be a JSON object.")
        exact_key, problem = obj.get("prompt"), obj.get("problem")
        key = exact_key if exact_key is not None else problem
        if not isinstance(key, str) or not key:
            raise ValueError(f'{where}: needs a non-empty "prompt" (or "problem") string.')
        answer = obj.get("answer")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f'{where}: needs a non-empty "answer" string.')
        grader = obj.get("grader")
        if grader is not None and not isinstance(grader, str):
            raise ValueError(f'{where}: "grader" must be a string.')
        choices = obj.get("choices")
        if choices is not None and not (
            isinstance(choices, list) and all(isinstance(c, str) for c in choices)
        ):
            raise ValueError(f'{where}: "choices" must be a list of strings.')
        broken = obj.get("wrong")
        if broken is not None and not isinstance(broken, str):
            raise ValueError(f'{where}: "wrong" must be a string (a program).')
        (exact if exact_key is not None else problems)[key] = _row(answer, grader, choices, broken)
    if not exact and not problems:
        raise ValueError(f"--answers {path} has no rows.")
    return AnswerBook(exact, list(problems.items()))


def write_answer_book(
    rows: Iterable[tuple[str, str, str | None, Sequence[str] | None]]
    | Iterable[tuple[str, str, str | None, Sequence[str] | None, str | None]],
    path: str | os.PathLike[str],
) -> int:
    """Write (prompt, answer, grader, choices[, wrong]) rows as an answer book; return how many.

    ``prompt`` is the key the sim matches exactly: the text of the last user message of a chat
    prompt, or the completions prompt string. Example::

        n = write_answer_book([("What is 2+2?", "4", "math", None)], "answers.jsonl")
        # perfbench sim --answers answers.jsonl
    """
    count = 0
    with open(path, "wb") as f:
        for prompt, answer, grader, choices, *wrong in rows:
            obj: dict[str, Any] = {"prompt": prompt, "answer": answer}
            if grader is not None:
                obj["grader"] = grader
            if choices is not None:
                obj["choices"] = list(choices)
            if wrong and wrong[0] is not None:
                obj["wrong"] = wrong[0]
            f.write(msgspec.json.encode(obj) + b"\n")
            count += 1
    return count


# -- one answer -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One choice's answer text, exactly as many tokens as the sim planned for it."""

    tokens: list[Token]
    reasoning_k: int  # leading tokens that go in the reasoning field (0 in <think> mode)
    correct: bool  # the draw: G (right) or W (wrong) throughout
    reasoning: int  # reasoning tokens emitted (R, unless the output was cut short)
    first_answer: int | None  # T-hat, or None when the cut came before it

    def describe(self) -> dict[str, Any]:
        """What the timing log and the ``x-perfbench-sim-answer`` header report."""
        return {
            "correct": self.correct,
            "reasoning": self.reasoning,
            "first_answer": self.first_answer,
        }

    def header(self) -> str:
        first = "-" if self.first_answer is None else str(self.first_answer)
        return f"correct={int(self.correct)};reasoning={self.reasoning};first_answer={first}"


def compose(
    row: AnswerRow,
    length: int,
    rng: random.Random,
    *,
    reasoning_ratio: float | None,
    accuracy: float,
    first: float,
    thoughts: int,
) -> Answer:
    """The answer to ``row`` in ``length`` tokens (see the module docstring for its shape).

    ``reasoning_ratio`` None puts the reasoning inside ``<think>…</think>`` in the content;
    a number puts round(ratio * length) tokens (at least :func:`reasoning_min`) in the reasoning
    field.
    """
    correct = rng.random() < accuracy
    candidate = row.right if correct else row.wrong(rng)
    cand = _tok(candidate)
    if row.grader == "choice":
        final = [*_FINAL_CHOICE, cand, *_FINAL_CHOICE_END]
    elif row.grader == "code":
        final = [_tok("```python\n"), cand, _tok("\n```")]
        cand = _tok("the program below")
    else:
        final = [*_FINAL_BOXED, cand, *_FINAL_BOXED_END]
    lowest = reasoning_min(thoughts)
    tokens: list[Token] = []
    if reasoning_ratio is not None:
        planned = min(round(reasoning_ratio * length), length - len(final))
        planned = max(planned, lowest)
    else:
        planned = max(length - 3 - len(final), lowest)  # <think>, </think> and "\n\n" around it
        tokens.append(_THINK)
    t_hat = _reasoning(tokens, planned, cand, first, thoughts, rng)
    if reasoning_ratio is not None:
        rest = length - planned - len(final)
        if rest >= 2:
            _plain_steps(tokens, rest - 1, rng)
        if rest >= 1:
            tokens.append(SEP)
        tokens += final
        emitted = min(planned, length)
    else:
        tokens += (_END_THINK, SEP, *final)
        emitted = min(planned, max(length - 1, 0))
    del tokens[length:]
    return Answer(
        tokens,
        reasoning_k=emitted if reasoning_ratio is not None else 0,
        correct=correct,
        reasoning=emitted,
        first_answer=t_hat if t_hat <= emitted else None,
    )


def _reasoning(
    out: list[Token], total: int, cand: Token, first: float, thoughts: int, rng: random.Random
) -> int:
    """Append ``total`` reasoning tokens; return where the first answer's step ends (T-hat)."""
    t_hat = first_answer_at(total, first, thoughts)
    # The first-answer step, and plain steps before it filling the rest of t_hat exactly.
    step = min(ANSWER_STEP_MIN + rng.randint(_FILL_LO, _FILL_HI), t_hat)
    before = t_hat - step
    if before == 1:  # no room for a step and its separator: the answer step takes the token
        step, before = step + 1, 0
    if before:
        _plain_steps(out, before - 1, rng)
        out.append(SEP)
    out.append(rng.choice(_STARTERS))
    _filler(out, step - ANSWER_STEP_MIN, rng)
    out += (*_SO, cand, _CLOSE)
    # K reflection sub-chains share the rest: each a marker step, then plain steps.
    tail = total - t_hat
    if thoughts == 0:
        if tail:
            out.append(SEP)
        if tail >= 2:
            _plain_steps(out, tail - 1, rng)
        return t_hat
    extra = tail - tail_min(thoughts)
    for j in range(thoughts):
        last = j == thoughts - 1
        budget = _MARKER_STEP_MIN + 1 + (_RESTATE_EXTRA if last else 0)
        budget += extra - (thoughts - 1) * (extra // thoughts) if last else extra // thoughts
        out.append(SEP)
        opener = rng.choice(_OPENERS)
        end = [*_SO_STILL, cand, _CLOSE] if last else [_DOT]
        step = min(len(opener) + rng.randint(_FILL_LO, _FILL_HI) + len(end), budget - 1)
        after = budget - 1 - step
        if after == 1:
            step, after = step + 1, 0
        out += opener
        _filler(out, step - len(opener) - len(end), rng)
        out += end
        if after:
            out.append(SEP)
            _plain_steps(out, after - 1, rng)
    return t_hat


def _filler(out: list[Token], n: int, rng: random.Random) -> None:
    while n > 0:
        start = rng.randrange(_FILLER_POOL_SIZE)
        part = _FILLER[start : start + n]
        out += part
        n -= len(part)


def _plain_step(out: list[Token], n: int, rng: random.Random) -> None:
    if n == 1:
        out.append(rng.choice(_SHORT_STEPS))
        return
    out.append(rng.choice(_STARTERS))
    _filler(out, n - 2, rng)
    out.append(_DOT)


def _plain_steps(out: list[Token], n: int, rng: random.Random) -> None:
    """Append plain steps joined by separators, ``n`` >= 1 tokens in all."""
    while n > _STEP_HI + 1 + _STEP_LO:
        step = rng.randint(_STEP_LO, _STEP_HI)
        _plain_step(out, step, rng)
        out.append(SEP)
        n -= step + 1
    if n > _STEP_HI:
        half = (n - 1) // 2
        _plain_step(out, half, rng)
        out.append(SEP)
        _plain_step(out, n - 1 - half, rng)
    else:
        _plain_step(out, n, rng)
