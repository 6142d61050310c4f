"""line_by_line: every non-empty line of a text file is one prompt."""

from __future__ import annotations

from perfbench.config import WorkloadSpec
from perfbench.workload.base import Prompt, read_text, register


@register("line_by_line", "one prompt per non-empty line of --dataset-path", needs_path=True)
def load(spec: WorkloadSpec) -> list[Prompt]:
    assert spec.dataset_path is not None
    lines = (line.strip() for line in read_text(spec.dataset_path).splitlines())
    return [Prompt(id=f"line-{n}", text=line) for n, line in enumerate(lines, 1) if line]
