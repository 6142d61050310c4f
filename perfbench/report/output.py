"""What every read command prints, one way: the rich table, ``--json`` or ``--csv``.

Each command's library call returns a result object that knows its own forms (the
:class:`Output` protocol): ``render()`` for people, ``to_dict()`` for machines (every JSON
document carries :data:`perfbench.versioned.SCHEMA_VERSION`), and ``csv_rows()`` where a result
is a list of like things (runs, levels, score rows). :func:`emit` prints the one asked for; the
CLI gives every read command the same ``--json``/``--csv`` flags and calls it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from perfbench.errors import UsageError
from perfbench.versioned import SCHEMA_VERSION, versioned

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

LOG_WIDTH = 120
"""Columns of the tables when the output is a file or a CI log rather than a terminal."""

Format = Literal["table", "json", "csv"]


class Output(Protocol):
    """A read command's result, printable in each of the forms :func:`emit` knows."""

    def to_dict(self) -> dict[str, Any]: ...

    def render(self, *, quiet: bool = False) -> RenderableType: ...


def console() -> Console:
    """A rich console for stdout; :data:`LOG_WIDTH` columns when stdout is not a terminal (unless
    ``COLUMNS`` says otherwise), so that tables in logs are not squeezed into 80."""
    from rich.console import Console

    out = Console()
    if out.is_terminal or "COLUMNS" in os.environ:
        return out
    return Console(width=LOG_WIDTH)


def to_json(result: Output) -> str:
    return json.dumps(versioned(result.to_dict()), indent=2)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV; the header is every key, in the order keys first appear. A nested dict
    becomes ``key_subkey`` columns, a list one cell of its items joined by `` | ``; every row
    starts with ``schema_version``."""
    rows = [_flat({"schema_version": SCHEMA_VERSION, **row}) for row in rows]
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "schema_version" and prefix:
            continue
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}_"))
        elif isinstance(value, list):
            out[prefix + key] = " | ".join(str(v) for v in value)
        else:
            out[prefix + key] = value
    return out


def emit(result: Output, form: Format = "table", *, quiet: bool = False) -> None:
    """Print ``result`` to stdout as a table, JSON or CSV."""
    if form == "json":
        print(to_json(result))
    elif form == "csv":
        rows = getattr(result, "csv_rows", None)
        if rows is None:
            raise UsageError("--csv: this command has no rows to print; use --json")
        print(to_csv(rows()), end="")
    else:
        console().print(result.render(quiet=quiet))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], flag: str) -> None:
    """One JSON object per line; a file that cannot be written is a usage error naming ``flag``."""
    try:
        with Path(path).open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror}") from None
