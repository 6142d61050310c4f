"""Finding the answer in a model's text: boxed expressions, final-answer lines, letters, numbers.

Pure string work, no parsing of mathematics (that is math-verify's job, in :mod:`.graders`), and
nothing here evaluates model text. Every function takes the text as the model wrote it (after
``remove_until``) and returns the answer as a substring, or None when the text has none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def remove_until(text: str, marker: str | None) -> str:
    """The text after the last ``marker`` (e.g. ``</think>``); the whole text when it has none."""
    if not marker:
        return text
    at = text.rfind(marker)
    return text if at < 0 else text[at + len(marker) :]


def boxed_all(text: str) -> list[tuple[int, int, str]]:
    """Every ``\\boxed{...}`` (or ``\\fbox``) with balanced braces: (start, end, inside).

    Escaped braces (``\\{``) do not count, but a brace after a line break ``\\\\`` does. One pass
    pairs the braces, so text with thousands of unclosed boxes stays linear.
    """
    found: list[tuple[int, int, str]] = []
    closing: dict[int, int] | None = None
    for match in _BOXED.finditer(text):
        at = match.end()
        if at < len(text) and text[at] == "{":
            if closing is None:
                closing = _brace_pairs(text)
            end = closing.get(at)
            if end is not None:
                found.append((match.start(), end + 1, text[at + 1 : end].strip()))
        else:  # "\boxed 5": one token up to whitespace or "$"
            token = re.match(r"[^\s$]+", text[at:])
            if token and match.group(0).endswith(" "):
                found.append((match.start(), at + token.end(), token.group(0)))
    return found


def _brace_pairs(text: str) -> dict[int, int]:
    """Map the index of each unescaped "{" to the index of its matching "}"."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    for brace in re.finditer(r"[{}]", text):
        i = brace.start()
        j = i
        while j > 0 and text[j - 1] == "\\":
            j -= 1
        if (i - j) % 2:
            continue  # \{ or \} is a literal brace
        if brace.group(0) == "{":
            opened.append(i)
        elif opened:
            pairs[opened.pop()] = i
    return pairs


def last_boxed(text: str) -> str | None:
    """The inside of the last boxed expression, or None."""
    found = boxed_all(text)
    return found[-1][2] if found else None


_FINAL = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?[\s*]*", re.IGNORECASE)


def final_answer_line(text: str) -> str | None:
    """The answer named by the last "final answer is …" / "Answer: …" phrase, without wrapping.

    A leading ``$…$`` (or ``\\(…\\)``, ``\\[…\\]``) is the answer and what follows it is not
    ("The final answer is $5$. I hope it is correct." gives "5"); otherwise the rest of the line.
    """
    last = None
    for match in _FINAL.finditer(text):
        last = match
    if last is None:
        return None
    rest = text[last.end() :]
    value = _leading_math(rest)
    if value is None:
        value = rest.splitlines()[0] if rest.strip() else ""
        value = value.strip().rstrip(".").strip().strip("*").strip()
    return value or None


def _leading_math(rest: str) -> str | None:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(left):
            end = rest.find(right, len(left))
            if end > len(left):
                return rest[len(left) : end].strip()
    return None


# -- multiple choice ------------------------------------------------------------------------------

_LETTER = r"\(?\*{0,2}\[?([A-{last}])\]?\*{0,2}\)?"


def choice_letter(text: str, n_choices: int = 4) -> str | None:
    """The option letter the text commits to, or None.

    Tried in order, the last match of each winning: an explicit "answer is (C)" / "Answer: C" /
    "Answer: **C**" phrase, a boxed letter, a bold or bracketed lone letter ("**C**", "(C)"), and
    finally a text that is only the letter. Letters beyond ``n_choices`` are not options.
    """
    last = chr(ord("A") + max(1, min(n_choices, 26)) - 1)
    letter = _LETTER.replace("{last}", last)
    patterns = (
        rf"answer\s*(?:is\b)?\s*:?\**\s*(?:option\s*)?:?\s*{letter}(?![A-Za-z])",
        rf"(?:option|choice)\s+{letter}(?![A-Za-z])\s+is\s+(?:the\s+)?correct",
    )
    for pattern in patterns:
        hits = [
            m.group(1).upper()
            for m in re.finditer(pattern, text, flags=re.IGNORECASE)
            if _committed(m, text)
        ]
        if hits:
            return hits[-1]
    boxed = last_boxed(text)
    if boxed:
        inner = re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed).strip(" ().*")
        if len(inner) == 1 and "A" <= inner.upper() <= last:
            return inner.upper()
    marked = re.findall(rf"(?:\*\*\(?([A-{last}])\)?\*\*|\(([A-{last}])\))", text)
    if marked:
        a, b = marked[-1]
        return str(a or b)
    bare = text.strip().strip(".*() ")
    if len(bare) == 1 and "A" <= bare <= last:
        return bare
    return None


