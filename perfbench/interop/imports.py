"""``perfbench import``: result files of ``vllm bench serve``, ``evalscope perf``, GuideLLM and
AIPerf, read into the database as runs of their own, so that ``compare`` and ``report --html``
can set a result another tool measured beside one perfbench measures (docs/drop-in.md).

Each tool's reader (``vllm.read``, ``evalscope.read``, ``guidellm.read``, ``aiperf.read``)
turns a file into :class:`Imported` runs: the requests the file records one by one, with their
times in seconds on the file's own clock, and the file's own summary twice, as written
(``native``) and under perfbench's names where the two tools define a figure alike
(``figures``). Where the file has per-request data, every figure is recomputed from it under
perfbench's definitions (docs/metrics.md), as for a run perfbench made; what the file gives only
as a summary (a window without start times, percentiles without requests) is taken from
``figures``, and the report says so. Every file is read and checked before anything is
written: a file of an unknown tool, or a truncated one, is one line and exit 2, with the
database untouched.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfbench.client.record import RequestRecord
from perfbench.errors import UsageError
from perfbench.interop import aiperf, evalscope, guidellm, vllm
from perfbench.interop.foreign import Imported, Request, load, number, status_of
from perfbench.store.runs import Store, now_iso
from perfbench.store.writer import COLUMNS, Rows, encode

if TYPE_CHECKING:
    from rich.console import RenderableType

TOOLS = ("vllm", "evalscope", "guidellm", "aiperf")
_UNTIMED = ("sent_ns", "ttfb_ns", "first_token_ns", "first_content_ns", "last_token_ns", "end_ns")
_NO_PLAN = ("schedule_lag_ms", "ttft_intended_ms", "e2e_intended_ms")


@dataclass(frozen=True)
class ImportResult:
    """The runs ``perfbench import`` wrote (id, tool, file, part, requests), and the files it
    had already imported and left alone."""

    runs: tuple[dict[str, Any], ...]
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"runs": list(self.runs), "skipped": list(self.skipped)}

    def csv_rows(self) -> list[dict[str, Any]]:
        return list(self.runs)

    def render(self, *, quiet: bool = False) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title="imported runs", title_justify="left")
        for column in ("Id", "Tool", "File", "Part", "Requests", "Figures from"):
            table.add_column(column)
        for r in self.runs:
            table.add_row(
                str(r["run"]),
                r["tool"],
                Text(r["file"]),
                Text(r["part"]),
                str(r["requests"]),
                r["figures"],
            )
        notes = [Text(f"not imported again: {s}") for s in self.skipped]
        return Group(table, *notes) if notes else table


def detect(data: Any) -> str | None:
    """Which tool wrote this parsed file, by the keys only it writes."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict):
        return None
    if "benchmarks" in data and isinstance(data["benchmarks"], list):
        return "guidellm"
    if "request_throughput" in data and "completed" in data and "duration" in data:
        return "vllm"
    if any(isinstance(v, dict) and "unit" in v and "avg" in v for v in data.values()):
        return "aiperf"
    if "Time taken for tests (s)" in data or "Test Duration (s)" in data:
        return "evalscope"
    return None


def import_results(
    db: str | Path, paths: Sequence[str | Path], *, tool: str | None = None, name: str | None = None
) -> ImportResult:
    """Read every file, then write each of its runs into ``db`` (created if need be)."""
    readers: dict[str, Callable[[Path, Any], list[Imported]]] = {
        "vllm": vllm.read,
        "evalscope": evalscope.read,
        "guidellm": guidellm.read,
        "aiperf": aiperf.read,
    }
    if tool is not None and tool not in readers:
        raise UsageError(f"--tool {tool!r}: choose from {', '.join(TOOLS)}")
    parsed: list[tuple[Path, str, list[Imported]]] = []
    for raw in paths:
        for path, which in _resolve(Path(raw), tool):
            data = None if which == "evalscope" else load(path)
            which = which or detect(data)
            if which is None:
                raise UsageError(
                    f"{path}: not a result file of {', '.join(TOOLS)} that perfbench knows; "
                    "give --tool if it is one"
                )
            runs = readers[which](path, data)
            if not runs:
                raise UsageError(f"{path}: the {which} file holds no run")
            parsed.append((path, _digest(path), runs))
    store = Store(db, create=True)
    written: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        seen = {
            (r.source.get("sha256"), r.source.get("part")): r.id for r in store.runs() if r.source
        }
        batch = uuid.uuid4().hex[:12]
        for path, digest, runs in parsed:
            for imp in runs:
                if (digest, imp.part) in seen:
                    skipped.append(
                        f"{path.name} ({imp.part}): already run {seen[digest, imp.part]}"
                    )
                    continue
                run_id = _write(store, imp, path, digest, name=name, batch=batch)
                seen[digest, imp.part] = run_id  # the same file named twice in one command
                written.append(
                    {
                        "run": run_id,
                        "tool": imp.tool,
                        "file": path.name,
                        "part": imp.part,
                        "requests": len(imp.requests),
                        "figures": "its requests" if imp.requests else "its summary",
                    }
                )
    finally:
        store.close()
    return ImportResult(tuple(written), tuple(skipped))


