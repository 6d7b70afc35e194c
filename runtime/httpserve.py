"""Serve an ASGI app with uvicorn inside a service's task group.

Uvicorn's own signal handlers are disabled: the service's stop event owns
shutdown, and `serve()` returns once the server has closed its sockets.

`bind()` opens the listening socket on its own, so a service can claim its port
before it opens any Kafka or PostgreSQL client: a port in use is then a
`SettingsError` naming the port's variable, raised before anything needs closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any, Final

import uvicorn

from runtime.env import SettingsError

_BACKLOG: Final = 2048  # uvicorn's default


class _ServerWithoutSignals(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would swap the process's handlers and re-raise the signal after
        # shutdown; the service's own stop event already owns SIGTERM/SIGINT.
        yield


def listen(host: str, port: int, port_variable: str) -> socket.socket:
    """A listening TCP socket on `host:port`; why not as a `SettingsError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart may bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # listen() now, not when uvicorn starts: on Linux a second bind of a port that
        # is bound but not yet listening succeeds, and only listen() would fail.
        sock.listen(_BACKLOG)
    except OverflowError:
        sock.close()
        raise SettingsError(f"{port_variable} must be a port (0-65535), got {port}") from None
    except OSError as error:
        sock.close()
        reason = {
            errno.EADDRINUSE: "is already in use",
            errno.EACCES: "needs privileges to bind",
            errno.EADDRNOTAVAIL: "is not an address of this machine",
        }.get(error.errno or 0, f"cannot be bound ({error.strerror})")
        raise SettingsError(f"{port_variable}: {host}:{port} {reason}") from None
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class EmbeddedServer:
    """uvicorn on `host:port`; `port_variable` names the port in configuration errors."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        port_variable: str = "port",
        log_level: str = "warning",
    ) -> None:
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
        self._host = host
        self._port = port
        self._port_variable = port_variable
        self._socket: socket.socket | None = None

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def bind(self) -> None:
        """Claim the port now (connections wait in the backlog until `serve`).

        Raises `SettingsError` when it cannot be had. Idempotent."""
        if self._socket is None:
            self._socket = listen(self._host, self._port, self._port_variable)

    async def serve(self, stop: asyncio.Event) -> None:
        self.bind()
        assert self._socket is not None
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            self._server.should_exit = True
            await serving
        finally:
            stopping.cancel()
            if not serving.done():  # cancelled from outside: a crash elsewhere
                serving.cancel()
            # uvicorn closes the socket on a normal shutdown; this covers the others.
            self._socket.close()

    def bound_port(self) -> int:
        if self._socket is None or self._socket.fileno() < 0:
            raise RuntimeError("server is not listening yet")
        name: tuple[str, int] = self._socket.getsockname()
        return int(name[1])
