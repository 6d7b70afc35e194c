"""`run(settings, stop)`: the projector's lifecycle.

Order: claim PROJECTOR_METRICS_PORT (a port in use fails here, before any
client opens) and serve `/metrics`, `/healthz` and `/readyz` at once (`/readyz`
says what the start is doing until it is done), then the migrations, a database
pool, the status topic (created when missing), the consumer group, and the loop.
On `stop` the current batch finishes, finished offsets are committed and the
consumer leaves the group; when the loop crashes nothing is committed (the
records are folded again after the restart, harmlessly).
"""

from __future__ import annotations

import asyncio
import contextlib

from projector import metrics
from projector.loop import Projector
from projector.settings import ProjectorSettings
from projector.store import StatusStore
from runtime.db import create_pool
from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.migrate import migrate_url
from runtime.observe import Health, Startup, observability_app
from runtime.topics import REPLAYABLE, ensure_topics

log = get_logger(__name__)


async def run(
    settings: ProjectorSettings,
    stop: asyncio.Event,
    *,
    until_idle: bool = False,
    serve_metrics: bool = True,
) -> None:
    """Project until `stop` (or, with `until_idle`, until the group has caught up)."""
    startup = Startup()
    health = Health(ready={"startup": startup.check})
    server = None
    if serve_metrics:
        server = EmbeddedServer(
            observability_app(health),
            settings.metrics_host,
            settings.metrics_port,
            port_variable="PROJECTOR_METRICS_PORT",
        )
        server.bind()
    serving_done = asyncio.Event()
    async with contextlib.AsyncExitStack() as resources, asyncio.TaskGroup() as tasks:
        if server is not None:
            # Stopped when the loop ends, not on `stop`: the last batch is still reported.
            tasks.create_task(server.serve(serving_done))
        try:
            projector = await _start(settings, resources, startup)
            health.live.update(kafka=projector.poll_health, progress=projector.progress_health)
            startup.done()
            log.info("projector_started", topic=settings.topic, group=settings.group_id)
            await projector.run(stop, until_idle=until_idle)
        finally:
            serving_done.set()
        await projector.close(commit=True)
    log.info("projector_stopped")


async def _start(
    settings: ProjectorSettings, resources: contextlib.AsyncExitStack, startup: Startup
) -> Projector:
    # Like every service that uses the database: it may start first on a fresh one.
    startup.step("applying migrations")
    await migrate_url(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    resources.push_async_callback(pool.close)
    startup.step("creating the topic")
    await ensure_topics(
        settings.bootstrap_servers,
        {settings.topic: settings.topic_partitions},
        configs={settings.topic: REPLAYABLE},
    )
    startup.step("joining the consumer group")
    projector = Projector(settings, StatusStore(pool))
    # Runs only when the graceful close in `run` did not (a crash): no commit then.
    resources.push_async_callback(projector.close, commit=False)
    await projector.start()
    metrics.LAST_PROGRESS_AGE.set_function(projector.progress_age)
    return projector
