"""The latest dead letters of `broadcast.requests.dlq`, read from the topic itself.

The topic is the truth (schemas/deadletter.py: the original key and value bytes, why
in headers), so the console tails it: a consumer without a group, assigned every
partition, starting `keep` records before each end and following new ones, keeps the
newest `keep` records in memory. A page reads that window and never waits for Kafka;
when Kafka cannot be reached the page says so and shows what it had.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from runtime.logs import get_logger
from schemas.deadletter import DeadLetter
from schemas.errors import InvalidEvent

log = get_logger(__name__)

DEFAULT_KEEP: Final = 500
_RETRY_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    written_at: datetime
    letter: DeadLetter | None
    # Why the envelope could not be read (a record this service did not write).
    problem: str | None

    @property
    def reason(self) -> str:
        return self.letter.reason if self.letter else "unreadable_envelope"


def record_of(
    partition: int,
    offset: int,
    *,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int,
    headers: list[tuple[str, bytes]],
) -> DeadLetterRecord:
    try:
        letter, problem = DeadLetter.from_headers(headers), None
    except InvalidEvent as error:
        letter, problem = None, error.detail
    try:
        written_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        # A foreign producer's timestamp outside the calendar: shown as the epoch.
        written_at = datetime.fromtimestamp(0, UTC)
    return DeadLetterRecord(partition, offset, key, value or b"", written_at, letter, problem)


class DeadLetterTail:
    def __init__(self, bootstrap_servers: str, topic: str, keep: int = DEFAULT_KEEP) -> None:
        self._bootstrap = bootstrap_servers
        self.topic = topic
        self._keep = keep
        self._records: deque[DeadLetterRecord] = deque(maxlen=keep)
        self.problem: str | None = "not read yet"

    def records(self) -> list[DeadLetterRecord]:
        """Newest first."""
        return sorted(self._records, key=lambda r: (r.written_at, r.offset), reverse=True)

    def find(self, partition: int, offset: int) -> DeadLetterRecord | None:
        for record in self._records:
            if (record.partition, record.offset) == (partition, offset):
                return record
        return None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._follow(stop)
            except (KafkaError, OSError) as error:
                self.problem = f"Kafka unavailable: {type(error).__name__}"
                log.warning("console_dlq_unavailable", error=repr(error))
            except Exception as error:
                # A record this code cannot take must not take the console down with it.
                self.problem = f"reading the topic failed: {type(error).__name__}"
                log.exception("console_dlq_failed", error=repr(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _RETRY_SECONDS)

    async def _partitions(self) -> set[int]:
        # The consumer's own metadata only covers topics it follows; ask the cluster.
        client = AIOKafkaClient(bootstrap_servers=self._bootstrap, client_id="broadcast-console")
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
        finally:
            await client.close()
        return set(metadata.partitions_for_topic(self.topic) or ())

    async def _follow(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            client_id="broadcast-console",
            enable_auto_commit=False,
        )
        numbers = await self._partitions()
        if not numbers:
            self.problem = f"topic {self.topic} does not exist yet"
            return
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, n) for n in sorted(numbers)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            self._records.clear()
            for tp in partitions:
                consumer.seek(tp, max(starts[tp], ends[tp] - self._keep))
            self.problem = None
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, messages in batches.items():
                    for m in messages:
                        self._records.append(
                            record_of(
                                tp.partition,
                                m.offset,
                                key=m.key,
                                value=m.value,
                                timestamp_ms=m.timestamp,
                                headers=[(name, value) for name, value in m.headers],
                            )
                        )
        finally:
            await consumer.stop()
