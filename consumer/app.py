"""`run(settings, stop)`: the consumer process, intake and dispatch in one task group.

Start: apply migrations, create the topics when missing, open the database pool,
then run side by side (a crash of any one stops the process):
- intake (`broadcast.requests` -> ledger), unless `INTAKE_ENABLED=false`;
- the dispatcher (ledger -> Kirim), unless `DISPATCH_ENABLED=false`;
- `/metrics` and `/healthz` on CONSUMER_METRICS_PORT.
Stop (`stop` set): each part stops taking work, drains within its grace period,
commits, and resources close in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx

from consumer.dispatch.dispatcher import Dispatcher
from consumer.intake.service import intake_service
from consumer.settings import ConsumerSettings
from runtime.db import create_pool
from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.migrate import migrate_url
from runtime.observe import HealthCheck, observability_app
from runtime.topics import ensure_topics

log = get_logger(__name__)


async def run(
    settings: ConsumerSettings,
    stop: asyncio.Event,
    *,
    accounts_transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Run until `stop` is set; in a drain mode (`INTAKE_UNTIL_IDLE`, `INTAKE_MAX_EVENTS`)
    the process also stops once intake has drained."""
    if settings.migrate_on_start:
        applied = await migrate_url(settings.database_url)
        log.info("migrations_applied", versions=applied)
    if settings.ensure_topics_on_start:
        await ensure_topics(
            settings.bootstrap_servers,
            {
                settings.requests_topic: settings.requests_partitions,
                settings.requests_dlq_topic: settings.dlq_partitions,
            },
        )
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_size)
        stack.push_async_callback(pool.close)
        checks: dict[str, HealthCheck] = {}
        intake = None
        if settings.intake_enabled:
            intake = await intake_service(
                settings, pool, stack, accounts_transport=accounts_transport
            )
            checks.update(intake.health_checks())
        dispatcher = None
        if settings.dispatcher_enabled:
            dispatcher = Dispatcher(settings.dispatch, pool, settings.database_url)
            checks["dispatcher"] = dispatcher.healthy
        server = EmbeddedServer(
            observability_app(checks), settings.metrics_host, settings.metrics_port
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve(stop))
            if intake is not None:
                tasks.create_task(_intake_then_maybe_stop(intake.loop.run, settings, stop))
            if dispatcher is not None:
                tasks.create_task(dispatcher.run(stop))
        log.info("consumer_stopped")


async def _intake_then_maybe_stop(
    run_intake: Callable[[asyncio.Event], Awaitable[None]],
    settings: ConsumerSettings,
    stop: asyncio.Event,
) -> None:
    await run_intake(stop)
    if settings.intake_until_idle or settings.intake_max_events:
        # Drain-and-exit: intake is done, so is the process.
        stop.set()
