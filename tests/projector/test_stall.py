"""A consumer that stops receiving (aiokafka issue 1037) is replaced in-process.

The stall is real: the test pauses every partition of the projector's real consumer, so
it keeps polling and receives nothing while records wait on the broker; a short
`stall_seconds` makes the loop notice within seconds. The replacement must resume from
the committed offsets and fold what arrived meanwhile, and the loop must keep running.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from prometheus_client import REGISTRY

from projector.loop import Projector
from projector.store import StatusStore
from tests.conftest import MakeTopic
from tests.projector.conftest import produce, projector_settings
from tests.projector.test_loop import committed, record_of
from tests.projector.updates import update

T = 1_700_000_000


async def stored(pool: asyncpg.Pool, prefix: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM message_statuses WHERE message_id LIKE $1", prefix + "%"
    )
    return count


async def test_a_stalled_consumer_is_replaced_and_consumes_again(
    kafka_bootstrap: str, make_topic: MakeTopic, database_url: str, db_pool: asyncpg.Pool
) -> None:
    topic = await make_topic("status")
    prefix = f"msg_{uuid.uuid4().hex[:8]}_"
    first = [update("sent", T, message_id=f"{prefix}a{i}", wamid=f"wa{i}") for i in range(30)]
    later = [update("sent", T, message_id=f"{prefix}b{i}", wamid=f"wb{i}") for i in range(30)]
    await produce(kafka_bootstrap, topic, [record_of(event) for event in first])

    settings = projector_settings(kafka_bootstrap, database_url, topic, stall_seconds=1.0)
    projector = Projector(settings, StatusStore(db_pool))
    await projector.start()
    restarts_before = (
        REGISTRY.get_sample_value("broadcast_projector_consumer_restarts_total") or 0.0
    )
    stop = asyncio.Event()
    loop = asyncio.create_task(projector.run(stop))
    try:
        async with asyncio.timeout(60):
            while await stored(db_pool, prefix) < 30:
                await asyncio.sleep(0.1)
            stalled = projector.consumer
            stalled.pause(*stalled.assignment())
            await produce(kafka_bootstrap, topic, [record_of(event) for event in later])
            while await stored(db_pool, prefix) < 60:
                assert not loop.done()
                await asyncio.sleep(0.1)
        assert projector.restarts >= 1
        assert projector.consumer is not stalled
        restarts = REGISTRY.get_sample_value("broadcast_projector_consumer_restarts_total")
        assert (restarts or 0.0) - restarts_before == projector.restarts
        assert not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, 30)
        await projector.close(commit=True)
    assert await committed(kafka_bootstrap, settings.group_id, topic) == 60
