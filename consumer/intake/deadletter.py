"""Writing rejected request events to `broadcast.requests.dlq`, retried until acknowledged.

Public contract: the dead-lettered record keeps the original key and value bytes
and the original headers, followed by the `dlq.*` headers of
`schemas.deadletter.DeadLetter` (reason, detail, source topic/partition/offset,
time, service). The producer is idempotent (acks=all); `publish` returns only
once the broker acknowledged, so the source offset may then be committed.

One exception to "original bytes": a record the broker refuses as too large even
for the DLQ topic is written with no value and the header `dlq.value_dropped:
true`, because retrying it forever would stop the whole partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import ConsumerRecord

from consumer.intake import metrics
from runtime.logs import get_logger
from schemas.deadletter import DeadLetter
from schemas.errors import Reason

log = get_logger(__name__)

DeadLetterReason = (
    Reason
    | Literal[
        "chunk_conflict",
        "unstorable_text",
        "unstorable_value",
        "ledger_rejected",
        "campaign_pruned",
    ]
)

VALUE_DROPPED: Final = "dlq.value_dropped"
# Larger than any record the broker lets into the requests topic (the broker has the
# last word; see the module docstring for what happens when it refuses).
_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
# After this many failures in a row the producer is rebuilt: an idempotent producer
# can be left unusable by some broker errors.
_RECREATE_AFTER: Final = 3
_MAX_BACKOFF_SECONDS: Final = 5.0


class DeadLetterPublisher:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        service: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._service = service
        self._clock = clock
        self._producer: AIOKafkaProducer | None = None

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            max_request_size=_MAX_REQUEST_BYTES,
            request_timeout_ms=15_000,
            client_id=f"{self._service}-dlq",
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        return producer

    async def start(self) -> None:
        await self._start_producer()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def publish(self, record: ConsumerRecord, reason: DeadLetterReason, detail: str) -> None:
        """Write `record` to the DLQ with why; returns once the broker has acknowledged it."""
        envelope = DeadLetter(
            reason=reason,
            detail=detail,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            failed_at=self._clock(),
            service=self._service,
        )
        headers = [*(record.headers or ()), *envelope.to_headers()]
        value: bytes | None = record.value
        failures = 0
        delay = 0.1
        while True:
            try:
                producer = self._producer or await self._start_producer()
                await producer.send_and_wait(
                    self._topic, value=value, key=record.key, headers=headers
                )
            except (MessageSizeTooLargeError, RecordTooLargeError):
                log.exception("dead_letter_value_dropped", offset=record.offset, reason=reason)
                value = None
                headers = [*headers, (VALUE_DROPPED, b"true")]
                continue
            except KafkaError as error:
                failures += 1
                metrics.RETRIES.labels(cause="dead_letter_produce").inc()
                log.warning("dead_letter_retry", error=type(error).__name__, attempt=failures)
                if failures % _RECREATE_AFTER == 0:
                    await self.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_SECONDS)
                continue
            metrics.DEAD_LETTERS.labels(reason=reason).inc()
            return
