"""Workers as processes on this machine, each driven over a pipe.

A worker process ignores SIGINT: a Ctrl-C at the terminal reaches the whole process group,
and it is the coordinator that stops the run, in order, so that every request in flight is
recorded. When the coordinator's end of the pipe closes (the coordinator died), the worker
stops its requests and exits, so that no load outlives the run that planned it.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import signal
import threading
from collections.abc import Callable
from typing import Any

from perfbench.execute import tell
from perfbench.scale.engine import Drained, Engine

SHIP_INTERVAL = 0.25  # seconds between a worker's shipments of rows


def worker_main(conn: Any, index: int, interval: float = SHIP_INTERVAL) -> None:
    """The worker process: answer the coordinator's calls, ship drained rows every interval."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = Engine(index)
    lock = threading.Lock()
    quit_ = threading.Event()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    def ship() -> None:
        while not quit_.wait(interval):
            drained = engine.drain()
            if drained.rows or drained.started or drained.done is not None:
                try:
                    send(("drained", drained))
                except OSError:  # the coordinator is gone
                    return

    shipper = threading.Thread(target=ship, name="perfbench-ship", daemon=True)
    shipper.start()
    try:
        while True:
            try:
                kind, call_id, method, args = conn.recv()
            except (EOFError, OSError):
                break  # the coordinator is gone: stop sending
            if kind == "exit":
                break
            try:
                send(("reply", call_id, True, getattr(engine, method)(*args)))
            except Exception as exc:  # noqa: BLE001 - reported to the coordinator, which names it
                send(("reply", call_id, False, failure(exc)))
    finally:
        engine.stop()
        quit_.set()
        shipper.join()
        engine.shutdown()


class LocalWorker:
    """The coordinator's handle on one worker process."""

    kind = "process"

    def __init__(self, index: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork: the parent has threads and a loop
        self.index = index
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker_main, args=(child, index), name=f"perfbench-worker-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: threading.Thread | None = None
        self.lost: str | None = None
        self.closing = False

    def pump(
        self,
        loop: asyncio.AbstractEventLoop,
        on_drained: Callable[[int, Drained], None],
        on_lost: Callable[[int, str], None],
    ) -> None:
        """Deliver this worker's shipments to ``on_drained`` (from a reader thread) and its
        death to ``on_lost`` (on the loop)."""
        self._loop = loop

        def read() -> None:
            while True:
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):
                    break
                if message[0] == "drained":
                    on_drained(self.index, message[1])
                else:
                    _, call_id, ok, value = message
                    tell(loop, self._settle, call_id, ok, value)
            self.process.join(timeout=2)
            reason = f"its process ended (exit code {self.process.exitcode})"
            tell(loop, self._gone, reason, on_lost)

        self._reader = threading.Thread(
            target=read, name=f"perfbench-read-{self.index}", daemon=True
        )
        self._reader.start()

    async def call(self, method: str, *args: Any) -> Any:
        if self.lost is not None:
            raise WorkerLost(self.lost)
        assert self._loop is not None, "pump() comes first"
        call_id = next(self._ids)
        future = self._pending[call_id] = self._loop.create_future()
        try:
            with self._send_lock:
                self._conn.send(("call", call_id, method, args))
        except OSError as exc:
            self._pending.pop(call_id, None)
            raise WorkerLost(f"its pipe is closed ({exc})") from None
        return await future

    def describe_self(self) -> dict[str, Any]:
        return {"kind": self.kind, "pid": self.process.pid}

    def _settle(self, call_id: int, ok: bool, value: Any) -> None:
        future = self._pending.pop(call_id, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(WorkerFailed(*value))

    def _gone(self, reason: str, on_lost: Callable[[int, str], None]) -> None:
        if self.lost is not None:
            return
        self.lost = "closed" if self.closing else reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerLost(reason))
        self._pending.clear()
        if not self.closing:
            on_lost(self.index, reason)

    async def close(self) -> None:
        """Ask the worker to exit; kill it (by its pid) if it does not within a few seconds."""
        self.closing = True
        if self.process.is_alive():
            try:
                with self._send_lock:
                    self._conn.send(("exit", None, None, None))
            except OSError:
                pass
        await asyncio.to_thread(self.process.join, 5)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, 5)
        if self._reader is not None:  # it sees the pipe close, and ends
            await asyncio.to_thread(self._reader.join, 5)
        self.lost = self.lost or "closed"
        self._conn.close()


class WorkerLost(Exception):
    """The worker is gone (its process died, or its Ray actor or node)."""


class WorkerFailed(Exception):
    """The worker answered a call with an error: its one-line message and exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def failure(exc: BaseException) -> tuple[str, int]:
    """A worker's exception as (one line, exit code), to cross a process boundary."""
    from perfbench.errors import PerfbenchError

    if isinstance(exc, PerfbenchError):
        return str(exc), exc.exit_code
    return f"{type(exc).__name__}: {exc}", 1
