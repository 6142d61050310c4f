"""Scale-out: one plan, many load generators (worker processes here, Ray actors anywhere).

The runner plans a run once; :func:`open_fleet` starts the workers that send it. Each worker
(:mod:`~perfbench.scale.engine`) times requests on its own clock and ships rows; the
coordinator (:mod:`~perfbench.scale.fleet`) measures each clock's offset, starts every phase at
one instant and writes every row into the one run. docs/scale-out.md is the user's guide.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from perfbench.config import LoadSpec, PerfSpec

if TYPE_CHECKING:
    from perfbench.scale.fleet import Fleet

STREAMS_PER_WORKER = 128
"""In-flight streams per worker under ``--workers auto``. At 256 real-time streams one event
loop is most of the TTFT error left (docs/performance.md, timing truth); 128 per worker keeps
each loop at half that load."""


def spare_cores(*, embedded: bool) -> int:
    """Cores left for workers: those this process may use, less one for the coordinator and
    one for the embedded simulator when it runs here."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1 - int(embedded))


def auto_workers(loads: tuple[LoadSpec, ...], *, embedded: bool, local: bool = True) -> int:
    """``--workers auto``: one worker per :data:`STREAMS_PER_WORKER` streams the heaviest load
    keeps in flight (an uncapped open loop counts its rate in requests/s as streams, ``--rate
    inf`` its number of requests, a trace none), capped at the spare cores here (``local``; over
    Ray the cluster's free CPUs cap it instead); 1 (this process alone) when one loop can drive
    the load."""
    need = 1
    for load in loads:
        streams = load.concurrency
        if streams is None:
            rate = (
                load.rate if load.rate is not None else max(load.ramp_from or 0, load.ramp_to or 0)
            )
            # --rate inf sends everything at once: every request is in flight
            streams = (load.number or STREAMS_PER_WORKER) if math.isinf(rate) else int(rate)
        need = max(need, math.ceil(streams / STREAMS_PER_WORKER))
    return min(need, spare_cores(embedded=embedded)) if local else need


def worker_count(spec: PerfSpec, *, embedded: bool) -> int | None:
    """How many workers ``spec`` asks for: None for this process alone (``--workers 1``, or
    ``auto`` where one loop can drive the load), or for Ray's default of one per node."""
    if spec.workers == "auto":
        if spec.ray is not None:
            return auto_workers(spec.loads, embedded=False, local=False)
        n = auto_workers(spec.loads, embedded=embedded)
        return n if n > 1 else None
    if spec.workers is None or (spec.workers == 1 and spec.ray is None):
        return None
    return int(spec.workers)


async def open_fleet(spec: PerfSpec, count: int | None, clock: Callable[[], int]) -> Fleet:
    """Start ``count`` workers (Ray: None is one per node) and measure their clocks."""
    from perfbench.scale.fleet import Fleet, Handle

    handles: list[Handle]
    if spec.ray is not None:
        from perfbench.scale.ray import ray_workers

        handles = list(await ray_workers(spec.ray, count, fit=spec.workers == "auto"))
    else:
        from perfbench.scale.local import LocalWorker

        assert count is not None
        handles = [LocalWorker(i) for i in range(count)]
    try:
        return await Fleet.start(handles, clock, on_loss=spec.on_worker_loss)
    except BaseException:
        for h in handles:
            await h.close()
        raise
