"""The grade tables, drawn with rich: the score table eval users know (Model | Dataset | Metric |
Subset | Num | Score; :mod:`.scores` defines each metric) and the thinking-efficiency table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from perfbench.grade.records import GradeReport
from perfbench.grade.scores import OVERALL

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


def score_table(reports: Sequence[GradeReport]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Grades", title_justify="left")
    for name in ("Run", "Model", "Dataset", "Metric", "Subset", "Num", "Score"):
        table.add_column(name, justify="right" if name in ("Num", "Score", "Run") else "left")
    for report in reports:
        for row in report.scores:
            style = "bold" if row.subset == OVERALL else None
            table.add_row(  # Text: names from the server or a dataset are not rich markup
                str(report.run.id),
                Text(row.model),
                Text(row.dataset),
                row.metric,
                Text(row.subset),
                str(row.num),
                f"{row.score:.4f}",
                style=style,
            )
    return table


_THINK_COLUMNS = (
    ("Dataset", "dataset"),
    ("Subset", "subset"),
    ("Num", "num"),
    ("Tokens T", "reasoning_tokens"),
    ("First correct T̂", "first_correct_tokens"),
    ("Reflection T−T̂", "reflection_tokens"),
    ("Efficiency T̂/T", "efficiency"),
    ("Thoughts", "thought_count"),
    ("Accuracy", "accuracy"),
)


def thinking_table(report: GradeReport) -> Table:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    rows = report.thinking
    method = rows[0]["method"] if rows else ""
    source = rows[0]["token_source"] if rows else ""
    table = Table(
        title=escape(
            f"Thinking efficiency, run {report.run.id} (steps+judge: {method}; tokens: {source})"
        ),
        title_justify="left",
    )
    for title, key in _THINK_COLUMNS:
        table.add_column(title, justify="left" if key in ("dataset", "subset") else "right")
    for row in rows:
        cells: list[str | Text] = []
        for _, key in _THINK_COLUMNS:
            value = row[key]
            if key in ("dataset", "subset"):
                cells.append(Text(str(value)))
            elif value is None:
                cells.append("—")
            elif key in ("efficiency", "accuracy"):
                cells.append(f"{value:.4f}")
            elif isinstance(value, float):
                cells.append(f"{value:.1f}")
            else:
                cells.append(str(value))
        table.add_row(*cells, style="bold" if row["subset"] == OVERALL else None)
    return table


def render(reports: Sequence[GradeReport], *, quiet: bool = False) -> RenderableType:
    """The score table, each run's thinking table, and the notes block (unless ``quiet``)."""
    from rich.console import Group

    from perfbench.report.tables import warnings_panel

    parts: list[RenderableType] = [score_table(reports)]
    parts += [thinking_table(r) for r in reports if r.thinking]
    found = [n for r in reports for n in r.all_notes()]
    if found and not quiet:
        parts.append(warnings_panel(found))
    return Group(*parts)
