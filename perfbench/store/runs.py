"""Runs in the database: create, finish, list, find, and read back for reports."""

from __future__ import annotations

import itertools
import json
import os
import socket
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.errors import StoreError
from perfbench.store.schema import REQUEST_COLUMNS, open_db
from perfbench.store.writer import Rows, decode_gaps, insert_rows


@dataclass(frozen=True)
class RunLoad:
    """A run's load as it was recorded (``runs.load``): the :class:`~perfbench.config.LoadSpec`
    fields, plus ``planned``, the number of requests the schedule planned (None: closed loop
    bounded by time). Missing fields (older runs) take the spec's defaults."""

    parallel: int | None = None
    number: int | None = None
    rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    duration: float | None = None
    warmup: int = 0
    seed: int = 0
    arrival: str = "poisson"
    ramp_from: float | None = None
    ramp_to: float | None = None
    trace: str | None = None
    trace_speed: float = 1.0
    trace_block_size: int = 512
    planned: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunLoad:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    @property
    def open_loop(self) -> bool:
        """Arrivals on a plan (a rate, a ramp or a trace), not closed-loop workers."""
        return self.rate is not None or self.ramp_from is not None or bool(self.trace)

    @property
    def shape(self) -> str:
        """How arrivals were planned: closed, poisson, gamma, constant, ramp or trace."""
        if self.trace:
            return "trace"
        if self.ramp_from is not None:
            return "ramp"
        if self.rate is None:
            return "closed"
        if self.arrival == "constant":
            return "constant"
        return "poisson" if self.burstiness == 1.0 else "gamma"

    @property
    def level(self) -> float | None:
        """The load level on a sweep's axis: the rate of an open loop, the parallelism of a
        closed one; None for a ramp or a trace, which have no one level."""
        if self.trace or self.ramp_from is not None:
            return None
        if self.rate is not None:
            return float(self.rate)
        return float(self.parallel) if self.parallel is not None else None

    @property
    def label(self) -> str:
        """``parallel 8``, ``rate 20/s``, ``ramp`` or ``trace``."""
        if self.trace:
            return "trace"
        if self.ramp_from is not None:
            return "ramp"
        if self.rate is not None:
            return f"rate {self.rate:g}/s"
        return f"parallel {self.parallel}"


@dataclass(frozen=True)
class Run:
    """One ``runs`` row. ``load`` is typed; the other JSON columns are the specs and facts as
    recorded (secrets removed), decoded into dicts."""

    id: int
    name: str | None
    batch: str | None
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    endpoint: str | None
    model: str | None
    load: RunLoad
    client: dict[str, Any]
    workload: dict[str, Any]
    server: dict[str, Any]
    host: dict[str, Any]
    command: str | None
    scheduled: int | None
    recorded: int | None
    health: dict[str, Any]
    workers: tuple[dict[str, Any], ...] = ()  # scale-out: each worker, its clock and its share
    replicate_of: int | None = None  # --repeat: the first replicate's id (its own for the first)
    replicate: int | None = None  # --repeat: this replicate's number, from 1
    t0_ns: int | None = None  # the monotonic clock at the run's start (its process's)
    owner: dict[str, Any] = field(default_factory=dict)  # the process that writes(/wrote) it
    source: dict[str, Any] = field(default_factory=dict)  # imported: the tool, file, its figures

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
            load=RunLoad.from_dict(js("load")),
            client=js("client"),
            workload=js("workload"),
            server=js("server"),
            host=js("host"),
            command=row["command"],
            scheduled=row["scheduled"],
            recorded=row["recorded"],
            health=js("health"),
            workers=tuple(json.loads(row["workers"])) if row.get("workers") else (),
            replicate_of=row.get("replicate_of"),
            replicate=row.get("replicate"),
            t0_ns=row.get("t0_ns"),
            owner=js("owner"),
            source=js("source"),
        )

    @property
    def open_loop(self) -> bool:
        return self.load.open_loop


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


