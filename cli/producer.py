"""Publishing to `broadcast.requests`: an idempotent producer, bounded in time and memory.

Every record is keyed by its campaign id, so all of a campaign's events land on
one partition in order. The producer is idempotent with `acks=all`; the topic is
created when missing (`runtime.topics.ensure_topics`). Records are taken from a
(possibly lazy) stream and at most `window` of them wait for their
acknowledgement at a time: memory is the window, not the campaign, and aiokafka
is never handed thousands of concurrent sends (its wake-ups grow quadratically
with them). Starting (topic check, connect) must finish within the timeout, and
each acknowledgement must come within the timeout of the previous one;
otherwise `PublishUnavailable` says how many records were acknowledged.
Re-publishing the same records is harmless: intake treats them as redeliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

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
# Unacknowledged records at a time: 8 chunks of at most 768 KiB is 6 MiB.
DEFAULT_WINDOW: Final = 8
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

    async def each() -> AsyncIterator[Record]:
        for record in records:
            yield record

    return await publish_stream(settings, each(), total=len(records))


async def publish_stream(
    settings: CliSettings,
    records: AsyncIterable[Record],
    *,
    total: int,
    on_delivery: Callable[[Delivery], None] | None = None,
    window: int = DEFAULT_WINDOW,
) -> list[Delivery]:
    """Write `total` records from `records` in order, at most `window` unacknowledged."""
    deliveries: list[Delivery] = []
    timeout = settings.timeout_seconds
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="broadcast-cli",
        acks="all",
        enable_idempotence=True,
        max_request_size=_MAX_REQUEST_BYTES,
        request_timeout_ms=max(1_000, int(timeout * 1000)),
    )
    pending: deque[asyncio.Future[Any]] = deque()

    async def acknowledge() -> None:
        async with asyncio.timeout(timeout):
            metadata = await pending.popleft()
        delivery = Delivery(metadata.partition, metadata.offset)
        deliveries.append(delivery)
        if on_delivery is not None:
            on_delivery(delivery)

    try:
        async with asyncio.timeout(timeout):
            await ensure_topics(
                settings.bootstrap_servers, {settings.requests_topic: settings.requests_partitions}
            )
            await producer.start()
        async for record in records:
            if len(pending) >= window:
                await acknowledge()
            # send() returns once the record is in the producer's buffer (waiting
            # while that is full); the future resolves on the broker's ack.
            async with asyncio.timeout(timeout):
                future = await producer.send(settings.requests_topic, record.value, key=record.key)
            pending.append(future)
        while pending:
            await acknowledge()
    except KAFKA_ERRORS as error:
        raise PublishUnavailable(
            f"Kafka unavailable at {settings.bootstrap_servers} ({kafka_reason(error)}); "
            f"{len(deliveries)} of {total} records acknowledged",
            acknowledged=len(deliveries),
            total=total,
        ) from error
    finally:
        # Also after a failed start: the client may hold connections.
        with contextlib.suppress(*KAFKA_ERRORS):
            async with asyncio.timeout(_STOP_SECONDS):
                await producer.stop()
    return deliveries
