"""From Kafka records to status updates: which records are statuses, and what they say.

Pure. A record is read as a status body unless its `X-Kirim-Event` header names
another event type (the bridge stores typeless events, since they may be
statuses). `updates_of` raises `InvalidEvent` for a value that is not a
readable status body; the caller counts and skips it.

A record is folded whole or not at all: one whose updates include a value that
cannot be stored (`projector.fold.unstorable`) is set aside as a `Reject`, with
its raw key and value, for the rejects table; so is, later, a record whose fold
PostgreSQL refuses (`projector.store`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiokafka.structs import ConsumerRecord

from projector.fold import admissible, unstorable
from schemas.errors import InvalidEvent
from schemas.webhooks import StatusUpdate, decode_status_webhook, is_status_event, status_updates

EVENT_HEADER: Final = "X-Kirim-Event"
EVENT_ID_HEADER: Final = "X-Kirim-Event-Id"
# The bridge caps bodies far lower; this only bounds what a foreign producer could cost.
MAX_RECORD_BYTES: Final = 1024 * 1024


def _header(headers: Sequence[tuple[str, bytes]], wanted: str) -> str | None:
    """The first header of that name (any case), as text; None when absent."""
    wanted = wanted.lower()
    return next((v.decode("latin-1") for n, v in headers if n.lower() == wanted), None)


def is_status_record(headers: Sequence[tuple[str, bytes]]) -> bool:
    """False only when the record names an event type that is not a status."""
    event_type = _header(headers, EVENT_HEADER)
    return not event_type or is_status_event(event_type)


def event_id_of(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The delivery's `X-Kirim-Event-Id` (the wamid its `kirim` block is about), if forwarded."""
    return _header(headers, EVENT_ID_HEADER)


def updates_of(value: bytes | None, event_id: str | None = None) -> list[StatusUpdate]:
    """The updates a status body holds; raises `InvalidEvent` when it is not one."""
    if value is None:
        raise InvalidEvent("invalid_json", "record has no value")
    webhook = decode_status_webhook(value, max_bytes=MAX_RECORD_BYTES)
    return status_updates(webhook, event_id)


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """Where an unreadable record sits, and why it is unreadable (for the log)."""

    topic: str
    partition: int
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One readable status record: where it sits, its raw bytes, its admissible updates."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    updates: list[StatusUpdate]


@dataclass(frozen=True, slots=True)
class Reject:
    """A record set aside: `reason` is a code, `sqlstate` None unless PostgreSQL refused it."""

    record: StatusRecord
    reason: str
    detail: str
    sqlstate: str | None = None


@dataclass(slots=True)
class ReadBatch:
    """What a poll's records say: records to fold, and the ones set aside or skipped.

    `inadmissible` counts updates dropped by `projector.fold.admissible` (unknown
    status, id too long) from records that are otherwise folded.
    """

    records: list[StatusRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)
    inadmissible: int = 0
    ignored: int = 0

    @property
    def updates(self) -> list[StatusUpdate]:
        """Every update to fold, in record order."""
        return [update for record in self.records for update in record.updates]


def read_batch(records: Iterable[ConsumerRecord[bytes, bytes]]) -> ReadBatch:
    """Decode every record of a poll; never raises for bad input."""
    batch = ReadBatch()
    for record in records:
        if not is_status_record(record.headers):
            batch.ignored += 1
            continue
        try:
            updates = updates_of(record.value, event_id_of(record.headers))
        except InvalidEvent as error:
            batch.invalid.append(
                InvalidRecord(record.topic, record.partition, record.offset, error.reason)
            )
            continue
        usable = [update for update in updates if admissible(update)]
        batch.inadmissible += len(updates) - len(usable)
        read = StatusRecord(
            record.topic, record.partition, record.offset, record.key, record.value, usable
        )
        problems = [(update, reason) for update in usable if (reason := unstorable(update))]
        if problems:
            update, reason = problems[0]
            detail = f"{reason}: status {update.status!r} at {update.occurred_at}"
            batch.rejects.append(Reject(read, reason, detail))
        elif usable:
            batch.records.append(read)
    return batch
