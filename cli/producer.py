"""Publishing to `broadcast.requests`: an idempotent producer, bounded in time.

Every record is keyed by its campaign id, so all of a campaign's events land on
one partition in order. The producer is idempotent with `acks=all`; the topic is
created when missing (`runtime.topics.ensure_topics`). The whole publish (topic
check, connect, every acknowledgement) must finish within the timeout, otherwise
`Unavailable` says how many records were acknowledged before it gave up.
Re-publishing the same chunks is harmless: intake treats them as redeliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from cli.database import describe
from cli.errors import Unavailable
from cli.settings import CliSettings
from runtime.topics import ensure_topics
from schemas.requests import MAX_EVENT_BYTES

# Room above the largest event for the record batch's own framing.
_MAX_REQUEST_BYTES: Final = MAX_EVENT_BYTES + 64 * 1024
_STOP_SECONDS: Final = 5.0
KAFKA_ERRORS: Final[tuple[type[BaseException], ...]] = (KafkaError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where one record was written."""

    partition: int
    offset: int


class PublishUnavailable(Unavailable):
    """Kafka did not acknowledge every record in time; `acknowledged` of them were."""

    def __init__(self, message: str, *, acknowledged: int, total: int) -> None:
        super().__init__(message, acknowledged=acknowledged, total=total)
        self.acknowledged = acknowledged


def kafka_reason(error: BaseException) -> str:
    """A short reason for a Kafka failure (aiokafka's own messages list socket tuples)."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, KafkaConnectionError):
        return "no broker reachable"
    return describe(error)


async def publish(settings: CliSettings, records: Sequence[Record]) -> list[Delivery]:
    """Write `records` to the requests topic in order; all acknowledged or `Unavailable`."""
    deliveries: list[Delivery] = []
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="broadcast-cli",
        acks="all",
        enable_idempotence=True,
        max_request_size=_MAX_REQUEST_BYTES,
        request_timeout_ms=max(1_000, int(settings.timeout_seconds * 1000)),
    )
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            await ensure_topics(
                settings.bootstrap_servers, {settings.requests_topic: settings.requests_partitions}
            )
            await producer.start()
            futures = [
                await producer.send(settings.requests_topic, record.value, key=record.key)
                for record in records
            ]
            for future in futures:
                metadata = await future
                deliveries.append(Delivery(metadata.partition, metadata.offset))
    except KAFKA_ERRORS as error:
        raise PublishUnavailable(
            f"Kafka unavailable at {settings.bootstrap_servers} ({kafka_reason(error)}); "
            f"{len(deliveries)} of {len(records)} records acknowledged",
            acknowledged=len(deliveries),
            total=len(records),
        ) from error
    finally:
        # Also after a failed start: the client may hold connections.
        with contextlib.suppress(*KAFKA_ERRORS):
            async with asyncio.timeout(_STOP_SECONDS):
                await producer.stop()
    return deliveries
