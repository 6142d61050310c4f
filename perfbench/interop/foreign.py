"""Another tool's result file as perfbench reads it: the plain records every reader hands
on (:class:`Imported` runs of :class:`Request` rows), and the checks they share, so that a
truncated or foreign file is one line (docs/drop-in.md, "Importing")."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfbench.errors import UsageError


@dataclass(frozen=True)
class Request:
    """One request as another tool's file records it: seconds from the request's send, and its
    send (``start_s``) on the file's own clock, None where the file does not say."""

    ok: bool
    error: str | None = None
    start_s: float | None = None
    ttft_s: float | None = None
    latency_s: float | None = None  # send → end of the response
    chunks_s: Sequence[float] = ()  # arrival of each token-carrying chunk (the first: TTFT)
    last_token_s: float | None = None  # where the file has no chunk times: the last token's
    n_chunks: int | None = None  # where the file has no chunk times: how many there were
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    text: str = ""
    http_status: int | None = None
    warmup: bool = False  # outside the file's measured window (warm-up, cool-down)


@dataclass(frozen=True)
class Imported:
    """One run of a result file (a file may hold several: load levels, JSON Lines)."""

    tool: str
    version: str | None
    part: str  # which of the file's runs this is ("concurrency 2", "line 3")
    model: str | None
    endpoint: str | None
    load: dict[str, Any]  # runs.load fields: parallel, rate, max_concurrency, number, ...
    native: dict[str, Any]  # the file's own summary, its keys and units
    figures: dict[str, Any]  # the same under perfbench's keys, where defined alike (docs)
    requests: tuple[Request, ...] = ()
    started_at: str | None = None
    streamed: bool = True
    api: str | None = None  # openai-chat or openai-completions, where the file says
    notes: tuple[str, ...] = field(default=())  # where its definitions differ from perfbench's


def load(path: Path) -> Any:
    """A JSON file, or JSON Lines (a list of its objects); one line when it is neither."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder: give its result file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path} ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole:
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            if len(lines) > 1:
                return [json.loads(line) for line in lines]
        except json.JSONDecodeError:
            pass
        raise UsageError(
            f"{path}: not JSON ({whole.msg} at line {whole.lineno}); a truncated file?"
        ) from None


def need(data: dict[str, Any], keys: Sequence[str], path: Path, what: str) -> None:
    """One line naming the first key a file of this kind must have and lacks."""
    for key in keys:
        if key not in data:
            raise UsageError(f"{path}: not a complete {what} (no {key!r}); a truncated file?")


def number(value: Any) -> float | None:
    """A figure as a float; None for a missing, null, NaN or non-numeric one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def status_of(error: str | None, http_status: int | None = None) -> str:
    """perfbench's failure class from a file's error message, where the message says it;
    ``unclassified`` where it does not."""
    text = (error or "").lower()
    if http_status is not None and http_status != 200:
        return "http"
    if "cancel" in text:
        return "cancelled"
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if re.search(r"\b[45]\d\d\b", text) and ("http" in text or "status" in text):
        return "http"
    if "cannot connect" in text or "connection refused" in text or "connecterror" in text:
        return "connect"
    if any(w in text for w in ("disconnect", "payload is not completed", "peer closed")):
        return "disconnect"
    return "unclassified"


def api_of(url: Any) -> str | None:
    """openai-chat or openai-completions, by the endpoint a URL or path names."""
    text = str(url or "")
    if text.rstrip("/").endswith("/chat/completions"):
        return "openai-chat"
    if text.rstrip("/").endswith("/completions"):
        return "openai-completions"
    return None


def http_code(text: str | None) -> int | None:
    """The HTTP status a failure message names ("Server error '500 Internal…'"), if any."""
    m = re.search(r"\b([45]\d\d)\b", text or "")
    return int(m[1]) if m else None


def distribution(
    summary: Any, scale: float = 1.0, names: dict[str, str] | None = None
) -> dict[str, float]:
    """A tool's summary of one figure ({mean/avg, pNN, count}) under perfbench's labels
    (``mean``, ``p50``, ..., ``n``), times ``scale``; the percentiles perfbench reports only."""
    if not isinstance(summary, dict):
        return {}
    out: dict[str, float] = {}
    for key, label in (names or {}).items():
        value = number(summary.get(key))
        if value is not None:
            out[label] = value * scale
    for key in ("mean", "avg"):
        value = number(summary.get(key))
        if value is not None:
            out["mean"] = value * scale
    count = summary.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        out["n"] = count
    return out
