"""Finding the answer in a model's text: boxed expressions, final-answer lines, letters, numbers.

Pure string work, no parsing of mathematics (that is math-verify's job, in :mod:`.graders`), and
nothing here evaluates model text. Every function takes the text as the model wrote it (after
``remove_until``) and returns the answer as a substring, or None when the text has none.
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def remove_until(text: str, marker: str | None) -> str:
    """The text after the last ``marker`` (e.g. ``</think>``); the whole text when it has none."""
    if not marker:
        return text
    at = text.rfind(marker)
    return text if at < 0 else text[at + len(marker) :]


def boxed_all(text: str) -> list[tuple[int, int, str]]:
    """Every ``\\boxed{...}`` (or ``\\fbox``) with balanced braces: (start, end, inside)."""
    found: list[tuple[int, int, str]] = []
    for match in _BOXED.finditer(text):
        at = match.end()
        if at < len(text) and text[at] == "{":
            depth = 0
            for i in range(at, len(text)):
                ch = text[i]
                if ch == "{" and text[i - 1] != "\\":
                    depth += 1
                elif ch == "}" and text[i - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        found.append((match.start(), i + 1, text[at + 1 : i].strip()))
                        break
        else:  # "\boxed 5": one token up to whitespace or "$"
            token = re.match(r"[^\s$]+", text[at:])
            if token and match.group(0).endswith(" "):
                found.append((match.start(), at + token.end(), token.group(0)))
    return found


def last_boxed(text: str) -> str | None:
    """The inside of the last boxed expression, or None."""
    found = boxed_all(text)
    return found[-1][2] if found else None


_FINAL = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)",
    re.IGNORECASE,
)


def final_answer_line(text: str) -> str | None:
    """The answer named by the last "final answer is …" / "Answer: …" phrase, without wrapping."""
    last = None
    for match in _FINAL.finditer(text):
        last = match.group(1)
    if last is None:
        return None
    value = last.strip().splitlines()[0].strip() if last.strip() else ""
    value = value.strip().rstrip(".").strip()
    value = _unwrap_math(value)
    return value or None


def _unwrap_math(value: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if value.startswith(left) and value.endswith(right) and len(value) > len(left + right):
            return value[len(left) : -len(right)].strip()
    return value


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
        rf"answer\s*(?:is|:)?\s*(?:option\s*)?:?\s*{letter}(?![A-Za-z])",
        rf"(?:option|choice)\s+{letter}(?![A-Za-z])\s+is\s+(?:the\s+)?correct",
    )
    for pattern in patterns:
        matches = re.findall(pattern, text, flags=re.IGNORECASE)
        hits: list[str] = [m.upper() for m in matches if m.upper() <= last]
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


# -- numbers --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def parse_number(value: str) -> float | None:
    """A number written the way answers write them: "1,234", "$18", "-3.50", "12.", "50%"."""
    cleaned = value.strip().replace("$", "").replace("\\!", "").replace("{,}", "")
    cleaned = re.sub(r"\\text\{[^{}]*\}|\\%|%", "", cleaned)
    cleaned = cleaned.replace(",", "").replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?\d+/\d+", cleaned):
        num, den = cleaned.split("/")
        return int(num) / int(den) if int(den) else None
    frac = re.fullmatch(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}", cleaned)
    if frac:
        sign = -1 if frac.group(1) else 1
        return sign * int(frac.group(2)) / int(frac.group(3)) if int(frac.group(3)) else None
    try:
        return float(cleaned)
    except ValueError:
        return None


def final_number(text: str) -> str | None:
    """The final numeric answer: "#### 18", "A: 18", a boxed number, "answer is 18", else the
    last number in the text (GSM8K's convention)."""
    for pattern in (r"####\s*([^\n]+)", r"(?:^|\n)\s*A:\s*([^\n]+)"):
        matches = re.findall(pattern, text)
        if matches:
            number = _first_number(matches[-1])
            if number is not None:
                return number
    boxed = last_boxed(text)
    if boxed is not None and parse_number(boxed) is not None:
        return boxed
    phrase = final_answer_line(text)
    if phrase is not None:
        number = _first_number(phrase)
        if number is not None:
            return number
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace("$", "").strip() if numbers else None


def _first_number(text: str) -> str | None:
    match = _NUMBER.search(text)
    return match.group(0).replace("$", "").strip() if match else None
