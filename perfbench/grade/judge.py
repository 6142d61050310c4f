"""An LLM judge for the thinking figures: the first correct step, and steps by paragraphing.

Two questions are put to an OpenAI-compatible chat model, at temperature 0:

* :meth:`Judge.first_correct_step`: given the problem, the gold answer and the numbered steps,
  which step first reaches the correct final answer? The prompt numbers steps from 1 and asks
  for ``STEP: n`` or ``STEP: none``; :func:`parse_step` also reads a JSON object
  (``{"step": 3}``), a boxed or a bare number, and ignores a judge's own ``<think>`` part. Any
  other reply, or a number that is no step, reads as None, the same as "none".
* :meth:`Judge.paragraphs`: the thinking text re-paragraphed into reasoning steps, as
  ThinkBench's ``llm`` strategy does. The judge is asked to copy the text and only insert
  blank lines; :func:`map_paragraphs` finds its paragraphs back in the original, ignoring
  whitespace, so that steps stay spans of the original text. When they cover less than
  ``MIN_COVERAGE`` of it (the judge reworded, summarised or ran out of tokens), the steps are
  cut at blank lines instead and the split's ``note`` says so. This costs a reply as long as
  the thinking text itself.

The sync client is safe to share between worker threads. The API key is sent to the judge and
nowhere else: it is left out of ``repr`` and scrubbed from every error this module raises,
which is a one-line :class:`~perfbench.errors.RunError` naming the flags to check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from perfbench.config import ThinkSpec, resolve_endpoint
from perfbench.errors import ConfigError, RunError, ServerRejected, ServerUnreachable
from perfbench.grade.think import THINK_END, Span, StepSplit, split_steps, trim_span
from perfbench.redact import redact_url

#: Share of the thinking text's non-space characters the judge's paragraphs must be found in.
MIN_COVERAGE = 0.9

_FIRST_CORRECT = """\
Below are a problem, its correct answer, and a model's reasoning towards it, split into \
numbered steps.

Find the earliest step in which the reasoning reaches the correct answer: the step where it \
first states, or derives as its answer to the problem, a result equivalent to the correct \
answer. A quantity that equals the answer only by coincidence, as an intermediate value, does \
not count. Do not judge the rest of the reasoning: later doubts or changes of mind do not \
matter.

# Problem

{problem}

# Correct answer

{gold}

# Reasoning

{steps}

Reply with one line: "STEP: n" with the number of that step, or "STEP: none" if no step \
reaches the correct answer."""

_PARAGRAPHS = """\
Below is the reasoning a model wrote while solving a problem. Split it into reasoning steps \
by inserting a blank line between consecutive steps. A step is one move of the reasoning: \
restating the problem, setting up an approach, one derivation or case, checking a result, or \
changing course. Keep a formula in the same step as the sentence that introduces it.

Copy the text exactly as it is: do not add, remove, reword or reorder anything, and do not \
fix mistakes. Only insert blank lines (line breaks inside a step may be removed). Reply with \
the split text and nothing else.
{problem}
# Reasoning

