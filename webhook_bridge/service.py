"""`run(settings, stop)`: the bridge's lifecycle.

Order: connect the producer (retrying while Kafka is down), make sure the
topic exists, then serve HTTP. On `stop`: uvicorn stops accepting, lets
in-flight requests finish (each waits for its acknowledgement, within the
grace period), then the producer flushes and closes. Nothing acknowledged
over HTTP is left in a buffer.
"""

from __future__ import annotations

import asyncio
import contextlib

from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.observe import observability_app
from runtime.topics import REPLAYABLE, ensure_topics
from webhook_bridge.app import bridge_app
from webhook_bridge.produce import StatusProducer
from webhook_bridge.settings import BridgeSettings

log = get_logger(__name__)


async def run(settings: BridgeSettings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; returns after the producer has flushed."""
    async with contextlib.AsyncExitStack() as resources:
        producer = StatusProducer(settings)
        if not await producer.start(stop):
            return
        resources.push_async_callback(producer.stop)
        await ensure_topics(
            settings.bootstrap_servers,
            {settings.topic: settings.topic_partitions},
            configs={settings.topic: REPLAYABLE},
        )
        app = observability_app(
            {"kafka": producer.health.check}, fallback=bridge_app(settings, producer)
        )
        server = EmbeddedServer(app, settings.host, settings.port)
        log.info("bridge_serving", host=settings.host, port=settings.port, path=settings.path)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(producer.probe(stop))
            tasks.create_task(server.serve(stop))
        log.info("bridge_stopped")
