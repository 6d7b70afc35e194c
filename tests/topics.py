"""Read back what a topic holds, from the beginning to its current end, without a group."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

# aiokafka ships no type information: to mypy this is Any.
Record: TypeAlias = ConsumerRecord


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    # No group: subscribing assigns every partition of the topic at start.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str) -> list[Record]:
    """Every record the topic holds now, in partition then offset order."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: dict[TopicPartition, list[Record]] = {tp: [] for tp in partitions}
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, items in batch.items():
                    records[tp].extend(r for r in items if r.offset < ends[tp])
        return [record for tp in partitions for record in records[tp]]
    finally:
        await consumer.stop()