{text}"""


class Judge:
    """An OpenAI-compatible chat model that answers the judge's two questions.

    >>> judge = Judge("http://127.0.0.1:8001/v1", "Qwen2.5-72B-Instruct")  # doctest: +SKIP
    >>> judge.first_correct_step("2 + 2?", "4", ["2 + 2 is 5?", "No: 4."])  # doctest: +SKIP
    1
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ) -> None:
        if not model:
            raise ConfigError("the judge needs a model name: add --judge-model")
        if not timeout > 0:
            raise ConfigError("the judge's timeout must be positive")
        self.base_url = _api_base(base_url)
        self.shown_url = redact_url(self.base_url)  # what messages print: no password
        self.model = model
        self.timeout = timeout
        self.unreadable = 0  # replies first_correct_step could not read (counted as "none")
        self._secret = api_key or None
        self._client = _openai(self.base_url, api_key, timeout, max_retries)

    def __repr__(self) -> str:
        return f"Judge({self.shown_url!r}, {self.model!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def first_correct_step(self, problem: str, gold: str, steps: Sequence[str]) -> int | None:
        """Index (0-based) of the first step the judge finds correct; None for none or no reply."""
        if not steps:
            return None
        numbered = "\n\n".join(f"[Step {i}]\n{step.strip()}" for i, step in enumerate(steps, 1))
        prompt = _FIRST_CORRECT.format(problem=problem.strip(), gold=gold.strip(), steps=numbered)
        reply = self._ask(prompt)
        if not readable(reply):
            self.unreadable += 1
        return parse_step(reply, len(steps))

    def paragraphs(self, text: str, problem: str | None = None) -> StepSplit:
        """``text`` split into steps by the judge, as spans of ``text`` (see module docstring)."""
        if not text.strip():
            return StepSplit((), "llm")
        context = f"\n# Problem\n\n{problem.strip()}\n" if problem and problem.strip() else ""
        reply = _after_thinking(self._ask(_PARAGRAPHS.format(problem=context, text=text)))
        pieces = [p for p in re.split(r"\n[^\S\n]*\n", reply) if p.strip()]
        spans, coverage = map_paragraphs(text, pieces)
        if coverage >= MIN_COVERAGE:
            return StepSplit(tuple(spans), "llm")
        note = (
            f"the judge's paragraphs matched {coverage:.0%} of the thinking text "
            f"(at least {MIN_COVERAGE:.0%} needed); steps cut at blank lines instead"
        )
        return StepSplit(tuple(split_steps(text, "separator")), "separator", note)

    def _ask(self, prompt: str) -> str:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0,
            )
        except openai.APIStatusError as exc:
            detail = f"HTTP {exc.status_code}: {_one_line(exc.response.text)}"
            message = f"the judge at {self.shown_url} answered {detail}; check --judge-model"
            raise RunError(self._scrub(message + " and --judge-api-key")) from None
        except openai.APITimeoutError:
            message = f"the judge at {self.shown_url} did not answer within {self.timeout:g} s"
            raise RunError(message + "; is it overloaded?") from None
        except openai.APIError as exc:
            message = f"cannot reach the judge at {self.shown_url} ({_one_line(str(exc))})"
            raise RunError(self._scrub(message + ": is it running? check --judge-url")) from None
        if not response.choices:
            return ""
        return response.choices[0].message.content or ""

    def _scrub(self, message: str) -> str:
        return message.replace(self._secret, "***") if self._secret else message


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _after_thinking(reply: str) -> str:
    at = reply.rfind(THINK_END)
    return reply if at < 0 else reply[at + len(THINK_END) :]


# -- reading the replies --------------------------------------------------------------------------

