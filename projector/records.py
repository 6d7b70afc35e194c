"""From Kafka records to status updates: which records are statuses, and what they say.

Pure. A record is read as a status body unless its `X-Kirim-Event` header names
another event type (the bridge stores typeless events, since they may be
statuses). `updates_of` raises `InvalidEvent` for a value that is not a
readable status body; the caller counts and skips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiokafka.structs import ConsumerRecord

from schemas.errors import InvalidEvent
from schemas.webhooks import StatusUpdate, decode_status_webhook, is_status_event, status_updates

EVENT_HEADER: Final = "X-Kirim-Event"
# The bridge caps bodies far lower; this only bounds what a foreign producer could cost.
MAX_RECORD_BYTES: Final = 1024 * 1024


def is_status_record(headers: Sequence[tuple[str, bytes]]) -> bool:
    """False only when the record names an event type that is not a status."""
    for name, value in headers:
        if name.lower() == EVENT_HEADER.lower():
            event_type = value.decode("latin-1")
            return not event_type or is_status_event(event_type)
    return True


def updates_of(value: bytes | None) -> list[StatusUpdate]:
    """The updates a status body holds; raises `InvalidEvent` when it is not one."""
    if value is None:
        raise InvalidEvent("invalid_json", "record has no value")
    return status_updates(decode_status_webhook(value, max_bytes=MAX_RECORD_BYTES))


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """Where an unreadable record sits, and why it is unreadable (for the log)."""

    topic: str
    partition: int
    offset: int
    reason: str


@dataclass(slots=True)
class ReadBatch:
    """What a poll's records say: the updates, and the records that were skipped."""

    updates: list[StatusUpdate] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)
    ignored: int = 0


def read_batch(records: Iterable[ConsumerRecord[bytes, bytes]]) -> ReadBatch:
    """Decode every record of a poll; never raises for bad input."""
    batch = ReadBatch()
    for record in records:
        if not is_status_record(record.headers):
            batch.ignored += 1
            continue
        try:
            batch.updates.extend(updates_of(record.value))
        except InvalidEvent as error:
            batch.invalid.append(
                InvalidRecord(record.topic, record.partition, record.offset, error.reason)
            )
    return batch
