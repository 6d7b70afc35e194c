"""`run(settings, stop)`: the projector's lifecycle.

Order: a database pool, the status topic (created when missing), the consumer
group, then the loop and the `/metrics` + `/healthz` server side by side. On
`stop` the current batch finishes, finished offsets are committed and the
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
from runtime.observe import observability_app
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
    # Like every service that uses the database: it may start first on a fresh one.
    await migrate_url(settings.database_url)
    async with contextlib.AsyncExitStack() as resources:
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        resources.push_async_callback(pool.close)
        await ensure_topics(
            settings.bootstrap_servers,
            {settings.topic: settings.topic_partitions},
            configs={settings.topic: REPLAYABLE},
        )
        projector = Projector(settings, StatusStore(pool))
        await projector.start()
        # Runs only when the graceful close below did not (a crash): no commit then.
        resources.push_async_callback(projector.close, commit=False)
        metrics.LAST_PROGRESS_AGE.set_function(projector.progress_age)
        log.info("projector_started", topic=settings.topic, group=settings.group_id)

        serving_done = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            if serve_metrics:
                app = observability_app(
                    {"kafka": projector.poll_health, "progress": projector.progress_health}
                )
                server = EmbeddedServer(app, settings.metrics_host, settings.metrics_port)
                tasks.create_task(server.serve(serving_done))
            try:
                await projector.run(stop, until_idle=until_idle)
            finally:
                serving_done.set()
        await projector.close(commit=True)
        log.info("projector_stopped")
