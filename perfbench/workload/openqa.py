"""openqa: the built-in set of open questions, written for perfbench (datasets/openqa.jsonl)."""

from __future__ import annotations

import json

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import DATASETS_DIR, Prompt, read_text, register


@register("openqa", "built-in open questions of varied length and topic (234 prompts)")
def load(spec: WorkloadSpec) -> list[Prompt]:
    path = spec.dataset_path or DATASETS_DIR / "openqa.jsonl"
    prompts = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompts.append(
                Prompt(
                    id=str(row["id"]),
                    text=row["prompt"],
                    metadata={"category": row.get("category")},
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(
                f'{path}:{n}: not an openqa row ({exc}); expected {{"id", "prompt"}}'
            ) from exc
    return prompts
