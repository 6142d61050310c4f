"""Noticing a server that went away mid-run, so that a dead server ends a run honestly.

Without it a closed loop whose server died spins through its whole remaining schedule as
instant connection errors (thousands of rows in half a second) and the run "completes". The
watch counts consecutive requests that failed to connect; at ``threshold`` of them it closes
the gate (no new request starts) and asks the runner to probe the server. A probe that fails
means the server is gone: the run stops (or, with ``--wait-for-server S``, waits up to S
seconds for it, probing every half second, and goes on). Requests never attempted are never
turned into rows of invented errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

GONE_STATUSES = frozenset({"connect"})  # the server did not accept a connection at all
PROBE_INTERVAL = 0.5  # seconds between probes while waiting for the server


def threshold_for(slots: int) -> int:
    """Consecutive connection failures that make the server suspect: 8 (fewer with fewer
    slots), so that a dead server costs a handful of rows. A wrong suspicion costs one probe
    of the model list and a pause of a few milliseconds; the probe decides."""
    return max(1, min(8, slots))


@dataclass
class ServerWatch:
    """Counts consecutive connection failures; holds the gate closed while the server is
    suspect. ``probe()`` returns None when the server answers, else why it does not."""

    threshold: int
    probe: Callable[[], Awaitable[str | None]]
    clock: Callable[[], int]
    wait_s: float = 0.0  # --wait-for-server
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    gone: str | None = None  # why the run stopped, once the server is judged gone
    gaps: list[dict[str, int]] = field(default_factory=list)  # waits that ended with it back
    on_gone: Callable[[str], None] = lambda why: None
    _streak: int = 0
    _checking: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.gate.set()

    def saw(self, status: str) -> None:
        """Every finished request's status, as it is recorded (on the event loop)."""
        if status in GONE_STATUSES:
            self._streak += 1
            if self._streak >= self.threshold and self._checking is None and self.gone is None:
                self.gate.clear()
                self._checking = asyncio.ensure_future(self._check())
        elif status != "cancelled":
            self._streak = 0

    async def _check(self) -> None:
        try:
            why = await self.probe()
            if why is not None and self.wait_s > 0:
                why = await self._wait(why)
            if why is None:
                self._streak = 0
                self.gate.set()
                return
            self.gone = f"the server went away ({why})"
            self.on_gone(self.gone)
        finally:
            self._checking = None

    async def _wait(self, why: str) -> str | None:
        """Probe until the server answers or ``wait_s`` passes; None when it came back."""
        start = self.clock()
        deadline = start + int(self.wait_s * 1e9)
        while self.clock() < deadline:
            await asyncio.sleep(PROBE_INTERVAL)
            again = await self.probe()
            if again is None:
                self.gaps.append({"start_ns": start, "end_ns": self.clock()})
                return None
            why = again
        return f"{why}; it did not come back within --wait-for-server {self.wait_s:g}s"

    def record(self, t0: int) -> dict[str, object]:
        """What the run keeps (``runs.health``): why it stopped, and each wait for the server
        (ns from the run's ``t0``)."""
        out: dict[str, object] = {}
        if self.gone is not None:
            out["stopped"] = self.gone
        if self.gaps:
            out["server_gaps"] = [{k: v - t0 for k, v in gap.items()} for gap in self.gaps]
        return out

    def cancel(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
        self.gate.set()
