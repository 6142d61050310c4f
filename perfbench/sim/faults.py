"""Fault injection: which request goes wrong, how, and at which token.

Each fault is an independent draw per request from the request's own seeded generator, so a
given ``--seed`` and request order always break the same requests in the same places. Faults that
refuse the request (429, ``--error-status``) happen before anything is streamed; the others happen
inside a 200 stream:

* **disconnect**: after ``at`` tokens the transport is aborted (no final chunk, no ``[DONE]``).
* **malformed**: an event of invalid JSON is sent just before token ``at`` (the token still comes).
* **stall**: token ``at`` comes ``stall_ms`` late; the rest follows at the normal pace.
* **error event**: after ``at`` tokens an ``{"error": …}`` event and ``[DONE]`` end the stream.

``at`` is in the middle half of the output (for disconnect and error event: at least one token
has been sent, and at least one is still missing, when the output has two or more tokens).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .config import SimConfig

NO_STEP = -1


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong with one request. ``NO_STEP`` (-1) means that fault does not happen."""

    status: int = 0  # an HTTP error status to answer with instead of generating; 0 = none
    disconnect_at: int = NO_STEP
    malformed_at: int = NO_STEP
    stall_at: int = NO_STEP
    error_event_at: int = NO_STEP

    @property
    def name(self) -> str | None:
        """A short label for logs: the first fault that applies, or None."""
        if self.status:
            return f"status_{self.status}"
        for label, at in (
            ("disconnect", self.disconnect_at),
            ("error_event", self.error_event_at),
            ("malformed", self.malformed_at),
            ("stall", self.stall_at),
        ):
            if at != NO_STEP:
                return label
        return None


NO_FAULTS = FaultPlan()


def draw_faults(config: SimConfig, rng: random.Random, steps: int) -> FaultPlan:
    """Draw one request's faults; ``steps`` is its number of decode steps (tokens per choice)."""
    c = config
    if not (
        c.rate_limit_rate
        or c.error_rate
        or c.disconnect_rate
        or c.malformed_rate
        or c.stall_rate
        or c.error_event_rate
    ):
        return NO_FAULTS
    # Always draw every number, so that turning one fault on does not reshuffle the others.
    draws = [rng.random() for _ in range(6)]
    where = [_middle(rng, steps) for _ in range(4)]
    if draws[0] < c.rate_limit_rate:
        return FaultPlan(status=429)
    if draws[1] < c.error_rate:
        return FaultPlan(status=c.error_status)
    return FaultPlan(
        disconnect_at=where[0] if draws[2] < c.disconnect_rate else NO_STEP,
        malformed_at=where[1] if draws[3] < c.malformed_rate else NO_STEP,
        stall_at=where[2] if draws[4] < c.stall_rate else NO_STEP,
        error_event_at=where[3] if draws[5] < c.error_event_rate else NO_STEP,
    )


def _middle(rng: random.Random, steps: int) -> int:
    """A step in the middle half of the output, >= 1 when there are two or more steps."""
    if steps <= 1:
        return 0
    low = max(1, steps // 4)
    high = max(low, min(steps - 1, (3 * steps) // 4))
    return rng.randint(low, high)
