"""`StatusProducer` against the real broker: acknowledged means stored, and it is bounded."""

from __future__ import annotations

import asyncio

from tests.topics import read_all
from webhook_bridge.produce import StatusProducer, Unavailable
from webhook_bridge.settings import BridgeSettings


async def test_beyond_the_in_flight_limit_the_answer_is_overloaded_at_once(
    kafka_bootstrap: str, topic: str
) -> None:
    settings = BridgeSettings(bootstrap_servers=kafka_bootstrap, topic=topic, max_in_flight=1)
    producer = StatusProducer(settings)
    assert await producer.start(asyncio.Event())
    try:
        # The first occupies the only slot until the broker acknowledges it; the
        # others find it taken before they ever reach Kafka.
        results = await asyncio.gather(
            *(producer.publish(b"k", b"v%d" % i, []) for i in range(10)), return_exceptions=True
        )
        assert results[0] is None
        assert all(isinstance(r, Unavailable) and r.cause == "overloaded" for r in results[1:])
        assert producer.in_flight == 0
        await producer.publish(b"k", b"after", [("X-Kirim-Event", b"message.status")])
    finally:
        await producer.stop()
    stored = await read_all(kafka_bootstrap, topic)
    assert [record.value for record in stored] == [b"v0", b"after"]
    assert stored[1].headers == (("X-Kirim-Event", b"message.status"),)


async def test_start_gives_up_quietly_when_stopped_while_kafka_is_unreachable() -> None:
    settings = BridgeSettings(bootstrap_servers="127.0.0.1:1", topic="unused")
    producer = StatusProducer(settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    assert await asyncio.wait_for(producer.start(stop), 10) is False
    assert producer.health.check() == (False, "cannot connect: KafkaConnectionError")
