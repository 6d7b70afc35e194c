"""The real broker behaves as the services rely on: produce, consume, commit, restart."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.kafka import KafkaBroker
from tests.restarts import restart_kafka


async def _consume(bootstrap: str, topic: str, group: str, want: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < want:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
                if batch:
                    await consumer.commit()
    finally:
        await consumer.stop()
    return got


async def test_produce_and_consume_with_an_idempotent_producer(
    kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, f"m{i}".encode(), key=f"k{i % 4}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    got = await _consume(kafka_bootstrap, topic, group_id, 20)
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(20))


async def test_committed_offset_survives_a_consumer_restart(
    kafka_bootstrap: str, make_topic: object, group_id: str
) -> None:
    topic = await make_topic(partitions=1)  # type: ignore[operator]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, f"a{i}".encode())
    first = await _consume(kafka_bootstrap, topic, group_id, 10)
    for i in range(5):
        await producer.send_and_wait(topic, f"b{i}".encode())
    await producer.stop()
    second = await _consume(kafka_bootstrap, topic, group_id, 5)
    assert first == [f"a{i}".encode() for i in range(10)]
    # A restarted member of the same group resumes after the commit: nothing re-read.
    assert second == [f"b{i}".encode() for i in range(5)]

    probe = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await probe.start()
    try:
        assert await probe.committed(TopicPartition(topic, 0)) == 15
    finally:
        await probe.stop()


async def test_clients_recover_from_a_broker_restart(
    kafka: KafkaBroker, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, request_timeout_ms=60_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        await restart_kafka(kafka, crash=True)
        # The same client objects keep working once the broker is back.
        async with asyncio.timeout(90):
            await producer.send_and_wait(topic, b"after")
    finally:
        await producer.stop()
    got = await _consume(kafka_bootstrap, topic, group_id, 2)
    assert sorted(got) == [b"after", b"before"]
