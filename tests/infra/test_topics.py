"""Topics are created when missing, concurrently and idempotently, with their configs."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from runtime.topics import REPLAYABLE, ensure_topics


async def test_topics_are_created_once_with_their_configs(kafka_bootstrap: str) -> None:
    name = f"status-{uuid.uuid4().hex[:8]}"
    await asyncio.gather(
        *(ensure_topics(kafka_bootstrap, {name: 3}, configs={name: REPLAYABLE}) for _ in range(3))
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        entries = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
        partitions = (await admin.describe_topics([name]))[0]["partitions"]
    finally:
        await admin.close()
    # A rebuild replays the status topic from the start: nothing may age out or compact.
    assert entries["retention.ms"] == "-1"
    assert entries["cleanup.policy"] == "delete"
    assert len(partitions) == 3
