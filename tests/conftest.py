"""Shared fixtures: real simulated engines on 127.0.0.1, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfbench.sim.embedded import EmbeddedSim

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


class SimPool:
    """One simulator subprocess per distinct flag set, shared by the whole session."""

    def __init__(self) -> None:
        self._sims: dict[tuple[str, ...], EmbeddedSim] = {}

    def __call__(self, *args: str) -> str:
        key = tuple(args)
        if key not in self._sims:
            self._sims[key] = EmbeddedSim(args).__enter__()
        return self._sims[key].url

    def close(self) -> None:
        for sim in self._sims.values():
            sim.__exit__()


@pytest.fixture(scope="session")
def sim() -> Iterator[SimPool]:
    """``sim("--ttft-ms", "100")`` → the base URL of a simulator started with those flags."""
    pool = SimPool()
    yield pool
    pool.close()


def perfbench(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    full_env.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "perfbench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


def start_perfbench(*args: str) -> subprocess.Popen[str]:
    """Start the real CLI in the background (to signal it mid-run); stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "perfbench", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(db: Path, sql: str, at_least: int, timeout: float = 30) -> None:
    """Poll a database another process is creating until ``sql`` counts ``at_least``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if db.exists() and rows(db, sql)[0][0] >= at_least:
                return
        except sqlite3.OperationalError:  # the schema is still being created
            continue
    raise AssertionError(f"{sql} did not reach {at_least} within {timeout}s")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """A process that still exists and is not a zombie waiting to be reaped."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def gone_within(pids: list[int], seconds: float) -> bool:
    """Whether every one of ``pids`` has ended within ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def uid_of(pid: int) -> int | None:
    """The real user id of process ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
    except (OSError, StopIteration, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    return [
        int(name)
        for name in os.listdir("/proc")
        if name.isdigit() and (fields := _stat(int(name))) is not None and fields[1] == str(pid)
    ]
