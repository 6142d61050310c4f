"""jsonl: one prompt per row of a JSON Lines file; and ``read_rows``, which every file dataset uses.

A row holds ``prompt`` (a string, sent as text) or ``messages`` (an OpenAI chat list), and may
add ``id`` (default ``jsonl-<line>``), ``max_tokens``, a gold ``answer``, ``choices`` (a list of
strings, in letter order), ``grader``, ``subset`` and ``tools`` (function tools, sent with a chat
request as OpenAI's ``tools``); any other field (and ``tools``) goes to ``metadata``::

    {"id": "q1", "prompt": "Name three primes.", "max_tokens": 64}
    {"messages": [{"role": "user", "content": "2+2?"}], "answer": "4", "grader": "numeric"}
    {"messages": [...], "tools": [{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}

``read_rows`` reads JSON Lines, a JSON array of objects, CSV (a header row) or Parquet (only
when pyarrow is installed) into ``Row``s that carry where they came from, so that every
loader's error names the file and line.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import Prompt, read_text, register
from perfbench.workload.hub import HubFiles, fetch


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a data file: its fields, its line (or position) and a label for errors."""

    fields: Mapping[str, Any]
    number: int  # the line in JSON Lines and CSV; the 1-based position in a JSON array or Parquet
    where: str  # "file.jsonl:12" or "file.json: row 12", to start an error message

    def missing(self, name: str, layout: str) -> DatasetError:
        return DatasetError(f"{self.where}: missing field {name!r}; expected {layout}")


def read_rows(path: str | Path) -> Iterator[Row]:
    """The rows of a JSON Lines, JSON array, CSV or Parquet file, chosen by suffix and content."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_rows(path)
    text = read_text(path).removeprefix("\ufeff")  # a byte-order mark, as spreadsheets write
    if suffix == ".csv":
        return _csv_rows(path, text)
    if text.lstrip().startswith("["):
        return _json_array_rows(path, text)
    return _json_lines_rows(path, text)


def dataset_rows(spec: WorkloadSpec, source: HubFiles) -> Iterator[Row]:
    """The rows of ``--dataset-path``, or else of the dataset's files from the hub."""
    for path in [Path(spec.dataset_path)] if spec.dataset_path else fetch(source):
        yield from read_rows(path)


def _json_lines_rows(path: Path, text: str) -> Iterator[Row]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from exc
        if not isinstance(fields, dict):
            raise DatasetError(f"{path}:{n}: a {type(fields).__name__}, not a JSON object")
        yield Row(fields, n, f"{path}:{n}")


def _json_array_rows(path: Path, text: str) -> Iterator[Row]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
        ) from exc
    if not isinstance(items, list):
        raise DatasetError(f"{path}: a JSON {type(items).__name__}; expected an array of objects")
    for n, fields in enumerate(items, 1):
        if not isinstance(fields, dict):
            raise DatasetError(f"{path}: row {n} is a {type(fields).__name__}, not an object")
        yield Row(fields, n, f"{path}: row {n}")


def _csv_rows(path: Path, text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        line = reader.line_num  # a quoted cell may span lines: a record starts after the last
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(cells):
                continue
            if header is None or len(cells) > len(header):
                raise DatasetError(
                    f"{path}:{start}: more cells than the header has columns; "
                    "quote cells that hold commas"
                )
            fields = dict(zip(header, cells + [""] * (len(header) - len(cells))))
            yield Row(fields, start, f"{path}:{start}")
    except csv.Error as exc:
        raise DatasetError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from exc


def _parquet_rows(path: Path) -> Iterator[Row]:
    try:
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise DatasetError(
            f"{path} is Parquet, and reading Parquet needs pyarrow: pip install 'perfbench[parquet]' "
            "(or give the dataset as JSON Lines)"
        ) from None
    try:
        records = parquet.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc
    for n, fields in enumerate(records, 1):
        yield Row(fields, n, f"{path}: row {n}")


_KNOWN = ("id", "prompt", "messages", "max_tokens", "answer", "choices", "grader", "subset")
_LAYOUT = 'a JSON object with "prompt" (string) or "messages" (chat list)'


@register(
    "jsonl",
    "one prompt per row of a JSON Lines file: prompt or messages, optional answer/choices/grader",
    needs_path=True,
)
def load(spec: WorkloadSpec) -> list[Prompt]:
    assert spec.dataset_path is not None
    prompts: list[Prompt] = []
    first_seen: dict[str, int] = {}
    for row in read_rows(spec.dataset_path):
        prompt = _prompt(row)
        if prompt.id in first_seen:
            raise DatasetError(
                f"{row.where}: id {prompt.id!r} repeats line {first_seen[prompt.id]}; "
                "give each row its own id"
            )
        first_seen[prompt.id] = row.number
        prompts.append(prompt)
    return prompts


def _prompt(row: Row) -> Prompt:
    f = row.fields
    if ("prompt" in f) == ("messages" in f):
        has = 'both "prompt" and' if "prompt" in f else 'neither "prompt" nor'
        raise DatasetError(f'{row.where}: has {has} "messages"; expected {_LAYOUT}')
    text = messages = None
    if "prompt" in f:
        text = f["prompt"]
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f'{row.where}: "prompt" must be a non-empty string')
    else:
        messages = _messages(row)
    return Prompt(
        id=_optional_id(row) or f"jsonl-{row.number}",
        text=text,
        messages=messages,
        max_tokens=_max_tokens(row),
        answer=_optional_str(row, "answer", allow_number=True),
        choices=_choices(row),
        grader=_optional_str(row, "grader"),
        subset=_optional_str(row, "subset"),
        metadata={k: v for k, v in f.items() if k not in _KNOWN},
        dataset="jsonl",
        tools=_tools(row),
    )


def _tools(row: Row) -> tuple[Mapping[str, Any], ...] | None:
    tools = row.fields.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
        for t in tools
    ):  # fmt: skip
        raise DatasetError(
            f'{row.where}: "tools" must be a list of {{"type": "function", "function": '
            '{"name": ..., "parameters": ...}}'
        )
    return tuple(dict(t) for t in tools)


def _messages(row: Row) -> tuple[Mapping[str, Any], ...]:
    messages = row.fields["messages"]
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f'{row.where}: "messages" must be a non-empty list of chat messages')
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise DatasetError(
                f'{row.where}: messages[{i}] needs a "role" string, like '
                '{"role": "user", "content": "..."}'
            )
        if "content" not in message:
            raise DatasetError(f'{row.where}: messages[{i}] has no "content"')
    return tuple(dict(m) for m in messages)


def _optional_id(row: Row) -> str | None:
    value = row.fields.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError(f'{row.where}: "id" must be a string or an integer')
    return str(value)


def _max_tokens(row: Row) -> int | None:
    value = row.fields.get("max_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f'{row.where}: "max_tokens" must be an integer of at least 1')
    return value


def _optional_str(row: Row, name: str, *, allow_number: bool = False) -> str | None:
    value = row.fields.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if allow_number and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DatasetError(f"{row.where}: {name!r} must be a string")


def _choices(row: Row) -> tuple[str, ...] | None:
    value = row.fields.get("choices")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise DatasetError(f'{row.where}: "choices" must be a non-empty list of strings')
    return tuple(value)
