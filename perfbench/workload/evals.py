r"""Eval datasets with gold answers: math_500, aime24, aime25, gsm8k and gpqa_diamond.

Each reads --dataset-path (JSON Lines, a JSON array, CSV or Parquet, in the dataset's public
layout) or, without it, downloads the public copy (``hub.py``). Prompts keep the file's order.

Prompts are zero-shot chat messages, one user turn and no system prompt, as is usual for
reasoning models. The templates (``str.format`` strings)::

    math_500, aime24, aime25   {problem}\nPlease reason step by step, and put your final
                               answer within \boxed{}.
    gsm8k                      {question}\nPlease reason step by step, and put your final
                               answer within \boxed{}.
    gpqa_diamond               {question}\n\nA) ...\nB) ...\nC) ...\nD) ...\n\nPlease reason
                               step by step, and put the letter of the correct option
                               (A, B, C or D) within \boxed{}.

--prompt-template replaces the template. It sees the row's own fields, plus ``{problem}`` and
``{question}`` (the problem text, whichever name the layout gives it) and, for gpqa_diamond,
``{choices}`` (the lettered option lines) and ``{A}``..``{D}``. Write ``{{}}`` for literal
braces, as in ``\boxed{{}}``.

GPQA's four options are shuffled per question with a seed made from --seed and the question
text, so one seed gives the same letters on every run and machine and any file order.
``choices`` holds the options in letter order and ``answer`` the gold letter.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from typing import Any

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import Prompt, register
from perfbench.workload.hub import HubFiles
from perfbench.workload.jsonl import Row, dataset_rows

STEP_BY_STEP = "Please reason step by step, and put your final answer within \\boxed{{}}."
MATH_TEMPLATE = "{problem}\n" + STEP_BY_STEP
GSM8K_TEMPLATE = "{question}\n" + STEP_BY_STEP
GPQA_TEMPLATE = (
    "{question}\n\n{choices}\n\nPlease reason step by step, and put the letter of the correct "
    "option (A, B, C or D) within \\boxed{{}}."
)
LETTERS = "ABCD"

MATH_500 = HubFiles("HuggingFaceH4/MATH-500", ("test.jsonl",), "AI-ModelScope/MATH-500")
GSM8K = HubFiles("openai/gsm8k", ("main/test-*.parquet",), "AI-ModelScope/gsm8k")
AIME24 = HubFiles(
    "HuggingFaceH4/aime_2024",
    ("data/train-*.parquet",),
    "evalscope/aime24",
    ("*test*.jsonl", "*test*.parquet", "*train*.parquet"),
)
AIME25 = HubFiles("opencompass/AIME2025", ("aime2025-I*.jsonl",))  # parts I and II, in order
GPQA_DIAMOND = HubFiles(
    "Idavidrein/gpqa",
    ("gpqa_diamond.csv",),
    "AI-ModelScope/gpqa_diamond",
    ("gpqa_diamond.csv", "*diamond*.csv", "*.csv", "*.jsonl", "*.parquet"),
)

_MATH_LAYOUT = "the MATH-500 layout (problem, answer, subject, level, unique_id)"
_AIME_LAYOUT = "the AIME layout (problem or question, answer, optional id)"
_GSM8K_LAYOUT = "the GSM8K layout (question, answer ending '#### <number>')"
_GPQA_LAYOUT = "the GPQA layout (Question, Correct Answer, Incorrect Answer 1 to 3)"


@register("math_500", "MATH-500: 500 competition problems in 5 levels and 7 subjects, gold answers")
def load_math_500(spec: WorkloadSpec) -> list[Prompt]:
    prompts = []
    for k, row in enumerate(dataset_rows(spec, MATH_500), 1):
        problem = _text(row, ("problem",), _MATH_LAYOUT)
        level = _level(row)
        prompts.append(
            _prompt(
                spec,
                row,
                MATH_TEMPLATE,
                {**row.fields, "problem": problem, "question": problem},
                dataset="math_500",
                id=_id(row, ("unique_id",)) or f"math_500-{k}",
                answer=_answer(row, _MATH_LAYOUT),
                subset=None if level is None else f"level {level}",
                grader="math",
                metadata={"subject": row.fields.get("subject"), "level": level, "problem": problem},
            )
        )
    return prompts


@register("aime24", "AIME 2024 I and II: 30 problems with integer answers")
def load_aime24(spec: WorkloadSpec) -> list[Prompt]:
    return _load_aime(spec, "aime24", AIME24)


@register("aime25", "AIME 2025 I and II: 30 problems with integer answers")
def load_aime25(spec: WorkloadSpec) -> list[Prompt]:
    return _load_aime(spec, "aime25", AIME25)


def _load_aime(spec: WorkloadSpec, name: str, source: HubFiles) -> list[Prompt]:
    prompts = []
    for k, row in enumerate(dataset_rows(spec, source), 1):
        problem = _text(row, ("problem", "question", "Problem"), _AIME_LAYOUT)
        given = _answer(row, _AIME_LAYOUT)
        # AIME answers are integers 0-999; some copies keep leading zeros ("025"), which a
        # string comparison would hold against a model's "25".
        answer = str(int(given)) if given.isdigit() else given
        metadata: dict[str, Any] = {"problem": problem}
        if answer != given:
            metadata["answer_as_given"] = given
        prompts.append(
            _prompt(
                spec,
                row,
                MATH_TEMPLATE,
                {**row.fields, "problem": problem, "question": problem},
                dataset=name,
                id=_id(row, ("id", "ID")) or f"{name}-{k}",
                answer=answer,
                subset=name,
                grader="math",
                metadata=metadata,
            )
        )
    return prompts


@register("gsm8k", "GSM8K test: 1,319 grade-school word problems with numeric answers")
def load_gsm8k(spec: WorkloadSpec) -> list[Prompt]:
    prompts = []
    for k, row in enumerate(dataset_rows(spec, GSM8K), 1):
        question = _text(row, ("question",), _GSM8K_LAYOUT)
        prompts.append(
            _prompt(
                spec,
                row,
                GSM8K_TEMPLATE,
                {**row.fields, "problem": question, "question": question},
                dataset="gsm8k",
                id=_id(row, ("id",)) or f"gsm8k-{k}",
                answer=_gsm8k_answer(row),
                subset=None,
                grader="numeric",
                metadata={"question": question},
            )
        )
    return prompts


def _gsm8k_answer(row: Row) -> str:
    """The number after '####', without thousands separators ("#### 1,600" -> "1600")."""
    answer = row.fields.get("answer")
    if answer is None:
        raise row.missing("answer", _GSM8K_LAYOUT)
    final = str(answer).rpartition("####")[2] if isinstance(answer, str) else str(answer)
    final = final.strip().replace(",", "")
    if not re.fullmatch(r"[-+]?\d+(\.\d+)?", final):
        raise DatasetError(
            f"{row.where}: the answer does not end in '#### <number>'; expected {_GSM8K_LAYOUT}"
        )
    return final


@register(
    "gpqa_diamond", "GPQA Diamond: 198 graduate science questions, 4 options shuffled by --seed"
)
def load_gpqa_diamond(spec: WorkloadSpec) -> list[Prompt]:
    prompts = []
    for k, row in enumerate(dataset_rows(spec, GPQA_DIAMOND), 1):
        question = _text(row, ("Question",), _GPQA_LAYOUT)
        correct = _text(row, ("Correct Answer",), _GPQA_LAYOUT)
        options = [correct] + [
            _text(row, (f"Incorrect Answer {i}",), _GPQA_LAYOUT) for i in (1, 2, 3)
        ]
        choices, gold = shuffle_options(options, spec.seed, question)
        lettered = "\n".join(f"{letter}) {text}" for letter, text in zip(LETTERS, choices))
        domain = row.fields.get("High-level domain") or None
        prompts.append(
            _prompt(
                spec,
                row,
                GPQA_TEMPLATE,
                {
                    **row.fields,
                    **dict(zip(LETTERS, choices)),
                    "problem": question,
                    "question": question,
                    "choices": lettered,
                },
                dataset="gpqa_diamond",
                id=_id(row, ("Record ID", "id")) or f"gpqa_diamond-{k}",
                answer=LETTERS[gold],
                subset=domain,
                grader="choice",
                metadata={
                    "question": question,
                    "domain": domain,
                    "subdomain": row.fields.get("Subdomain") or None,
                },
                choices=tuple(choices),
            )
        )
    return prompts


def shuffle_options(options: list[str], seed: int, key: str) -> tuple[list[str], int]:
    """``options`` (the correct one first) in an order fixed by ``seed`` and ``key``.

    Returns the shuffled options and the index of the correct one. The generator is seeded
    from a SHA-256 of both, so the order does not depend on PYTHONHASHSEED or the row's place.
    """
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    order = list(range(len(options)))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return [options[i] for i in order], order.index(0)


def _prompt(
    spec: WorkloadSpec,
    row: Row,
    template: str,
    fields: Mapping[str, Any],
    *,
    dataset: str,
    id: str,
    answer: str,
    subset: str | None,
    grader: str,
    metadata: Mapping[str, Any],
    choices: tuple[str, ...] | None = None,
) -> Prompt:
    text = _render(spec.prompt_template or template, fields, row)
    return Prompt(
        id=id,
        messages=({"role": "user", "content": text},),
        answer=answer,
        metadata=metadata,
        dataset=dataset,
        subset=subset,
        choices=choices,
        grader=grader,
    )


_BARE_BRACES = re.compile(r"(?<!\{)\{\}(?!\})")


def _render(template: str, fields: Mapping[str, Any], row: Row) -> str:
    """``str.format`` with the row's fields, where a bare ``{}`` stays literal (``\\boxed{}``)."""
    try:
        return _BARE_BRACES.sub("{{}}", template).format_map(fields)
    except KeyError as exc:
        known = ", ".join("{" + name + "}" for name in sorted(fields)[:12])
        more = ", ..." if len(fields) > 12 else ""
        raise DatasetError(
            f"--prompt-template uses {{{exc.args[0]}}}, which {row.where} does not have; "
            f"fields: {known}{more}"
        ) from exc
    except (ValueError, AttributeError, IndexError) as exc:
        raise DatasetError(
            f"--prompt-template is not a valid format string ({exc}); "
            "write {{}} for literal braces, as in \\boxed{{}}"
        ) from exc


def _text(row: Row, names: tuple[str, ...], layout: str) -> str:
    """The first of ``names`` the row has, as non-empty text with its ends stripped."""
    for name in names:
        value = row.fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{row.where}: {name!r} must be non-empty text; expected {layout}")
        return value.strip()
    raise row.missing(" or ".join(names), layout)


def _answer(row: Row, layout: str) -> str:
    value = row.fields.get("answer")
    if value is None:
        raise row.missing("answer", layout)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value) == "":
        raise DatasetError(f"{row.where}: 'answer' must be text or a number; expected {layout}")
    return str(value).strip()


def _id(row: Row, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = row.fields.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _level(row: Row) -> int | None:
    """MATH's difficulty, 1 to 5: an integer, "3" or "Level 3"; None when the row has none."""
    value = row.fields.get("level")
    if value is None:
        return None
    match = re.fullmatch(r"(?:level\s*)?([1-5])", str(value).strip(), re.IGNORECASE)
    if isinstance(value, bool) or match is None:
        raise DatasetError(f"{row.where}: 'level' {value!r} is not a MATH level 1 to 5")
    return int(match.group(1))
