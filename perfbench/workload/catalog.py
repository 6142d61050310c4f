"""``perfbench.datasets``: what ``--dataset`` can name, the library face of ``perfbench datasets``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfbench.workload.base import REGISTRY, Dataset

if TYPE_CHECKING:
    from rich.console import RenderableType


@dataclass(frozen=True)
class DatasetList:
    datasets: tuple[Dataset, ...]

    def csv_rows(self) -> list[dict[str, Any]]:
        return [
            {"name": d.name, "description": d.description, "needs_path": d.needs_path}
            for d in self.datasets
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": self.csv_rows()}

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.text import Text

        width = max(len(d.name) for d in self.datasets)
        lines = [
            f"{d.name:<{width}}  {d.description}{'  (needs --dataset-path)' if d.needs_path else ''}"
            for d in self.datasets
        ]
        return Text("\n".join(lines))


def datasets() -> DatasetList:
    """Every dataset ``WorkloadSpec.dataset`` can name, by name."""
    return DatasetList(tuple(REGISTRY[name] for name in sorted(REGISTRY)))