def owner() -> dict[str, Any]:
    """This process, as a running run's owner: host, pid, the pid's start time (a pid reused
    by a later process has another start time) and the boot (a resumed run on the same boot
    shares its monotonic clock)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start": _started(os.getpid()),
        "boot": boot_id(),
    }


def boot_id() -> str | None:
    """This boot of this machine (Linux), or None."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _started(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        if fields[0] == b"Z":
            return None  # dead, not yet reaped
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _read(row: dict[str, Any]) -> Run:
    """A ``runs`` row as a Run; a run still marked running whose owner process on this host
    is gone reads as ``killed`` (it never got to mark itself)."""
    run = Run.from_row(row)
    if run.status != "running" or not row.get("owner"):
        return run
    who = json.loads(row["owner"])
    if who.get("host") != socket.gethostname() or not sys.platform.startswith("linux"):
        return run  # another machine's process: it cannot be checked from here
    if who.get("start") is not None and _started(int(who["pid"])) == who["start"]:
        return run
    return replace(run, status="killed")


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
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = open_db(str(self.path), create=create)
        except sqlite3.DatabaseError as exc:
            if self.path.is_dir():
                raise StoreError(
                    f"{self.path} is a folder, not a database file: give --db a file name"
                ) from None
            raise StoreError(f"{self.path} is not a perfbench database ({exc})") from exc
        except OSError as exc:
            raise StoreError(
                f"cannot create the database at {self.path} ({exc.strerror or exc}): "
                "choose another --outputs-dir or --db"
            ) from None

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

    def put_rows(self, rows: Rows) -> None:
        """Encoded ``requests``/``chunks`` rows (an imported run's), in one transaction."""
        with self.db.conn:
            insert_rows(self.db.conn, rows)

    def update_run(self, run_id: int, **fields: Any) -> None:
        row = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
        with self.db.conn:
            self.db.table("runs").update(run_id, row)

    # -- reading ----------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return [_read(r) for r in self.db.table("runs").rows_where(order_by="id")]

    def run(self, run_id: int) -> Run:
        rows = list(self.db.table("runs").rows_where("id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id} in {self.path}; `perfbench runs` lists them")
        return _read(rows[0])

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

    def replicates(self, run: Run) -> list[Run]:
        """The replicates of ``run``'s load (``--repeat``) in order; ``[run]`` for a run made once."""
        if run.replicate_of is None:
            return [run]
        rows = self.db.table("runs").rows_where(
            "replicate_of = ?", [run.replicate_of], order_by="replicate"
        )
        return [_read(r) for r in rows]

    def group(self, selector: str) -> list[Run]:
        """What one side of a comparison stands for: the run an id or a name selects, with all
        the replicates of its load. A name must select one run, or the replicates of one load."""
        found = self.find([selector])
        groups = {r.replicate_of if r.replicate_of is not None else -r.id for r in found}
        if len(groups) != 1:
            raise StoreError(
                f"{selector!r} names {len(found)} runs that are not replicates of one load; "
                "give a run id (`perfbench runs` lists them)"
            )
        return self.replicates(found[0])

    # -- resuming ------------------------------------------------------------------------------
    def unfinished(self, run_id: int, first: int, count: int) -> np.ndarray:
        """The measured indices ``first … first + count − 1`` without an ``ok`` row, in order."""
        done = self.db.conn.execute(
            "SELECT idx FROM requests WHERE run_id = ? AND warmup = 0 AND status = 'ok' "
            "AND idx >= ? AND idx < ?",
            [run_id, first, first + count],
        ).fetchall()
        todo = np.ones(count, dtype=bool)
        todo[np.array([i for (i,) in done], dtype=np.int64) - first] = False
        return first + np.flatnonzero(todo).astype(np.int64)

    def claim(self, run_id: int) -> tuple[str, str | None] | None:
        """Mark the run running with this process as its owner, unless a live process owns it
        (checked and written in one transaction, so two claimants cannot both succeed); the
        row's former (status, owner), or None when a live process holds it."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute("SELECT * FROM runs WHERE id = ?", [run_id])
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
            current = dict(zip(names, row, strict=True)) if row is not None else None
            if current is None or _read(current).status == "running":
                conn.execute("ROLLBACK")
                return None
            conn.execute(
                "UPDATE runs SET status = 'running', owner = ? WHERE id = ?",
                [json.dumps(owner()), run_id],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return current["status"], current["owner"]

    def release(self, run_id: int, token: tuple[str, str | None]) -> None:
        """Give a claimed run back as it was (a resume that failed before it sent anything)."""
        with self.db.conn:
            self.db.conn.execute(
                "UPDATE runs SET status = ?, owner = ? WHERE id = ?", [*token, run_id]
            )

    def drop_warmup_in_flight(self, run_id: int, resume: int) -> int:
        """A resumed run's warm-up rows still ``in_flight`` (its process was killed during the
        warm-up) go to ``resent`` and leave ``requests``: the warm-up is sent again, at other
        indices. How many."""
        idxs = [
            i
            for (i,) in self.db.conn.execute(
                "SELECT idx FROM requests WHERE run_id = ? AND warmup = 1 AND status = 'in_flight'",
                [run_id],
            )
        ]
        if idxs:
            self.set_aside(run_id, idxs, resume)
            with self.db.conn:
                for lo in range(0, len(idxs), 500):
                    part = idxs[lo : lo + 500]
                    marks = ", ".join("?" * len(part))
                    self.db.conn.execute(
                        f"DELETE FROM requests WHERE run_id = ? AND idx IN ({marks})",
                        [run_id, *part],
                    )
        return len(idxs)

    def last_index(self, run_id: int) -> int:
        """The highest request index a run has a row for (−1: none)."""
        row = self.db.conn.execute(
            "SELECT max(idx) FROM requests WHERE run_id = ?", [run_id]
        ).fetchone()
        return -1 if row[0] is None else int(row[0])

    def last_end_ns(self, run_id: int) -> int:
        """The latest time a run's rows hold (ns from its ``t0_ns``; 0: none)."""
        row = self.db.conn.execute(
            "SELECT max(max(coalesce(end_ns, 0), coalesce(sent_ns, 0), coalesce(intended_ns, 0))) "
            "FROM requests WHERE run_id = ?",
            [run_id],
        ).fetchone()
        return int(row[0] or 0)

    def set_aside(self, run_id: int, idxs: Sequence[int], resume: int) -> dict[str, int]:
        """Keep the rows of requests about to be sent again (a resumed run) in ``resent``, as
        they were, and drop their chunk rows (a new attempt brings its own); the counts by
        status. The request rows themselves stay until each new attempt replaces its own."""
        conn = self.db.conn
        counts: dict[str, int] = {}
        wanted = [int(i) for i in idxs]
        with conn:
            for lo in range(0, len(wanted), 500):
                part = wanted[lo : lo + 500]
                marks = ", ".join("?" * len(part))
                cur = conn.execute(
                    f"SELECT * FROM requests WHERE run_id = ? AND idx IN ({marks})", [run_id, *part]
                )
                names = [d[0] for d in cur.description]
                gaps = dict(
                    conn.execute(
                        f"SELECT idx, gaps FROM chunks WHERE run_id = ? AND idx IN ({marks})",
                        [run_id, *part],
                    ).fetchall()
                )
                rows = []
                for values in cur.fetchall():
                    row = dict(zip(names, values, strict=True))
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
                    rows.append((run_id, row["idx"], resume, json.dumps(row), gaps.get(row["idx"])))
                conn.executemany(
                    "INSERT OR REPLACE INTO resent (run_id, idx, resume, row, gaps) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute(
                    f"DELETE FROM chunks WHERE run_id = ? AND idx IN ({marks})", [run_id, *part]
                )
        return counts

    def columns(self, run_id: int, names: Sequence[str], where: str = "") -> dict[str, np.ndarray]:
        """Columns of a run's requests as numpy arrays: numbers as float (NULL → NaN), text as
        object arrays of shared strings ("" for NULL). Read from one snapshot in slices into
        arrays sized up front: a million rows as Python tuples would take about a gigabyte."""
        conn = self.db.conn
        text = [REQUEST_COLUMNS.get(name) is str for name in names]
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")  # one snapshot for the count and the rows (WAL)
        try:
            (n,) = conn.execute(
                f"SELECT count(*) FROM requests WHERE run_id = ? {where}", [run_id]
            ).fetchone()
            out = [np.empty(n, dtype=object) if t else np.empty(n) for t in text]
            shared: dict[str, str] = {}
            cursor = conn.execute(
                f"SELECT {', '.join(names)} FROM requests WHERE run_id = ? {where} ORDER BY idx",
                [run_id],
            )
            at = 0
            while rows := cursor.fetchmany(10_000):
                end = at + len(rows)
                for i, column in enumerate(zip(*rows, strict=True)):
                    if text[i]:
                        out[i][at:end] = [shared.setdefault(v, v) if v else "" for v in column]
                    else:
                        out[i][at:end] = np.array(column, dtype=np.float64)  # None → nan
                at = end
        finally:
            if own:
                conn.execute("COMMIT")
        return dict(zip(names, out, strict=True))

    def count_by_status(self, run_id: int, *, warmup: bool = False) -> dict[str, int]:
        """The measured requests by status (``warmup``: the warm-up's too)."""
        where = "" if warmup else "AND warmup = 0"
        rows = self.db.conn.execute(
            f"SELECT status, count(*) FROM requests WHERE run_id = ? {where} GROUP BY status",
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
        """How many gaps :meth:`iter_gaps` yields (read from the blobs' lengths, not their
        contents; an imported request may count chunks without having their times)."""
        row = self.db.conn.execute(
            "SELECT coalesce(sum(length(c.gaps) / c.width), 0) FROM chunks c "
            "JOIN requests r USING (run_id, idx) "
            "WHERE c.run_id = ? AND r.warmup = 0 AND r.status = 'ok'",
            [run_id],
        ).fetchone()
        return int(row[0])

    def request_count(self, run_id: int) -> int:
        """The run's measured (non-warm-up) requests, whatever their status."""
        row = self.db.conn.execute(
            "SELECT count(*) FROM requests WHERE run_id = ? AND warmup = 0", [run_id]
        ).fetchone()
        return int(row[0])

    def failures(self, run_ids: Sequence[int]) -> list[Failure]:
        """Failed requests of the runs, grouped by (run, status, HTTP status, message), most
        frequent first within each run."""
        marks = ",".join("?" * len(run_ids))
        rows = self.db.conn.execute(
            "SELECT run_id, status, http_status, count(*), error FROM requests "
            f"WHERE run_id IN ({marks}) AND status != 'ok' "
            "GROUP BY run_id, status, http_status, error ORDER BY run_id, count(*) DESC",
            list(run_ids),
        ).fetchall()
        return [Failure(*row) for row in rows]

    # -- token counts ---------------------------------------------------------------------------
    def usage_outputs(self, run_id: int, limit: int) -> list[tuple[int, str]]:
        """(server's completion tokens, reasoning + answer text) of the first ``limit``
        successful measured requests that have server usage."""
        rows = self.db.conn.execute(
            "SELECT completion_tokens, coalesce(reasoning_text, '') || coalesce(output_text, '') "
            "FROM requests WHERE run_id = ? AND warmup = 0 AND status = 'ok' "
            "AND token_source = 'usage' AND completion_tokens > 0 ORDER BY idx LIMIT ?",
            [run_id, limit],
        ).fetchall()
        return [(int(n), str(text)) for n, text in rows]

    def usage_inputs(self, run_id: int, limit: int) -> list[tuple[int, str]]:
        """(server's prompt tokens, the prompt's text: its messages' contents joined by
        newlines) of the first ``limit`` successful measured requests with server usage."""
        rows = self.db.conn.execute(
            "SELECT r.prompt_tokens, p.text, p.messages FROM requests r JOIN prompts p "
            "ON p.run_id = r.run_id AND p.prompt_id = r.prompt_id "
            "WHERE r.run_id = ? AND r.warmup = 0 AND r.status = 'ok' "
            "AND r.token_source = 'usage' AND r.prompt_tokens > 0 "
            "AND (p.text IS NOT NULL OR p.messages IS NOT NULL) ORDER BY r.idx LIMIT ?",
            [run_id, limit],
        ).fetchall()  # a trace row's text is built per request and not kept: nothing to count
        out = []
        for n, text, messages in rows:
            if text is None:
                text = "\n".join(str(m.get("content", "")) for m in json.loads(messages or "[]"))
            out.append((int(n), str(text)))
        return out

    def output_lengths(self, run_id: int) -> tuple[np.ndarray, int]:
        """Mean output tokens per prompt (in first-sent order) of a run's successful measured
        requests, and how many of those outputs stopped at max_tokens."""
        rows = self.db.conn.execute(
            "SELECT prompt_id, avg(completion_tokens), min(idx), "
            "sum(finish_reason = 'length') FROM requests WHERE run_id = ? AND warmup = 0 "
            "AND status = 'ok' AND completion_tokens IS NOT NULL GROUP BY prompt_id ORDER BY 3",
            [run_id],
        ).fetchall()
        lengths = np.array([float(r[1]) for r in rows], dtype=np.float64)
        return lengths, int(sum(r[3] or 0 for r in rows))

    # -- inter-token gaps -----------------------------------------------------------------------
    def streamed_requests(self, run_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(idx, gap count, sent_ns) of the successful measured requests that have stored gaps
        (two or more timed token chunks), by idx: what :meth:`gaps_of` yields."""
        rows = self.db.conn.execute(
            "SELECT r.idx, length(c.gaps) / c.width, r.sent_ns FROM requests r "
            "JOIN chunks c USING (run_id, idx) WHERE r.run_id = ? AND r.warmup = 0 "
            "AND r.status = 'ok' ORDER BY r.idx",
            [run_id],
        ).fetchall()
        return (
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.float64),
        )

    def gaps_of(self, run_id: int, idxs: Sequence[int]) -> Iterator[np.ndarray]:
        """The inter-token gaps (ns) of each of these requests, by idx."""
        cursor = self.db.conn.execute(
            "SELECT width, gaps FROM chunks WHERE run_id = ? "
            "AND idx IN (SELECT value FROM json_each(?)) ORDER BY idx",
            [run_id, json.dumps([int(i) for i in idxs])],
        )
        for width, blob in cursor:
            yield decode_gaps(width, blob)

    # -- the HTML report ------------------------------------------------------------------------
    def has_table(self, name: str) -> bool:
        """Whether the database has this table (a file written by an older perfbench may not)."""
        return name in self.db.table_names()

    def answer_page(self, run_id: int, limit: int, chars: int) -> list[AnswerLine]:
        """The first ``limit`` measured requests with the first ``chars`` characters of their
        answer, the gold answer when the prompt has one, and their grades."""
        has_prompts = self.has_table("prompts")
        gold = "p.answer" if has_prompts else "NULL"
        join = (
            "LEFT JOIN prompts p ON p.run_id = r.run_id AND p.prompt_id = r.prompt_id"
            if has_prompts
            else ""
        )
        rows = self.db.conn.execute(
            "SELECT r.idx, r.status, r.http_status, r.error, r.ttft_ms, r.e2e_ms, "
            "r.prompt_tokens, r.completion_tokens, r.reasoning_tokens, "
            f"substr(r.output_text, 1, ?), length(r.output_text), {gold} FROM requests r {join} "
            "WHERE r.run_id = ? AND r.warmup = 0 ORDER BY r.idx LIMIT ?",
            [chars, run_id, limit],
        ).fetchall()
        grades: dict[int, list[tuple[str, str | None, bool]]] = {}
        if rows and self.has_table("grades"):
            try:
                for idx, grader, pred, correct in self.db.conn.execute(
                    "SELECT idx, grader, pred, correct FROM grades WHERE run_id = ? AND idx <= ? "
                    "ORDER BY idx, grader",
                    [run_id, rows[-1][0]],
                ):
                    grades.setdefault(int(idx), []).append((str(grader), pred, bool(correct)))
            except sqlite3.OperationalError:  # an older grades table: leave grades out
                grades = {}
        out = []
        for row in rows:
            line = AnswerLine(*row)
            out.append(replace(line, grades=tuple(grades.get(line.idx, ()))))
        return out

    def server_points(self, run_id: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """A run's server-metrics samples with a time and a value: key -> (t_ns, value)."""
        if not self.has_table("server_metrics"):
            return {}
        return {
            name: (t[keep], v[keep])
            for name, (t, v) in self.server_samples(run_id).items()
            if (keep := ~np.isnan(v)).any()
        }

    def outputs(self, run_id: int) -> list[OutputText]:
        """Every measured request's prompt, status and generated text, by idx (the texts that
        ``perfbench report --determinism`` compares across runs)."""
        rows = self.db.conn.execute(
            "SELECT idx, prompt_id, status, prompt_tokens, completion_tokens, output_text, "
            "reasoning_text FROM requests WHERE run_id = ? AND warmup = 0 ORDER BY idx",
            [run_id],
        ).fetchall()
        return [OutputText(*row) for row in rows]

    # -- grades ---------------------------------------------------------------------------------
    def answers_to_grade(self, run_id: int) -> list[Answer]:
        """The measured requests whose prompt has a gold answer, with that prompt, by idx."""
        rows = self.db.conn.execute(
            """
            SELECT r.idx, r.prompt_id, r.status, r.output_text, r.reasoning_text,
                   r.reasoning_tokens,
                   CASE WHEN r.token_source = 'usage' THEN r.completion_tokens END,
                   p.dataset, p.subset, p.grader, p.answer, p.choices, p.metadata, p.text,
                   p.messages
            FROM requests r JOIN prompts p ON p.run_id = r.run_id AND p.prompt_id = r.prompt_id
            WHERE r.run_id = ? AND r.warmup = 0 AND p.answer IS NOT NULL
            ORDER BY r.idx
            """,
            [run_id],
        ).fetchall()
        return [Answer(*row) for row in rows]

    def prompt_ids(self, run_id: int) -> set[str]:
        rows = self.db.conn.execute("SELECT prompt_id FROM prompts WHERE run_id = ?", [run_id])
        return {r[0] for r in rows}

    def prompt_count(self, run_id: int) -> int:
        row = self.db.conn.execute(
            "SELECT count(*) FROM prompts WHERE run_id = ?", [run_id]
        ).fetchone()
        return int(row[0])

    def put_grades(self, rows: Sequence[dict[str, Any]]) -> None:
        """``grades`` rows; a row for the same (run, request, grader) replaces the earlier one."""
        with self.db.conn:
            self.db.table("grades").insert_all(rows, batch_size=100, replace=True)

    def put_thinking(self, rows: Sequence[dict[str, Any]]) -> None:
        """``thinking`` rows; a row for the same (run, request, method) replaces the earlier one."""
        with self.db.conn:
            self.db.table("thinking").insert_all(rows, batch_size=100, replace=True)

    def grade_totals(self, run_id: int) -> tuple[int, float | None]:
        """(grades stored for the run, their mean correctness; None when there are none)."""
        if not self.has_table("grades"):
            return 0, None
        n, mean = self.db.conn.execute(
            "SELECT count(*), avg(correct) FROM grades WHERE run_id = ?", [run_id]
        ).fetchone()
        return int(n), None if mean is None else float(mean)

    def latest_grades(self, run_id: int) -> list[GradedAnswer]:
        """Each graded request's latest grade, with its prompt, by idx (empty: never graded)."""
        rows = self.db.conn.execute(
            """
            SELECT g.prompt_id, g.sample, g.pred, g.correct, p.subset, p.answer, p.metadata,
                   p.text, p.messages
            FROM grades g JOIN prompts p ON p.run_id = g.run_id AND p.prompt_id = g.prompt_id
            WHERE g.run_id = ? AND g.rowid = (
                SELECT h.rowid FROM grades h WHERE h.run_id = g.run_id AND h.idx = g.idx
                ORDER BY h.graded_at DESC, h.rowid DESC LIMIT 1)
            ORDER BY g.idx
            """,
            [run_id],
        ).fetchall()
        return [GradedAnswer(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Failure:
    """Failed requests of one run that share a status, HTTP status and message."""

    run_id: int
    status: str
    http_status: int | None
    count: int
    error: str | None


@dataclass(frozen=True, slots=True)
class AnswerLine:
    """One request as the HTML report's answer table shows it."""

    idx: int
    status: str
    http_status: int | None
    error: str | None
    ttft_ms: float | None
    e2e_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    answer: str | None  # the first characters only
    answer_chars: int | None
    gold: str | None = None
    grades: tuple[tuple[str, str | None, bool], ...] = ()  # (grader, pred, correct)


@dataclass(frozen=True, slots=True)
class OutputText:
    """One measured request's generated text: reasoning (if any), then the answer."""

    idx: int
    prompt_id: str | None
    status: str
    prompt_tokens: int | None
    completion_tokens: int | None
    output: str | None
    reasoning: str | None

    @property
    def text(self) -> str:
        return (self.reasoning or "") + (self.output or "")


@dataclass(frozen=True, slots=True)
class Answer:
    """A request to grade, with the prompt it answered (JSON columns still encoded)."""

    idx: int
    prompt_id: str
    status: str
    output: str | None
    reasoning: str | None
    reasoning_tokens: int | None
    completion_tokens: int | None  # the server's count only (None: it gave no usage)
    dataset: str | None
    subset: str | None
    grader: str | None
    gold: str
    choices: str | None
    metadata: str | None
    text: str | None
    messages: str | None


@dataclass(frozen=True, slots=True)
class GradedAnswer:
    """A request's latest grade, with its prompt (JSON columns still encoded)."""

    prompt_id: str
    sample: int
    pred: str | None
    correct: int  # 0 or 1, as stored
    subset: str | None
    gold: str | None
    metadata: str | None
    text: str | None
    messages: str | None
