"""Batched writes of request records, in a thread of their own.

The event loop only puts finished records on a queue (a few hundred nanoseconds). A writer
thread wakes every ``interval`` seconds, turns the records into rows and inserts them in one
transaction, so that SQLite never runs on the loop that times requests, and a crash loses at
most the last interval. ``close()`` drains everything, so a clean stop loses nothing.

Workers (processes or Ray actors) turn their records into rows themselves (:func:`encode`)
and ship them; the writer inserts shipped rows as they are (:meth:`RecordWriter.add_rows`),
so that the one writer does only SQLite's own work: ``benchmarks/ingest.py`` measures it.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfbench.client.record import RequestRecord
from perfbench.errors import StoreError
from perfbench.store.schema import REQUEST_COLUMNS, open_db

CACHE_KIB = 16 * 1024  # the writer's SQLite page cache: bounded, whatever the run's length
TRANSACTION_ROWS = 5000  # rows per transaction when the queue holds more


def encode_gaps(chunk_ns: Iterable[int]) -> tuple[int, bytes] | None:
    """Gaps between successive token chunks, in ns, as little-endian uint32 (int64 if any ≥ 4.29 s)."""
    stamps = np.fromiter(chunk_ns, dtype=np.int64)
    if stamps.size < 2:
        return None
    gaps = np.diff(stamps)
    if gaps.max() < 2**32:
        return 4, gaps.astype("<u4").tobytes()
    return 8, gaps.astype("<i8").tobytes()


def decode_gaps(width: int, blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u4" if width == 4 else "<i8").astype(np.int64)


def _rel(stamp: int | None, t0: int) -> int | None:
    return None if stamp is None else stamp - t0


def to_row(run_id: int, t0: int, r: RequestRecord, worker: int | None = None) -> dict[str, Any]:
    """The ``requests`` row of a record: its stamps relative to the run's ``t0`` (on the clock
    that stamped them), and the figures :meth:`RequestRecord.durations_ms` derives from them."""
    return {
        "run_id": run_id,
        "idx": r.index,
        "warmup": int(r.warmup),
        "prompt_id": r.prompt_id,
        "status": r.status,
        "http_status": r.http_status,
        "error": r.error,
        "intended_ns": r.intended_ns - t0,
        "sent_ns": _rel(r.sent_ns, t0),
        "ttfb_ns": _rel(r.ttfb_ns, t0),
        "first_token_ns": _rel(r.first_token_ns, t0),
        "first_content_ns": _rel(r.first_content_ns, t0),
        "last_token_ns": _rel(r.last_token_ns, t0),
        "end_ns": _rel(r.end_ns, t0),
        **r.durations_ms(),
        "n_chunks": len(r.chunk_ns),
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "token_source": r.token_source,
        "finish_reason": r.finish_reason,
        "streamed": int(r.streamed),
        "response_id": r.response_id,
        "output_text": r.output_text,
        "reasoning_text": r.reasoning_text,
        "dataset": r.dataset,
        "expected_tokens": r.expected_tokens,
        "tool_calls": r.tool_calls,
        "cached_tokens": r.cached_tokens,
        "session": r.session,
        "turn": r.turn,
        "turns": r.turns,
        "worker": worker,
    }


COLUMNS = (*REQUEST_COLUMNS, "worker")
_INSERT_REQUESTS = f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_INSERT_CHUNKS = "INSERT OR REPLACE INTO chunks (run_id, idx, width, gaps) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True)
class Rows:
    """Records encoded for the database: ``requests`` rows in :data:`COLUMNS` order and
    ``chunks`` rows. Plain tuples, so that they pickle fast and insert without rework."""

    requests: list[tuple[Any, ...]]
    chunks: list[tuple[int, int, int, bytes]]
    final: int = 0  # rows that end a request (the rest are in_flight placeholders)

    def __len__(self) -> int:
        return len(self.requests)


def encode(
    records: Iterable[RequestRecord],
    run_id: int,
    t0: int,
    *,
    worker: int | None = None,
    count: Callable[[str], int] | None = None,
) -> Rows:
    """The rows of ``records``; ``t0`` is the run's start on the clock that stamped them, and
    ``count`` the local tokenizer that counts outputs the server gave no usage for."""
    requests, chunks = [], []
    placeholders = 0
    for r in records:
        placeholders += r.status == "in_flight"
        if count is not None:
            r = r.recounted(count)
        row = to_row(run_id, t0, r, worker)
        requests.append(tuple(row[c] for c in COLUMNS))
        encoded = encode_gaps(r.chunk_ns) if r.streamed else None
        if encoded is not None:
            chunks.append((run_id, r.index, encoded[0], encoded[1]))
    return Rows(requests, chunks, len(requests) - placeholders)


#: rows per INSERT statement. ``executemany`` enters SQLite once per row, releasing and
#: re-taking the GIL each time, and beside a busy event loop each re-take waits for it: it
#: inserted about 1,500 rows/s there against 200,000/s alone. One statement of 200 rows takes
#: the GIL once for all of them (about 28,000 rows/s beside the loop; these three figures were
#: measured by hand while diagnosing; benchmarks/million.py shows the effect on a whole run).
ROWS_PER_STATEMENT = 200


#: the most ``?`` one statement may hold (SQLite's default limit; 999 before 3.32)
_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def _insert(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """``sql`` (an INSERT with one ``VALUES (?, …)``) for every row, many rows a statement."""
    if not rows:
        return
    head, values = sql.rsplit(" VALUES ", 1)
    per = max(1, min(ROWS_PER_STATEMENT, _MAX_VARIABLES // len(rows[0])))
    full = f"{head} VALUES {', '.join([values] * per)}"
    whole = len(rows) - len(rows) % per
    for at in range(0, whole, per):
        conn.execute(full, [v for row in rows[at : at + per] for v in row])
    if whole < len(rows):
        rest = rows[whole:]
        conn.execute(
            f"{head} VALUES {', '.join([values] * len(rest))}", [v for r in rest for v in r]
        )


def insert_rows(conn: Any, rows: Rows) -> None:
    """Encoded rows into ``requests`` and ``chunks`` (the caller holds the transaction)."""
    _insert(conn, _INSERT_REQUESTS, rows.requests)
    _insert(conn, _INSERT_CHUNKS, rows.chunks)


class RecordWriter:
    """Writes one run's records from a background thread; ``add`` is safe on the event loop."""

    def __init__(
        self,
        path: Path,
        run_id: int,
        t0_ns: int,
        interval: float = 0.5,
        count: Callable[[str], int] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.path = path
        self.count = count  # the local tokenizer: counts outputs the server gave no usage for
        self.run_id = run_id
        self.t0_ns = t0_ns
        self.interval = interval
        self.written = 0
        self.error: BaseException | None = None
        self.on_error = on_error  # called from the writer thread when a write fails
        self._queue: queue.SimpleQueue[RequestRecord | Rows] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="perfbench-writer", daemon=True)

    def start(self) -> RecordWriter:
        self._thread.start()
        return self

    def add(self, record: RequestRecord) -> None:
        self._queue.put(record)

    def backlog(self) -> int:
        """Items queued and not yet written (records, or shipments of a worker's rows)."""
        return self._queue.qsize()

    def add_for(self, worker: int, records: list[RequestRecord]) -> None:
        """Records made here on a worker's behalf (stamps on this clock), naming that worker."""
        self._queue.put(encode(records, self.run_id, self.t0_ns, worker=worker))

    def add_rows(self, rows: Rows) -> None:
        """Rows a worker encoded (its stamps already on the run's timeline); any thread."""
        self._queue.put(rows)

    def close(self) -> int:
        """Flush what is queued, stop the thread; returns the number of rows written. Raises
        StoreError, in one line, when a write failed (a full disk, a file it may not write)."""
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            text = str(self.error).strip().splitlines()
            why = text[0] if text else type(self.error).__name__
            raise StoreError(
                f"cannot write to {self.path} ({why}); the {self.written} rows written before "
                "are kept: free some space, or fix the file's permissions"
            ) from self.error
        return self.written

    def _main(self) -> None:
        try:
            db = open_db(str(self.path), create=True)
            # the B-trees' inner pages stay in memory; larger caches measured slower
            # (benchmarks/scale_out.py --part 2)
            db.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            try:
                while not self._stop.wait(self.interval):
                    self._flush(db)
                self._flush(db)
            finally:
                db.close()
        except BaseException as exc:  # surfaced by close(); the run must not die silently
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)

    def _flush(self, db: Any) -> None:
        """Write everything queued, in transactions of about :data:`TRANSACTION_ROWS` rows (one
        huge transaction would hold its pages in the WAL and the cache until the end)."""
        get = self._queue.get_nowait
        while True:
            records: list[RequestRecord] = []
            shipped: list[Rows] = []
            size = 0
            try:
                while size < TRANSACTION_ROWS:
                    item = get()
                    if isinstance(item, Rows):
                        shipped.append(item)
                        size += len(item)
                    else:
                        records.append(item)
                        size += 1
            except queue.Empty:
                pass
            if records:
                # a request that started and ended within one flush needs no placeholder row:
                # at thousands of requests/s this halves what the writer inserts
                ended = {r.index for r in records if r.status != "in_flight"}
                records = [r for r in records if r.status != "in_flight" or r.index not in ended]
                shipped.append(encode(records, self.run_id, self.t0_ns, count=self.count))
            if not shipped:
                return
            conn = db.conn
            with conn:
                for rows in shipped:
                    insert_rows(conn, rows)
            self.written += sum(rows.final for rows in shipped)