_STEP_LINE = re.compile(r"\bstep[^\w-]{0,3}[:=][^\w-]{0,3}(-?\d+|none|null)\b", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_JSON_KEYS = ("step", "first_correct_step", "index", "answer")


def parse_step(reply: str, n_steps: int) -> int | None:
    """The judge's step number (1-based in its reply) as a 0-based index, or None.

    Read, first match winning: a JSON object with a ``step`` key; the last "STEP: n" line; the
    last boxed value; a reply that is only a number. "none", null, -1, a number out of range and
    anything unreadable are all None (:func:`readable` tells the last apart).
    """
    value = _step_value(reply)
    return None if value is _UNREADABLE else _index(value, n_steps)


def readable(reply: str) -> bool:
    """Did the judge answer in a form :func:`parse_step` reads (a step, or "none")?"""
    return _step_value(reply) is not _UNREADABLE


_UNREADABLE = object()


def _step_value(reply: str) -> Any:
    reply = _after_thinking(reply).strip()
    for match in _JSON_OBJECT.finditer(reply):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key in _JSON_KEYS:
                if key in obj:
                    return obj[key]
    lines = _STEP_LINE.findall(reply)
    if lines:
        return lines[-1]
    boxed = re.findall(r"\\boxed\{\s*(-?\d+|none)\s*\}", reply, re.IGNORECASE)
    if boxed:
        return boxed[-1]
    bare = re.fullmatch(r"[^\w-]*(-?\d+|none|null)\W*", reply, re.IGNORECASE)
    return bare.group(1) if bare else _UNREADABLE


def _index(value: Any, n_steps: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 1 <= value <= n_steps:
        return value - 1
    return None


def map_paragraphs(text: str, paragraphs: Sequence[str]) -> tuple[list[Span], float]:
    """Find the judge's paragraphs back in ``text``: step spans and the share of text covered.

    Whitespace is ignored, and paragraphs are looked for in order, each after the previous
    one's end; one not found (reworded) is skipped and its text stays in the step before it.
    Each step runs from a found paragraph's start to the next one's (the first from the start
    of the text), trimmed; coverage is the found paragraphs' share of the non-space characters.
    """
    keep = [i for i, ch in enumerate(text) if not ch.isspace()]
    squeezed = "".join(text[i] for i in keep)
    if not squeezed:
        return [], 0.0
    starts: list[int] = []
    cursor = covered = 0
    for paragraph in paragraphs:
        needle = "".join(paragraph.split())
        at = squeezed.find(needle, cursor) if needle else -1
        if at < 0:
            continue
        starts.append(keep[at])
        covered += len(needle)
        cursor = at + len(needle)
    if not starts:
        return [], 0.0
    starts[0] = 0
    ends = starts[1:] + [len(text)]
    spans = (trim_span(text, start, end) for start, end in zip(starts, ends))
    return [span for span in spans if span is not None], covered / len(squeezed)


def judge_steps(
    spec: ThinkSpec,
    items: Sequence[tuple[str | None, str | None, str, str]],
    *,
    workers: int = 8,
) -> tuple[list[tuple[StepSplit, int | None]], int]:
    """Steps and first correct step of each (reasoning, output, problem, gold), by the judge,
    and how many of its replies could not be read (counted as "no step is correct").

    Steps come from ``spec.steps`` (the judge re-paragraphs for ``llm``); the judge then names
    the first correct one. Requests go out ``workers`` at a time, in threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    from perfbench.grade.think import thinking_text

    assert spec.judge_url is not None and spec.judge_model is not None
    with Judge(spec.judge_url, spec.judge_model, api_key=spec.judge_api_key) as judge:

        def one(item: tuple[str | None, str | None, str, str]) -> tuple[StepSplit, int | None]:
            reasoning, output, problem, gold = item
            text, _ = thinking_text(reasoning, output)
            if spec.steps == "llm":
                split = judge.paragraphs(text, problem)
            else:
                split = StepSplit(tuple(split_steps(text, spec.steps, spec.markers)), spec.steps)
            steps = [text[a:b] for a, b in split.steps]
            return split, judge.first_correct_step(problem, gold, steps)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, items)), judge.unreadable


def resolve_model(spec: ThinkSpec) -> str:
    """The judge's model: ``--judge-model``, else the first its server lists. Also the pre-flight
    check that the judge answers, made before any work that a dead judge would waste."""
    import openai

    assert spec.judge_url is not None
    base = _api_base(spec.judge_url)
    shown = redact_url(base)
    client = _openai(base, spec.judge_api_key, 10.0, 0)
    try:
        models = [m.id for m in client.models.list()]
    except openai.APIConnectionError:
        raise ServerUnreachable(
            f"cannot reach the judge at {shown}: is it running? check --judge-url"
        ) from None
    except openai.APIError:
        if spec.judge_model:  # some servers do not list models; the model was given
            return spec.judge_model
        raise ServerRejected(
            f"the judge at {shown} did not list its models; give --judge-model"
        ) from None
    finally:
        client.close()
    if spec.judge_model:
        return spec.judge_model
    if not models:
        raise ServerRejected(f"the judge at {shown} serves no model; give --judge-model")
    return str(models[0])


def _api_base(url: str) -> str:
    endpoint, _, _ = resolve_endpoint(url, "openai-chat")
    return endpoint.removesuffix("/chat/completions")


def _openai(base_url: str, api_key: str | None, timeout: float, max_retries: int) -> Any:
    from openai import OpenAI

    return OpenAI(
        base_url=base_url,
        api_key=api_key or "EMPTY",  # a local judge takes any key; never the environment's
        timeout=timeout,
        max_retries=max_retries,
    )
