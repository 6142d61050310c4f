"""synthetic_math: generated math problems with exact answers (datasets/synthetic_math.jsonl).

``scripts/make_synthetic_math.py`` writes the file from a fixed seed: 100 problems at each of five
levels, from two-number arithmetic to systems of equations, every answer computed with
``fractions.Fraction`` and written as LaTeX (``-3``, ``\\frac{7}{12}``, ``(3, -2)``). It lets the
perf-and-grade flow run offline with gold answers that are certainly right; ``subset`` is
``"level N"``.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import DATASETS_DIR, Prompt, read_text, register

TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."


FIELDS = ("problem", "question")  # the same text; {question} as in gsm8k's template


def template_filler(template: str) -> Callable[[str], str]:
    """``template`` as a function of the problem text, checked once, before any row is read.

    The fields are ``{problem}`` and its alias ``{question}``; ``{{`` and ``}}`` are literal
    braces as in ``str.format``, and so is an empty ``{}``, so ``\\boxed{}`` reads as written.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DatasetError(
            f"--prompt-template is not a valid format string ({exc}); "
            "write {{ and }} for literal braces"
        ) from exc
    for _, field, spec, conversion in parts:
        if field is None or (field == "" and not spec and conversion is None):
            continue
        if field not in FIELDS:
            name = f"{{{field}}}" if field.isprintable() else repr(field)
            raise DatasetError(
                f"--prompt-template uses {name}, which synthetic_math does not have; "
                "fields: {problem}, {question}"
            )
        if spec or conversion is not None:
            raise DatasetError(f"--prompt-template: write {{{field}}} plainly, without ! or :")

    def fill(problem: str) -> str:
        out = []
        for literal, field, _, _ in parts:
            out.append(literal)
            if field is not None:
                out.append(problem if field else "{}")
        return "".join(out)

    return fill


@register(
    "synthetic_math", "offline math problems with verified answers, five levels (500 prompts)"
)
def load(spec: WorkloadSpec) -> list[Prompt]:
    path = spec.dataset_path or DATASETS_DIR / "synthetic_math.jsonl"
    fill = template_filler(spec.prompt_template or TEMPLATE)
    prompts = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem, level = row["problem"], row["level"]
            if not isinstance(problem, str) or not isinstance(level, int):
                raise TypeError("problem must be text and level a number")
            prompts.append(
                Prompt(
                    id=str(row["id"]),
                    messages=({"role": "user", "content": fill(problem)},),
                    answer=str(row["answer"]),
                    metadata={"level": level, "type": row.get("type"), "problem": problem},
                    dataset="synthetic_math",
                    subset=f"level {level}",
                    grader="math",
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            reason = f"no {exc.args[0]!r} field" if isinstance(exc, KeyError) else str(exc)
            raise DatasetError(
                f"{path}:{n}: not a synthetic_math row ({reason}); "
                'expected {"id", "problem", "answer", "level"}'
            ) from exc
    return prompts
