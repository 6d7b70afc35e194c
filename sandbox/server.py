"""`run(settings, stop)`: the sandbox's lifecycle, the same shape as every service's.

SANDBOX_PORT is claimed first (a port in use is a `SettingsError`, exit 2).
The HTTP server and the webhook dispatcher run in one task group, so a
crashed side task stops the sandbox; setting `stop` closes the listener
and drops queued webhooks (the sandbox keeps no state across runs). It is
ready as soon as it listens: `/readyz` checks what `/healthz` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from runtime.asgi import ASGIApp
from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.observe import observability_app
from sandbox.app import SandboxApp
from sandbox.clock import Clock, SystemClock
from sandbox.control import Control
from sandbox.dispatcher import WebhookDispatcher
from sandbox.engine import Engine
from sandbox.metrics import SandboxMetrics
from sandbox.settings import SandboxSettings

log = get_logger("sandbox")

_DROPPED_ON_PURPOSE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Uvicorn logs the fault injector's dropped connections as errors; they are the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED_ON_PURPOSE


@dataclass(frozen=True, slots=True)
class Sandbox:
    """The parts of one running sandbox."""

    app: ASGIApp
    engine: Engine
    dispatcher: WebhookDispatcher
    server: EmbeddedServer


def build(settings: SandboxSettings, clock: Clock | None = None) -> Sandbox:
    clock = clock or SystemClock()
    metrics = SandboxMetrics()
    engine = Engine(settings.config, clock.now(), max_messages=settings.max_messages)
    dispatcher = WebhookDispatcher(
        engine,
        clock,
        metrics,
        concurrency=settings.webhook_concurrency,
        queue_size=settings.webhook_queue_size,
        backlog_max=settings.webhook_backlog_max,
    )
    control = Control(
        engine,
        settings.config,
        on_reset=dispatcher.reset,
        pending_webhooks=dispatcher.pending,
    )
    api = SandboxApp(engine, control, clock, metrics, dispatcher)
    checks = {"webhook_backlog": _backlog_check(dispatcher, settings.webhook_backlog_max)}
    app = observability_app(checks, metrics.registry, fallback=api)
    server = EmbeddedServer(app, settings.host, settings.port, port_variable="SANDBOX_PORT")
    return Sandbox(app, engine, dispatcher, server)


def _backlog_check(dispatcher: WebhookDispatcher, limit: int) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        pending = dispatcher.pending()
        return pending < limit, f"{pending} webhook deliveries pending"

    return check


async def run(
    settings: SandboxSettings, stop: asyncio.Event, sandbox: Sandbox | None = None
) -> None:
    """Serve until `stop` is set."""
    sandbox = sandbox or build(settings)
    sandbox.server.bind()
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(known, _QuietDrops) for known in uvicorn_log.filters):
        uvicorn_log.addFilter(_QuietDrops())
    log.info(
        "sandbox_starting",
        host=settings.host,
        port=settings.port,
        webhooks=bool(settings.config.webhooks.url),
        time_scale=settings.config.time_scale,
    )
    async with asyncio.TaskGroup() as group:
        group.create_task(sandbox.server.serve(stop))
        group.create_task(sandbox.dispatcher.run(stop))
    log.info("sandbox_stopped")