def _resolve(path: Path, tool: str | None) -> list[tuple[Path, str | None]]:
    """The files to read, each with its tool where the path tells it: a folder is AIPerf's
    artifact folder, GuideLLM's output folder, an EvalScope output folder, or a folder of
    vLLM's result files (``--result-dir``)."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name == evalscope.SUMMARY and tool in (None, "evalscope"):
            return [(path, "evalscope")]
        return [(path, tool)]
    for name, which in ((aiperf.EXPORT, "aiperf"), ("benchmarks.json", "guidellm")):
        if (path / name).is_file() and tool in (None, which):
            return [(path / name, which)]
    if tool in (None, "evalscope") and evalscope.levels(path):
        return [(path, "evalscope")]
    files = sorted(path.glob("*.json")) if tool in (None, "vllm") else []
    if files:
        return [(f, "vllm") for f in files]
    raise UsageError(
        f"{path}: a folder without a result file perfbench knows (AIPerf's {aiperf.EXPORT}, "
        f"GuideLLM's benchmarks.json, EvalScope's {evalscope.SUMMARY}, vLLM's *.json); "
        "give the file"
    )


def _digest(path: Path) -> str:
    """The file's SHA-256; of a folder, over its result files' names and contents."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _record(i: int, r: Request, streamed: bool) -> RequestRecord:
    """A request as a record on a clock in ns from the file's first send (0 when untimed)."""

    def at(seconds: float | None) -> int | None:
        return None if seconds is None else start + round(seconds * 1e9)

    start = round((r.start_s or 0.0) * 1e9)
    chunks = [start + round(c * 1e9) for c in r.chunks_s] if streamed else []
    first = chunks[0] if chunks else at(r.ttft_s)
    last = chunks[-1] if chunks else at(r.last_token_s)
    return RequestRecord(
        index=i,
        warmup=r.warmup,
        prompt_id=None,
        status="ok" if r.ok else status_of(r.error, r.http_status),
        intended_ns=start,
        sent_ns=start,
        first_token_ns=first,
        first_content_ns=first,
        last_token_ns=last,
        end_ns=at(r.latency_s),
        chunk_ns=chunks,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.output_tokens if r.ok else None,
        token_source="imported" if r.output_tokens is not None and r.ok else None,
        output_text=r.text,
        http_status=r.http_status,
        error=None if r.ok else (r.error or "failed (the file gives no reason)"),
        streamed=streamed,
    )


def _rows(run_id: int, imp: Imported) -> Rows:
    """The requests as ``requests``/``chunks`` rows, through the same encoder as a live run's.
    An untimed file's rows keep their durations and lose the stamps it never had; a file that
    counts chunks without timing each gives the count and the mean gap, and no gaps."""
    records = [_record(i, r, imp.streamed) for i, r in enumerate(imp.requests)]
    origin = min((r.start_s for r in imp.requests if r.start_s is not None), default=0.0)
    rows = encode(records, run_id, round(origin * 1e9))
    timed = all(r.start_s is not None for r in imp.requests)
    blank = {COLUMNS.index(c) for c in (*_NO_PLAN, *(() if timed else _UNTIMED))}
    n_chunks, itl = COLUMNS.index("n_chunks"), COLUMNS.index("itl_ms")
    requests = []
    for r, rec, row in zip(imp.requests, records, rows.requests, strict=True):
        values = [None if k in blank else v for k, v in enumerate(row)]
        if not r.chunks_s and r.n_chunks is not None and r.ok:
            values[n_chunks] = r.n_chunks
            span = (rec.last_token_ns or 0) - (rec.first_token_ns or 0)
            values[itl] = span / (r.n_chunks - 1) / 1e6 if r.n_chunks > 1 else None
        requests.append(tuple(values))
    return Rows(requests, rows.chunks, len(requests))


def _write(
    store: Store, imp: Imported, path: Path, digest: str, *, name: str | None, batch: str
) -> int:
    timed = bool(imp.requests) and all(r.start_s is not None for r in imp.requests)
    source = {
        "tool": imp.tool,
        "version": imp.version,
        "file": str(path.resolve()),
        "sha256": digest,
        "part": imp.part,
        "imported_at": now_iso(),
        "timed": timed,
        "figures": imp.figures,
        "native": imp.native,
        "notes": list(imp.notes),
    }
    n = len(imp.requests)
    run_id = store.create_run(
        name=name or f"{imp.tool}:{path.stem}",
        batch=batch,
        status="completed",
        started_at=imp.started_at or now_iso(),
        ended_at=now_iso(),
        t0_ns=0,
        duration_s=number(imp.figures.get("duration_s")),
        endpoint=imp.endpoint,
        model=imp.model,
        load={**imp.load, "planned": imp.load.get("number")},
        client={"api": imp.api, "stream": imp.streamed},
        workload={},
        server={},
        host={},
        command=f"perfbench import {path.name}",
        scheduled=n,
        recorded=n,
        health={},
        source=source,
    )
    if n:
        store.put_rows(_rows(run_id, imp))
    return run_id
