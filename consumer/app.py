"""`run(settings, stop)`: the consumer process, intake and dispatch in one task group.

Start, in this order, so that configuration errors come before any client opens:
claim CONSUMER_METRICS_PORT, check DISPATCH_SENDERS against the Kirim accounts
list, then serve `/metrics`, `/healthz` and `/readyz` at once (`/readyz` says
`starting` until the rest is up) while the start goes on: apply migrations,
create the topics when missing, open the database pool, then run side by side
(a crash of any one stops the process):
- intake (`broadcast.requests` -> ledger), unless `INTAKE_ENABLED=false`;
- the dispatcher (ledger -> Kirim), unless `DISPATCH_ENABLED=false`.
Stop (`stop` set): each part stops taking work, drains within its grace period,
commits, and resources close in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx

from consumer.dispatch.dispatcher import Dispatcher
from consumer.intake.service import Intake, intake_service
from consumer.senders import check_senders
from consumer.settings import ConsumerSettings
from runtime.db import create_pool
from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.migrate import migrate_url
from runtime.observe import Health, Startup, observability_app
from runtime.topics import ensure_topics

log = get_logger(__name__)


async def run(
    settings: ConsumerSettings,
    stop: asyncio.Event,
    *,
    accounts_transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Run until `stop` is set; in a drain mode (`INTAKE_UNTIL_IDLE`, `INTAKE_MAX_EVENTS`)
    the process also stops once intake has drained. A `SettingsError` (port in use,
    unknown sender) is raised before any Kafka or PostgreSQL client exists."""
    startup = Startup()
    health = Health(ready={"startup": startup.check})
    server = EmbeddedServer(
        observability_app(health),
        settings.metrics_host,
        settings.metrics_port,
        port_variable="CONSUMER_METRICS_PORT",
    )
    server.bind()
    await check_senders(settings, transport=accounts_transport)
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tasks:
        tasks.create_task(server.serve(stop))
        intake, dispatcher = await _start(settings, stack, startup, accounts_transport)
        if intake is not None:
            health.live.update(intake.health_checks())
            tasks.create_task(_intake_then_maybe_stop(intake.loop.run, settings, stop))
        if dispatcher is not None:
            health.live["dispatcher"] = dispatcher.healthy
            tasks.create_task(dispatcher.run(stop))
        startup.done()
    log.info("consumer_stopped")


async def _start(
    settings: ConsumerSettings,
    stack: contextlib.AsyncExitStack,
    startup: Startup,
    accounts_transport: httpx.AsyncBaseTransport | None,
) -> tuple[Intake | None, Dispatcher | None]:
    """Migrations, topics, the pool, and the parts to run (closed by `stack`)."""
    if settings.migrate_on_start:
        startup.step("applying migrations")
        applied = await migrate_url(settings.database_url)
        log.info("migrations_applied", versions=applied)
    if settings.ensure_topics_on_start:
        startup.step("creating topics")
        await ensure_topics(
            settings.bootstrap_servers,
            {
                settings.requests_topic: settings.requests_partitions,
                settings.requests_dlq_topic: settings.dlq_partitions,
            },
        )
    startup.step("connecting")
    pool = await create_pool(settings.database_url, max_size=settings.db_pool_size)
    stack.push_async_callback(pool.close)
    intake = None
    if settings.intake_enabled:
        intake = await intake_service(settings, pool, stack, accounts_transport=accounts_transport)
    dispatcher = None
    if settings.dispatcher_enabled:
        dispatcher = Dispatcher(settings.dispatch, pool, settings.database_url)
    return intake, dispatcher


async def _intake_then_maybe_stop(
    run_intake: Callable[[asyncio.Event], Awaitable[None]],
    settings: ConsumerSettings,
    stop: asyncio.Event,
) -> None:
    await run_intake(stop)
    if settings.intake_until_idle or settings.intake_max_events:
        # Drain-and-exit: intake is done, so is the process.
        stop.set()
