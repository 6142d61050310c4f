"""Running the simulated engine as a process: :func:`serve` and the ``perfbench sim`` entry point.

The runner starts ``python -m perfbench sim --port 0 ...`` and reads one line from stdout to learn
the port: ``perfbench sim listening on http://127.0.0.1:PORT``. Nothing else goes to stdout; logs,
if any, go to stderr. SIGINT and SIGTERM stop the server cleanly (open streams are ended, the
timing log is flushed) and the process exits with 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from .arrival import SimRunner
from .config import SimConfig, add_arguments, config_from_args
from .server import build_app

SHUTDOWN_TIMEOUT_S = 2.0
PARENT_POLL_S = 0.5


def serve(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, parent_pid: int | None = None
) -> None:
    """Serve the simulated engine until SIGINT or SIGTERM (blocking; uses uvloop if installed),
    or until the process ``parent_pid`` is no longer its parent (it died, even by SIGKILL).

    Example::

        from perfbench.sim import PRESETS, serve
        serve(PRESETS["instant"], port=8000)
    """
    _run(_serve(config, host, port, parent_pid))


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop when the parent is gone: its children are re-parented, so getppid() changes."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            return
        await asyncio.sleep(PARENT_POLL_S)


async def _serve(config: SimConfig, host: str, port: int, parent_pid: int | None = None) -> None:
    if config.access_log:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    runner = SimRunner(
        build_app(config),
        access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    # Everything built so far (modules, the token pool) lives as long as the process: freeze it
    # out of the garbage collector's sight, so that full collections under load scan only the
    # per-request objects and stay short.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        print(f"perfbench sim listening on http://{shown}:{bound}", flush=True)
        watch = None if parent_pid is None else asyncio.create_task(_orphaned(parent_pid, stop))
        await stop.wait()
        if watch is not None:
            watch.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen, and whose child to be: the flags of the process, not of the engine."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)"
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        metavar="PID",
        help="stop when process PID is no longer this one's parent (the embedded simulator "
        "does not outlive a perfbench that was killed)",
    )


def build_parser(prog: str = "perfbench sim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a simulated vLLM-compatible inference engine (OpenAI API).",
    )
    add_process_arguments(parser)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``perfbench sim``: parse flags, serve until SIGINT/SIGTERM, return the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(config, ns.host, ns.port, ns.parent_pid)
    except OSError as exc:
        print(
            f"perfbench sim: cannot listen on {ns.host}:{ns.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0
