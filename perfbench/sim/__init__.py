"""A simulated OpenAI-compatible inference engine: a believable vLLM stand-in.

Continuous batching with a cap on running sequences and a KV-token budget, prefill cost, a decode
step that slows as the batch grows, a FIFO waiting queue; vLLM's exact streaming format,
``/v1/models``, ``/health`` and Prometheus ``/metrics``; deterministic under ``--seed``; ``--burst``
to stream as fast as possible; fault injection. From Python::

    from dataclasses import replace
    from perfbench.sim import PRESETS, serve
    serve(replace(PRESETS["fast"], itl_ms=10, seed=1), port=8000)

or in-process with any aiohttp runner: ``build_app(config)``. Modules: ``config`` (flags and
presets), ``engine`` (batching and the timing model), ``wire`` (the pre-encoded vLLM format),
``stream`` (one response's writes), ``faults``, ``tokens`` (what the model "says"), ``request``
(reading a body), ``metrics``, ``timing_log``, ``server`` (routes) and ``process`` (serve and main).
"""

from typing import TYPE_CHECKING, Any

from .config import PRESETS, SimConfig, add_arguments, config_from_args

if TYPE_CHECKING:
    from .process import main, serve
    from .server import build_app

_LAZY = {"main": "process", "serve": "process", "build_app": "server"}


def __getattr__(name: str) -> Any:
    """The server parts import aiohttp: load them on first use, so ``perfbench --help`` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'perfbench.sim' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "PRESETS",
    "SimConfig",
    "add_arguments",
    "build_app",
    "config_from_args",
    "main",
    "serve",
]
