"""The SQLite layout, as named migrations. docs/schema.md documents every column.

Times in ``requests`` are integer nanoseconds from the run's ``t0_ns`` (one monotonic clock),
kept at full precision; the ``*_ms`` columns are derived from them once, when the row is
written, so that ``sqlite3`` users can query latencies directly.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("perfbench")

REQUEST_COLUMNS: dict[str, type] = {
    "run_id": int,
    "idx": int,
    "warmup": int,
    "prompt_id": str,
    "status": str,
    "http_status": int,
    "error": str,
    "intended_ns": int,
    "sent_ns": int,
    "ttfb_ns": int,
    "first_token_ns": int,
    "first_content_ns": int,
    "last_token_ns": int,
    "end_ns": int,
    "schedule_lag_ms": float,
    "ttfb_ms": float,
    "ttft_ms": float,
    "ttfa_ms": float,
    "tpot_ms": float,
    "itl_ms": float,
    "e2e_ms": float,
    "ttft_intended_ms": float,
    "e2e_intended_ms": float,
    "n_chunks": int,
    "prompt_tokens": int,
    "completion_tokens": int,
    "reasoning_tokens": int,
    "token_source": str,
    "finish_reason": str,
    "streamed": int,
    "response_id": str,
    "output_text": str,
    "reasoning_text": str,
    "dataset": str,
    "expected_tokens": int,
    "tool_calls": str,
    "cached_tokens": int,
    "session": int,
    "turn": int,
    "turns": int,
}


@migrations()
def m001_initial(db: Database) -> None:
    db.table("runs").create(
        {
            "id": int,
            "name": str,
            "batch": str,
            "status": str,
            "started_at": str,
            "ended_at": str,
            "t0_ns": int,
            "duration_s": float,
            "endpoint": str,
            "model": str,
            "load": str,
            "client": str,
            "workload": str,
            "server": str,
            "host": str,
            "command": str,
            "scheduled": int,
            "recorded": int,
            "health": str,
        },
        pk="id",
        not_null={"status", "started_at", "t0_ns"},
    )
    db.table("runs").create_index(["name"])
    db.table("requests").create(
        {
            k: v
            for k, v in REQUEST_COLUMNS.items()
            if k
            not in (
                "dataset",
                "expected_tokens",
                "tool_calls",
                "cached_tokens",
                "session",
                "turn",
                "turns",
            )
        },
        pk=("run_id", "idx"),
        not_null={"run_id", "idx", "warmup", "status", "intended_ns"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("requests").create_index(["run_id", "status"])
    db.table("chunks").create(
        {"run_id": int, "idx": int, "width": int, "gaps": bytes},
        pk=("run_id", "idx"),
        not_null={"run_id", "idx", "width", "gaps"},
        foreign_keys=[("run_id", "runs", "id")],
    )


@migrations()
def m002_request_dataset(db: Database) -> None:
    """The dataset each request's prompt came from, for per-dataset breakdowns."""
    db.table("requests").add_column("dataset", str)


@migrations()
def m003_expected_tokens(db: Database) -> None:
    """The exact output length a request asked for (random and trace workloads)."""
    db.table("requests").add_column("expected_tokens", int)


@migrations()
def m004_prompts(db: Database) -> None:
    """Each run's prompts, once per prompt id: what was asked and what a grader needs."""
    db.table("prompts").create(
        {
            "run_id": int,
            "prompt_id": str,
            "dataset": str,
            "subset": str,
            "grader": str,
            "answer": str,
            "choices": str,
            "text": str,
            "messages": str,
            "max_tokens": int,
            "metadata": str,
        },
        pk=("run_id", "prompt_id"),
        not_null={"run_id", "prompt_id"},
        foreign_keys=[("run_id", "runs", "id")],
    )


@migrations()
def m005_grades(db: Database) -> None:
    """Grades of captured answers, and thinking-efficiency figures, keyed so a re-grade replaces."""
    db.table("grades").create(
        {
            "run_id": int,
            "idx": int,
            "grader": str,
            "prompt_id": str,
            "sample": int,
            "pred": str,
            "correct": int,
            "format_ok": int,
            "error": str,
            "graded_at": str,
        },
        pk=("run_id", "idx", "grader"),
        not_null={"run_id", "idx", "grader", "correct", "format_ok"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("thinking").create(
        {
            "run_id": int,
            "idx": int,
            "method": str,
            "source": str,
            "token_source": str,
            "reasoning_tokens": int,
            "first_correct_tokens": int,
            "reflection_tokens": int,
            "efficiency": float,
            "thought_count": int,
            "steps": int,
            "first_correct_step": int,
            "graded_at": str,
        },
        pk=("run_id", "idx", "method"),
        not_null={"run_id", "idx", "method"},
        foreign_keys=[("run_id", "runs", "id")],
    )


@migrations()
def m006_server_metrics(db: Database) -> None:
    """Samples of the server's /metrics during a run: one row per scrape and canonical key."""
    db.table("server_metrics").create(
        {"run_id": int, "t_ns": int, "name": str, "value": float},
        pk=("run_id", "t_ns", "name"),
        not_null={"run_id", "t_ns", "name"},
        foreign_keys=[("run_id", "runs", "id")],
    )


@migrations()
def m007_workers(db: Database) -> None:
    """Scale-out: the worker that sent each request, and each run's workers (their clocks)."""
    db.table("requests").add_column("worker", int)
    db.table("runs").add_column("workers", str)


@migrations()
def m008_owner(db: Database) -> None:
    """The process that writes a running run (host, pid, its start time), so that a reader can
    tell a run whose process was killed from one still going."""
    db.table("runs").add_column("owner", str)


@migrations()
def m009_replicates(db: Database) -> None:
    """``--repeat``: a run's place among the replicates of one load (the first one's id, and
    its number from 1); NULL for a run made once."""
    db.table("runs").add_column("replicate_of", int)
    db.table("runs").add_column("replicate", int)


@migrations()
def m010_resent(db: Database) -> None:
    """``perf --resume``: the rows of requests a resumed run sent again, kept as they were."""
    db.table("resent").create(
        {"run_id": int, "idx": int, "resume": int, "row": str, "gaps": bytes},
        pk=("run_id", "idx", "resume"),
        not_null={"run_id", "idx", "resume", "row"},
        foreign_keys=[("run_id", "runs", "id")],
    )


@migrations()
def m011_source(db: Database) -> None:
    """``perfbench import``: where a run imported from another tool's result file came from,
    and that file's own figures; NULL for a run perfbench made."""
    db.table("runs").add_column("source", str)


@migrations()
def m012_tool_calls(db: Database) -> None:
    """The tool calls an answer made (JSON), beside its text."""
    db.table("requests").add_column("tool_calls", str)


@migrations()
def m013_cached_tokens(db: Database) -> None:
    """The prompt tokens the server served from its prefix cache (its usage says so)."""
    db.table("requests").add_column("cached_tokens", int)


@migrations()
def m014_sessions(db: Database) -> None:
    """A conversation's requests: which session of the run (0, 1, ... in start order), which
    turn of it (1 first), and how many turns its conversation has; NULL for a single-turn run."""
    db.table("requests").add_column("session", int)
    db.table("requests").add_column("turn", int)
    db.table("requests").add_column("turns", int)


def open_db(path: str, *, create: bool) -> Database:
    """Open (and migrate) the database; WAL mode so that readers never block the writer."""
    db = Database(path)
    db.conn.execute("PRAGMA busy_timeout = 10000")
    if create:
        db.enable_wal()
        db.conn.execute("PRAGMA synchronous = NORMAL")
    migrations.apply(db)
    return db
