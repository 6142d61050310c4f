"""Runs in the database: create, finish, list, find, and read back for reports."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.errors import StoreError
from perfbench.store.schema import REQUEST_COLUMNS, open_db
from perfbench.store.writer import decode_gaps


@dataclass(frozen=True)
class Run:
    """One ``runs`` row, with its JSON columns decoded."""

    id: int
    name: str | None
    batch: str | None
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    endpoint: str | None
    model: str | None
    load: dict[str, Any]
    client: dict[str, Any]
    workload: dict[str, Any]
    server: dict[str, Any]
    host: dict[str, Any]
    command: str | None
    scheduled: int | None
    recorded: int | None
    health: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        def js(key: str) -> dict[str, Any]:
            value = row.get(key)
            return json.loads(value) if value else {}

        return cls(
            id=row["id"],
            name=row["name"],
            batch=row["batch"],
            status=row["status"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            duration_s=row["duration_s"],
            endpoint=row["endpoint"],
            model=row["model"],
            load=js("load"),
            client=js("client"),
            workload=js("workload"),
            server=js("server"),
            host=js("host"),
            command=row["command"],
            scheduled=row["scheduled"],
            recorded=row["recorded"],
            health=js("health"),
        )


def append_server_samples(
    path: str | Path, run_id: int, samples: Sequence[tuple[int, str, float]]
) -> None:
    """Write server-metrics samples ``(t_ns, key, value)`` in one transaction, on a connection
    of its own: called from a worker thread during the run, never on the event loop."""
    db = open_db(str(path), create=True)
    try:
        with db.conn:
            db.conn.executemany(
                "INSERT OR REPLACE INTO server_metrics (run_id, t_ns, name, value) "
                "VALUES (?, ?, ?, ?)",
                [(run_id, t, name, value) for t, name, value in samples],
            )
    finally:
        db.close()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """The database file. Opening for writing creates it; opening for reading requires it."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(
                f"no database at {self.path}: run `perfbench perf` first, or point --outputs-dir/--db at it"
            )
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = open_db(str(self.path), create=create)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a perfbench database ({exc})") from exc

    def close(self) -> None:
        self.db.close()

    # -- writing runs -----------------------------------------------------------------------
    def create_run(self, **fields: Any) -> int:
        row = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
        row.setdefault("status", "running")
        row.setdefault("started_at", now_iso())
        with self.db.conn:
            table = self.db.table("runs").insert(row)
        assert table.last_pk is not None
        return int(table.last_pk)

    def add_prompts(self, run_id: int, prompts: Iterable[Any]) -> None:
        """Store a run's prompts (``Prompt`` objects), once per id, in one transaction."""
        seen: set[str] = set()
        rows = []
        for p in prompts:
            if p.id in seen:
                continue
            seen.add(p.id)
            rows.append(
                {
                    "run_id": run_id,
                    "prompt_id": p.id,
                    "dataset": p.dataset,
                    "subset": p.subset,
                    "grader": p.grader,
                    "answer": p.answer,
                    "choices": json.dumps(list(p.choices)) if p.choices is not None else None,
                    "text": p.text,
                    "messages": json.dumps([dict(m) for m in p.messages])
                    if p.messages is not None
                    else None,
                    "max_tokens": p.max_tokens,
                    "metadata": json.dumps(dict(p.metadata), default=str) if p.metadata else None,
                }
            )
        with self.db.conn:
            self.db.table("prompts").insert_all(rows, batch_size=80, replace=True)

    def update_run(self, run_id: int, **fields: Any) -> None:
        row = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
        with self.db.conn:
            self.db.table("runs").update(run_id, row)

    # -- reading ----------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return [Run.from_row(r) for r in self.db.table("runs").rows_where(order_by="id")]

    def run(self, run_id: int) -> Run:
        rows = list(self.db.table("runs").rows_where("id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id} in {self.path}; `perfbench runs` lists them")
        return Run.from_row(rows[0])

    def find(self, selectors: Sequence[str] = (), name: str | None = None) -> list[Run]:
        """Runs by id or name (``selectors``), or by ``name``; the latest batch when neither."""
        runs = self.runs()
        if not runs:
            raise StoreError(f"{self.path} holds no runs yet")
        if name is not None:
            found = [r for r in runs if r.name == name]
            if not found:
                raise StoreError(
                    f"no run named {name!r} in {self.path}; `perfbench runs` lists them"
                )
            return found
        if not selectors:
            last = runs[-1]
            return [r for r in runs if last.batch and r.batch == last.batch] or [last]
        out: list[Run] = []
        for sel in selectors:
            if sel.isdigit():
                out.append(self.run(int(sel)))
            else:
                named = [r for r in runs if r.name == sel]
                if not named:
                    raise StoreError(f"no run with id or name {sel!r} in {self.path}")
                out.extend(named)
        return out

    def columns(self, run_id: int, names: Sequence[str], where: str = "") -> dict[str, np.ndarray]:
        """Columns of a run's requests as numpy arrays: text columns as str, others float (NULL → NaN)."""
        sql = f"SELECT {', '.join(names)} FROM requests WHERE run_id = ? {where} ORDER BY idx"
        rows = self.db.conn.execute(sql, [run_id]).fetchall()
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(names):
            values = [row[i] for row in rows]
            if REQUEST_COLUMNS.get(name) is str:
                out[name] = np.array(["" if v is None else v for v in values], dtype=str)
            else:
                out[name] = np.array(values, dtype=np.float64)  # None becomes nan
        return out

    def count_by_status(self, run_id: int) -> dict[str, int]:
        rows = self.db.conn.execute(
            "SELECT status, count(*) FROM requests WHERE run_id = ? AND warmup = 0 GROUP BY status",
            [run_id],
        ).fetchall()
        return {status: n for status, n in rows}

    def iter_gaps(self, run_id: int, batch: int = 2000) -> Iterator[np.ndarray]:
        """Inter-token gaps (ns) of the measured, successful requests, a batch at a time."""
        cursor = self.db.conn.execute(
            "SELECT c.width, c.gaps FROM chunks c JOIN requests r USING (run_id, idx) "
            "WHERE c.run_id = ? AND r.warmup = 0 AND r.status = 'ok'",
            [run_id],
        )
        while rows := cursor.fetchmany(batch):
            yield np.concatenate([decode_gaps(w, g) for w, g in rows])

    def server_samples(self, run_id: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """A run's server-metrics samples: canonical key -> (t_ns int64, value float64), by time."""
        rows = self.db.conn.execute(
            "SELECT name, t_ns, value FROM server_metrics WHERE run_id = ? ORDER BY name, t_ns",
            [run_id],
        ).fetchall()
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, group in itertools.groupby(rows, key=lambda r: str(r[0])):
            mine = list(group)
            out[name] = (
                np.array([r[1] for r in mine], dtype=np.int64),
                np.array([r[2] for r in mine], dtype=np.float64),  # NULL (NaN) -> nan
            )
        return out

    def gap_count(self, run_id: int) -> int:
        row = self.db.conn.execute(
            "SELECT coalesce(sum(n_chunks - 1), 0) FROM requests "
            "WHERE run_id = ? AND warmup = 0 AND status = 'ok' AND streamed = 1 AND n_chunks > 1",
            [run_id],
        ).fetchone()
        return int(row[0])
