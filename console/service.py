"""`run(settings, stop)`: the console's lifecycle.

Claim the port first (a port in use fails before anything connects), serve at once
(`/healthz` alive, `/readyz` 503 until PostgreSQL answers), open the database pool
(retrying while PostgreSQL starts), then start the snapshot refresher and the
dead-letter tail. On `stop`: uvicorn stops accepting and finishes in-flight requests
(live streams end), then the background tasks and the pool close.
"""

from __future__ import annotations

import asyncio
import contextlib

from console.app import background, build
from console.settings import ConsoleSettings
from runtime.asgi import ASGIApp, Receive, Scope, Send, respond
from runtime.db import create_pool
from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.observe import Health, Startup, observability_app

log = get_logger(__name__)


class _Deferred:
    """The app once it exists; 503 before (the port is claimed before the pool opens)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            if scope["type"] == "http":
                await respond(send, 503, b"starting: waiting for PostgreSQL\n", b"text/plain")
            return
        await self.app(scope, receive, send)


async def run(settings: ConsoleSettings, stop: asyncio.Event) -> None:
    startup = Startup("connecting to PostgreSQL")
    health = Health(ready={"startup": startup.check})
    deferred = _Deferred()
    server = EmbeddedServer(
        observability_app(health, fallback=deferred),
        settings.host,
        settings.port,
        port_variable="CONSOLE_PORT",
    )
    server.bind()
    log.info("console_listening", url=f"http://{settings.host}:{server.bound_port()}/")
    async with contextlib.AsyncExitStack() as resources, asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve(stop))
        pool = await create_pool(
            settings.database_url, min_size=1, max_size=settings.db_pool_size, connect_timeout=3600
        )
        resources.push_async_callback(pool.close)
        app, console = build(settings, pool, stop)
        await resources.enter_async_context(background(console))
        deferred.app = app
        startup.done()
        log.info("console_ready")
        await serving
    log.info("console_stopped")
