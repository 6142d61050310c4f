"""``--timing-log FILE``: the sim's own account of when it wrote each response.

One JSON line per finished request, appended::

    {"id": "chatcmpl-…", "status": 200, "fault": null, "recv_ns": …, "admit_ns": …,
     "first_due_ns": …, "first_token_ns": …, "last_token_ns": …, "end_ns": …, "tokens": 16,
     "late_max_ns": …, "late_mean_ns": …}

All times are ``time.perf_counter_ns()``, which on Linux is CLOCK_MONOTONIC and so comparable with
a client process on the same host. ``recv_ns`` is when the request handler started; ``admit_ns``
when the engine admitted it (later than ``recv_ns`` only if it queued); ``first_due_ns`` when its
first token was due; ``first_token_ns`` / ``last_token_ns`` when the first and last token chunks
were handed to the transport (for a non-streaming request: when they were generated); ``end_ns``
when the response was complete. ``late_max_ns`` / ``late_mean_ns`` are how late the token writes
were against their deadlines (slightly negative when written early, see ``engine.SLACK_NS``). A
client subtracts these from its own figures to tell its own timing error from the sim's.

Lines are buffered in memory and written by a background task every second and at shutdown, in
a worker thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

FLUSH_INTERVAL_S = 1.0


class TimingLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lines: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._encode = msgspec.json.Encoder().encode
        # Fail at startup, not at the first flush, if the file cannot be written.
        with open(self.path, "ab"):
            pass

    def add(self, record: dict[str, Any]) -> None:
        self._lines.append(self._encode(record) + b"\n")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._write(self._take())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            lines = self._take()
            if lines:
                await loop.run_in_executor(None, self._write, lines)

    def _take(self) -> list[bytes]:
        lines, self._lines = self._lines, []
        return lines

    def _write(self, lines: list[bytes]) -> None:
        if lines:
            with open(self.path, "ab") as f:
                f.write(b"".join(lines))
