"""Serve an ASGI app with uvicorn inside a service's task group.

Uvicorn's own signal handlers are disabled: the service's stop event owns
shutdown, and `serve()` returns once the server has closed its sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn


class _ServerWithoutSignals(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would swap the process's handlers and re-raise the signal after
        # shutdown; the service's own stop event already owns SIGTERM/SIGINT.
        yield


class EmbeddedServer:
    def __init__(self, app: Any, host: str, port: int, *, log_level: str = "warning") -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
            timeout_graceful_shutdown=5,
        )
        self._server = _ServerWithoutSignals(config)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    async def serve(self, stop: asyncio.Event) -> None:
        serving = asyncio.create_task(self._server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self._server.should_exit = True
        await serving
        stopping.cancel()

    def bound_port(self) -> int:
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                name: tuple[str, int] = sock.getsockname()
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    return int(name[1])
        raise RuntimeError("server is not listening yet")
