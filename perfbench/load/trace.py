"""Trace replay: request arrival times and sizes from a recorded production trace.

Three layouts are read, told apart by the file's first line:

* JSONL with ``timestamp`` plus ``input_length``/``output_length`` (the Mooncake trace layout,
  timestamps in milliseconds), optionally a ``prompt`` to send as is, and ``hash_ids``: the
  ids of the prompt's blocks of ``block_size`` tokens (512 in Mooncake's traces), equal ids
  being equal content, so that two rows share exactly the leading blocks they have in common;
* JSONL with ``timestamp`` in seconds: say so with a ``"unit": "s"`` field, or use the CSV;
* CSV with a header ``TIMESTAMP,ContextTokens,GeneratedTokens`` (the Azure LLM inference
  trace layout; timestamps are date-times).

Offsets are taken relative to the first request and divided by ``speed`` (2 replays twice as
fast). The replay is an open loop: requests go out at their trace times whatever the server does.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from perfbench.errors import DatasetError


@dataclass(frozen=True)
class Trace:
    offsets: np.ndarray  # seconds from the first request, ascending
    input_lens: list[int]
    output_lens: list[int]
    prompts: list[str | None]
    hash_ids: list[tuple[int, ...] | None]  # Mooncake's block ids, where the row has them
    block_size: int = 512  # tokens per hash id

    def __len__(self) -> int:
        return len(self.input_lens)

    def reuse(self, rows: int) -> dict[str, int]:
        """What the first ``rows`` rows could take from a prefix cache that forgets nothing: of
        each row's leading blocks, the tokens an earlier row had sent of the same block (so a
        block sent before only in part counts that part), until a block is new or longer than
        what was sent of it; against all prompt tokens. {} when no row has ``hash_ids``."""
        if not any(ids is not None for ids in self.hash_ids[:rows]):
            return {}
        sent: dict[int, int] = {}  # block id: the most tokens of it any row sent
        reusable = total = 0
        size = self.block_size
        for n, ids, given in zip(self.input_lens[:rows], self.hash_ids[:rows], self.prompts):
            total += n
            if ids is None or given is not None:  # a row's own text sends no block
                continue
            for j, h in enumerate(ids):
                mine, had = min(size, n - j * size), sent.get(h, 0)
                reusable += min(mine, had)
                if had < mine:
                    break
            for j, h in enumerate(ids):
                sent[h] = max(sent.get(h, 0), min(size, n - j * size))
        return {"block_size": size, "reusable_tokens": reusable, "prompt_tokens": total}


def read_trace(path: str | Path, *, speed: float = 1.0, block_size: int = 512) -> Trace:
    if not speed > 0:
        raise DatasetError("--trace-speed must be positive")
    if block_size < 1:
        raise DatasetError("--trace-block-size must be a positive number of tokens")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"--trace {path}: {exc.strerror or exc}") from exc
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise DatasetError(f"--trace {path} is empty")
    if first.lstrip().startswith("{"):
        stamps, inputs, outputs, prompts, blocks = _jsonl(path, text, block_size)
    else:
        stamps, inputs, outputs, prompts = _azure_csv(path, text)
        blocks = [None] * len(stamps)
    order = np.argsort(np.asarray(stamps, dtype=np.float64), kind="stable")
    times = np.asarray(stamps, dtype=np.float64)[order]
    return Trace(
        offsets=(times - times[0]) / speed,
        input_lens=[inputs[i] for i in order],
        output_lens=[outputs[i] for i in order],
        prompts=[prompts[i] for i in order],
        hash_ids=[blocks[i] for i in order],
        block_size=block_size,
    )


_Rows = tuple[list[float], list[int], list[int], list[str | None], list[tuple[int, ...] | None]]


def _jsonl(path: Path, text: str, block_size: int) -> _Rows:
    stamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    prompts: list[str | None] = []
    blocks: list[tuple[int, ...] | None] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            scale = 1.0 if row.get("unit") == "s" else 1e-3
            stamps.append(float(row["timestamp"]) * scale)
            inputs.append(max(1, int(row["input_length"])))
            outputs.append(max(1, int(row["output_length"])))
            prompt = row.get("prompt")
            prompts.append(str(prompt) if prompt is not None else None)
            ids = row.get("hash_ids")
            blocks.append(None if ids is None else _hash_ids(ids))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path}:{n}: not a trace row ({type(exc).__name__}: {exc}); expected "
                '{"timestamp": ms, "input_length": n, "output_length": m}'
            ) from exc
        ids, length = blocks[-1], inputs[-1]
        if ids is not None and prompts[-1] is None and len(ids) != math.ceil(length / block_size):
            raise DatasetError(
                f"{path}:{n}: hash_ids names {len(ids)} blocks, but input_length {length} "
                f"fills {math.ceil(length / block_size)} of {block_size} tokens; fix the row, "
                "or give the trace's block size with --trace-block-size"
            )
    return stamps, inputs, outputs, prompts, blocks


def _hash_ids(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in value
    ):
        raise ValueError("hash_ids must be a list of non-negative integers")
    return tuple(value)


def _azure_csv(path: Path, text: str) -> tuple[list[float], list[int], list[int], list[str | None]]:
    reader = csv.DictReader(text.splitlines())
    need = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise DatasetError(
            f"{path}: a CSV trace needs the columns {', '.join(sorted(need))} "
            f"(found {', '.join(reader.fieldnames or [])})"
        )
    stamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    for n, row in enumerate(reader, 2):
        try:
            stamps.append(_seconds(row["TIMESTAMP"]))
            inputs.append(max(1, int(row["ContextTokens"])))
            outputs.append(max(1, int(row["GeneratedTokens"])))
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}:{n}: bad trace row ({exc})") from exc
    return stamps, inputs, outputs, [None] * len(stamps)


def _seconds(stamp: str) -> float:
    """A date-time with up to 7 fractional digits (Azure's layout), or plain seconds."""
    stamp = stamp.strip()
    try:
        return float(stamp)
    except ValueError:
        pass
    head, _, frac = stamp.partition(".")
    base = datetime.fromisoformat(head)
    return base.timestamp() + (float(f"0.{frac}") if frac else 0.0)
