"""`run(settings, stop)`: the bridge's lifecycle.

Order: claim the HTTP port (a port in use fails here, before any Kafka client
exists), serve at once, and connect the producer in the background, retrying
while Kafka is down; once it is connected and the topic exists the bridge is
ready. Until then `/healthz` answers 200 (the process is alive), `/readyz` 503
with the reason, and the webhook path 503 to anything it would have to store,
so Kirim retries: nothing is acknowledged that is not in Kafka. On `stop`:
uvicorn stops accepting, lets in-flight requests finish (each waits for its
acknowledgement, within the grace period), then the producer flushes and
closes. Nothing acknowledged over HTTP is left in a buffer.
"""

from __future__ import annotations

import asyncio
import contextlib

from runtime.httpserve import EmbeddedServer
from runtime.logs import get_logger
from runtime.observe import Health, Startup, observability_app
from runtime.topics import REPLAYABLE, ensure_topics
from webhook_bridge.app import bridge_app
from webhook_bridge.produce import StatusProducer
from webhook_bridge.settings import BridgeSettings

log = get_logger(__name__)


async def run(settings: BridgeSettings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; returns after the producer has flushed."""
    startup = Startup("connecting to Kafka")
    # No Kafka client exists before `producer.start()`, so a failed bind leaves nothing open.
    producer = StatusProducer(settings)
    health = Health(ready={"startup": startup.check, "kafka": producer.health.check})
    app = observability_app(
        health, fallback=bridge_app(settings, producer, accepting=lambda: startup.is_done)
    )
    server = EmbeddedServer(app, settings.host, settings.port, port_variable="WEBHOOK_BRIDGE_PORT")
    server.bind()
    log.info("bridge_serving", host=settings.host, port=settings.port, path=settings.path)
    async with contextlib.AsyncExitStack() as resources, asyncio.TaskGroup() as tasks:
        # Closed after the task group, so after the server has drained its requests.
        resources.push_async_callback(producer.stop)
        tasks.create_task(server.serve(stop))
        if await producer.start(stop):
            startup.step("creating the topic")
            await ensure_topics(
                settings.bootstrap_servers,
                {settings.topic: settings.topic_partitions},
                configs={settings.topic: REPLAYABLE},
            )
            startup.done()
            log.info("bridge_ready", topic=settings.topic)
            tasks.create_task(producer.probe(stop))
    log.info("bridge_stopped")