def _committed(match: re.Match[str], text: str) -> bool:
    """A lower-case letter counts only when set apart: "answer: (b)", "answer is c." — not the
    article in "the answer is a multiple of 3"."""
    if match.group(1).isupper():
        return True
    wrapped = text[match.start(1) - 1 : match.start(1)] in ("(", "*", "[")
    return wrapped or re.match(r"[ \t]*(?:$|[\n).\]*,;:!?])", text[match.end(1) :]) is not None


def gold_letter(gold: str, choices: Sequence[str] | None) -> str:
    """The option letter a gold answer names: the letter itself ("C", "(C)"), or the letter of
    the option whose text it is."""
    letter = gold.strip().strip("() ").upper()
    texts = [c.strip() for c in choices or ()]
    if (len(letter) != 1 or not letter.isalpha()) and gold.strip() in texts:
        letter = chr(ord("A") + texts.index(gold.strip()))
    return letter


# -- numbers --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def parse_number(value: str) -> float | None:
    """A number written the way answers write them: "1,234", "$18", "-3.50", "12.", "50%".

    None when it is not one, or does not fit a float (a 400-digit fraction).
    """
    try:
        return _parse_number(value)
    except (OverflowError, ValueError):
        return None


def _parse_number(value: str) -> float | None:
    cleaned = value.strip().replace("\\$", "").replace("$", "").replace("\\!", "")
    cleaned = cleaned.replace("{,}", "")
    mixed = re.fullmatch(r"(-?)(\d+)\s+(\d+)/(\d+)", cleaned)  # "3 1/2", not 31/2
    if mixed:
        whole, top, bottom = (int(mixed.group(i)) for i in (2, 3, 4))
        sign = -1 if mixed.group(1) else 1
        return sign * (whole + top / bottom) if bottom else None
    cleaned = re.sub(r"\\text\{[^{}]*\}|\\%|%", "", cleaned)
    cleaned = cleaned.replace(",", "").replace(" ", "").rstrip(".")
    if not re.search(r"\d", cleaned):  # float() would take "inf" and "nan"
        return None
    if re.fullmatch(r"-?\d+/\d+", cleaned):
        num, den = cleaned.split("/")
        return int(num) / int(den) if int(den) else None
    frac = re.fullmatch(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}", cleaned)
    if frac:
        sign = -1 if frac.group(1) else 1
        return sign * int(frac.group(2)) / int(frac.group(3)) if int(frac.group(3)) else None
    try:
        number = float(cleaned)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def final_number(text: str) -> str | None:
    """The final numeric answer: "#### 18", "A: 18", a boxed number, "answer is 18", else the
    last number in the text (GSM8K's convention)."""
    for pattern in (r"####\s*([^\n]+)", r"(?:^|\n)\s*A:\s*([^\n]+)"):
        matches = re.findall(pattern, text)
        if matches:
            number = _number_in(matches[-1])
            if number is not None:
                return number
    boxed = last_boxed(text)
    if boxed is not None and parse_number(boxed) is not None:
        return boxed
    phrase = final_answer_line(text)
    if phrase is not None:
        number = _number_in(phrase)
        if number is not None:
            return number
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace("$", "").strip() if numbers else None


def _number_in(value: str) -> str | None:
    """The whole value when it is one number ("1/2", "\\frac{3}{4}", "$18.00"), else its first."""
    value = value.strip().rstrip(".").strip()
    if parse_number(value) is not None:
        return value.replace("$", "").strip()
    match = _NUMBER.search(value)
    return match.group(0).replace("$", "").strip() if match else None
