"""The workload stage: datasets and prompts. Each dataset is one module, imported here."""

from perfbench.workload import evals, jsonl, line_by_line, openqa, sharegpt  # noqa: F401  (registration)
from perfbench.workload.base import REGISTRY, Prompt, load_prompts

__all__ = ["REGISTRY", "Prompt", "load_prompts"]
