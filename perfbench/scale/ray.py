"""Workers as Ray actors, spread over a cluster's nodes (``--ray``; ``pip install perfbench[ray]``).

Each actor wraps the same :class:`~perfbench.scale.engine.Engine` a worker process runs, so
requests are sent and timed the same way; the coordinator polls each actor for its rows every
:data:`~perfbench.scale.local.SHIP_INTERVAL` seconds. An actor takes one CPU, and actors are
placed with Ray's SPREAD strategy, so that they land on different nodes where they can. An
actor whose process or node dies is reported lost on the next poll (Ray's ``RayActorError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from perfbench.errors import ConfigError
from perfbench.scale.engine import Drained, Engine
from perfbench.scale.local import SHIP_INTERVAL, WorkerFailed, WorkerLost, failure

START_TIMEOUT = 60.0  # seconds for the actors to be placed and answer
CONNECT_TIMEOUT = 5.0  # seconds for the head's port to accept a connection


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray, which is not installed here: pip install 'perfbench[ray]'"
        ) from None
    return ray


class RayEngine(Engine):
    """The engine as a Ray actor: it also says which node it runs on."""

    def describe(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        return {
            **super().describe(),
            "node": context.get_node_id(),
            "ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        }


class _Connection:
    """This process's connection to the cluster, shut down when its last worker closes."""

    def __init__(self, users: int) -> None:
        self.users = users
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            last = self.users == 0
        if last:
            _ray().shutdown()


async def ray_workers(address: str, count: int | None, *, fit: bool = False) -> list[RayWorker]:
    """Connect to the cluster at ``address`` ("" : $RAY_ADDRESS, else a running local one) and
    place ``count`` actors (None: one per node with a CPU; ``fit``: at most one per free CPU).
    Raises ConfigError, before anything is sent, when the cluster cannot be reached or has too
    few free CPUs."""
    # on this thread, not in a worker thread: ray.init installs its signal handlers here, and
    # the runner installs its own after it (nothing else runs yet while this blocks)
    return _place(address, count, fit)


def _place(address: str, count: int | None, fit: bool) -> list[RayWorker]:
    ray = _ray()
    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    _reachable(target)
    try:
        ray.init(
            address=target,
            logging_level="ERROR",
            log_to_driver=False,
            configure_logging=False,
            include_dashboard=False,
        )
    except Exception as exc:  # noqa: BLE001 - Ray raises several kinds; the user needs one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot reach a Ray cluster at {target} ({reason[:200]}): start one with "
            "`ray start --head`, or check --ray ADDRESS / RAY_ADDRESS"
        ) from None
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
        free = float(ray.available_resources().get("CPU", 0))
        wanted = count if count is not None else max(1, len(nodes))
        if fit:
            wanted = max(1, min(wanted, int(free)))
        if free < 1:
            raise ConfigError(
                f"the Ray cluster at {target} has no free CPU (each worker takes one): "
                "wait for its other work, or add a node"
            )
        if free < wanted:
            raise ConfigError(
                f"the Ray cluster at {target} has {free:g} free CPUs for {wanted} workers (each "
                "takes one): ask for fewer --workers, or add nodes"
            )
        actor = ray.remote(num_cpus=1, max_concurrency=4)(RayEngine)
        connection = _Connection(wanted)
        return [
            RayWorker(i, actor.options(scheduling_strategy="SPREAD").remote(i), connection)
            for i in range(wanted)
        ]
    except BaseException:
        ray.shutdown()
        raise


def _reachable(target: str) -> None:
    """A TCP connection to the head's address (GCS port), within seconds: Ray itself retries
    an address where nothing listens for minutes, logging as it goes."""
    host, sep, port = target.rpartition(":")
    if target == "auto" or "://" in target or not sep or not port.isdigit():
        return  # a running local cluster, or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot reach a Ray cluster at {target} ({reason}): start one with `ray start "
            "--head`, or check --ray ADDRESS / RAY_ADDRESS (the head's host:port)"
        ) from None


class RayWorker:
    """The coordinator's handle on one actor."""

    kind = "ray"

    def __init__(self, index: int, actor: Any, connection: _Connection) -> None:
        self.index = index
        self.actor = actor
        self.lost: str | None = None
        self.closing = False
        self._connection = connection
        self._poll: asyncio.Task[None] | None = None
        self._on_lost: Callable[[int, str], None] | None = None

    def describe_self(self) -> dict[str, Any]:
        return {"kind": self.kind, "actor": self.actor._actor_id.hex()}

    def pump(
        self,
        loop: asyncio.AbstractEventLoop,
        on_drained: Callable[[int, Drained], None],
        on_lost: Callable[[int, str], None],
    ) -> None:
        self._on_lost = on_lost
        self._poll = loop.create_task(self._drain_every(on_drained))

    async def _drain_every(self, on_drained: Callable[[int, Drained], None]) -> None:
        while self.lost is None:
            await asyncio.sleep(SHIP_INTERVAL)
            try:
                drained = await self.call("drain")
            except WorkerLost:
                return
            except WorkerFailed:
                continue
            if drained.rows or drained.started or drained.done is not None:
                on_drained(self.index, drained)

    async def call(self, method: str, *args: Any) -> Any:
        if self.lost is not None:
            raise WorkerLost(self.lost)
        ray = _ray()
        ref = getattr(self.actor, method).remote(*args)
        try:
            if method == "describe":  # the first call: the actor must be placed and started
                return await asyncio.wait_for(ref, START_TIMEOUT)
            return await ref
        except asyncio.TimeoutError:
            raise WorkerFailed(
                f"the Ray actor did not start within {START_TIMEOUT:g}s (no node could place it?)",
                2,
            ) from None
        except ray.exceptions.RayActorError as exc:
            self._gone(f"its Ray actor died ({_first_line(exc)})")
            raise WorkerLost(self.lost or "") from None
        except ray.exceptions.RayTaskError as exc:
            raise WorkerFailed(*failure(exc.cause if exc.cause is not None else exc)) from None

    def _gone(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = "closed" if self.closing else reason
        if not self.closing and self._on_lost is not None:
            self._on_lost(self.index, reason)

    async def close(self) -> None:
        """Stop the actor (by its handle) and release the cluster connection."""
        self.closing = True
        if self._poll is not None:
            self._poll.cancel()
        ray = _ray()
        if self.lost is None:
            with contextlib.suppress(Exception):  # it is being killed anyway
                await asyncio.wait_for(self.actor.shutdown.remote(), 10)
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actor)
        self.lost = self.lost or "closed"
        await asyncio.to_thread(self._connection.release)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
