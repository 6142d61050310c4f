"""When a request arrived: stamped where the event loop hands its bytes to the HTTP parser.

A handler starts only when the loop gets to it; with hundreds of requests arriving together
that is tens of milliseconds after the bytes came in, and a simulator that counted TTFT from
the handler's start would be that much slower than it claims. ``SimRunner`` serves the app
through a protocol that notes the arrival time of each read; ``arrival_ns(request)`` gives it
to the handler (or the handler's own start when served by a plain ``AppRunner``, as in tests).

This leans on two aiohttp internals, stable across 3.x: ``web.Server.__call__`` builds the
per-connection ``RequestHandler``, and ``AppRunner._make_server`` builds the ``Server``.
"""

from __future__ import annotations

from time import perf_counter_ns

from aiohttp import web, web_protocol, web_server


class _StampingRequestHandler(web_protocol.RequestHandler):
    arrived_ns = 0

    def data_received(self, data: bytes) -> None:
        self.arrived_ns = perf_counter_ns()
        super().data_received(data)


class _StampingServer(web_server.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _StampingRequestHandler(self, loop=self._loop, **self._kwargs)


class SimRunner(web.AppRunner):
    """An ``AppRunner`` whose connections stamp the arrival of each request."""

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        server.__class__ = _StampingServer
        return server


def arrival_ns(request: web.BaseRequest) -> int:
    stamp: int = getattr(request.protocol, "arrived_ns", 0)
    return stamp or perf_counter_ns()
