"""The workload stage: datasets and prompts. Each dataset is one module, imported here."""

from perfbench.workload import (  # noqa: F401  (each module registers its datasets)
    code,
    evals,
    jsonl,
    line_by_line,
    openqa,
    sharegpt,
    synthetic,
    synthetic_math,
)
from perfbench.workload.base import REGISTRY, Prompt, load_prompts
from perfbench.workload.catalog import datasets

__all__ = ["REGISTRY", "Prompt", "datasets", "load_prompts"]
