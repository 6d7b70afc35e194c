"""Create the topics a service needs when they are missing (brokers may disable auto-creation)."""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from runtime.logs import get_logger

log = get_logger(__name__)


# The status topic is the read model's source of truth: a rebuild replays it from the
# start, so it keeps everything and is never compacted (one message id has several events).
REPLAYABLE: Mapping[str, str] = {"retention.ms": "-1", "cleanup.policy": "delete"}


async def ensure_topics(
    bootstrap_servers: str,
    partitions_by_topic: Mapping[str, int],
    replication_factor: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create missing topics, with `configs[name]` as their topic configuration."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=count,
                replication_factor=replication_factor,
                topic_configs=dict((configs or {}).get(name, {})),
            )
            for name, count in partitions_by_topic.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *_ in response.topic_errors:
                # "Already exists": another instance created it between our list and create.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"cannot create topic {name}")
            log.info("topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()
