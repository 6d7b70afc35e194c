"""One request event, from its Kafka record to a durable effect (ledger or dead letter).

`EventHandler.handle(record)` returns only when the event's effect is durable: the
ledger transaction committed, or the dead letter acknowledged by the broker. Only
then may the caller commit the offset. It is idempotent: handling the same record
again changes nothing. Transient failures (database, Kafka, accounts API) are
retried inside; anything else propagates and should crash the process.

It runs in two steps so the loop can overlap events: `stage(record)` decodes,
reads and expands (no effects; CPU-heavy steps run on `executor` so the event loop
stays free for heartbeats and I/O), `finish(record, staged)` writes. `finish`
must run in offset order per partition; `stage` may run one event ahead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import asyncpg
from aiokafka.structs import ConsumerRecord

from consumer.intake import control, metrics
from consumer.intake.accounts import AccountDirectory
from consumer.intake.deadletter import DeadLetterPublisher, DeadLetterReason
from consumer.intake.expand import expand, normalize_recipients
from consumer.intake.header import (
    CampaignHeader,
    chunk_digest,
    conflict,
    header_of,
    unstorable_text,
    unstorable_value,
)
from consumer.intake.store import (
    ChunkPruned,
    ChunkRedelivered,
    ChunkRejected,
    ChunkWrite,
    ControlRemembered,
    ControlWrite,
    IntakeStore,
    NeedsSender,
    NeedsSenderCheck,
    Source,
)
from runtime.logs import get_logger
from runtime.refusal import refusal_of
from schemas.errors import InvalidEvent
from schemas.requests import BroadcastRequested, RequestEvent, decode_request_event, event_type

log = get_logger(__name__)

T = TypeVar("T")

_TYPE_LABEL = {
    "broadcast.requested": "requested",
    "broadcast.paused": "paused",
    "broadcast.resumed": "resumed",
    "broadcast.cancelled": "cancelled",
}


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: DeadLetterReason
    detail: str


@dataclass(frozen=True, slots=True)
class Chunk:
    event: BroadcastRequested
    header: CampaignHeader
    digest: str
    phones: list[str | None]


Prepared = Rejected | Chunk | control.ControlEvent


@dataclass(frozen=True, slots=True)
class Staged:
    """An event worked out but with no effect yet; `action` None: a redelivered chunk."""

    kind: str  # the metric label of its type
    started: float
    action: Rejected | ChunkWrite | control.ControlEvent | None


def _refused(error: asyncpg.PostgresError) -> Rejected:
    """The dead letter for a write PostgreSQL refused; re-raises any other database error.

    The last line of defence: what can be caught before the database is (see `prepare`
    and `expand`), but a value nobody foresaw, or a constraint an operator added, must
    not stop intake. An error that is not about the data (our SQL, a read-only
    failover, a full disk) is not a refusal: it crashes the process, and redelivery
    after the restart loses nothing.
    """
    refusal = refusal_of(error)
    if refusal is None:
        raise error
    return Rejected("ledger_rejected", refusal.detail)


def _source(record: ConsumerRecord) -> Source:
    return Source(record.topic, record.partition, record.offset)


def prepare(value: bytes | None) -> Prepared:
    """Decode and do the chunk's CPU-heavy, I/O-free work (runs on the executor)."""
    try:
        event: RequestEvent = decode_request_event(value or b"")
    except InvalidEvent as invalid:
        return Rejected(invalid.reason, invalid.detail)
    if not isinstance(event, BroadcastRequested):
        return event
    header = header_of(event)
    problem = unstorable_text(header)
    if problem is not None:
        return Rejected("unstorable_text", problem)
    problem = unstorable_value(header)
    if problem is not None:
        return Rejected("unstorable_value", problem)
    return Chunk(event, header, chunk_digest(event), normalize_recipients(event.recipients))


class EventHandler:
    def __init__(
        self,
        store: IntakeStore,
        accounts: AccountDirectory,
        dead_letters: DeadLetterPublisher,
        executor: Executor,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._dead_letters = dead_letters
        self._executor = executor
        self._clock = clock

    async def _cpu(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def handle(self, record: ConsumerRecord) -> str:
        """Make the record's effect durable; returns the outcome label (for metrics)."""
        return await self.finish(record, await self.stage(record))

    async def stage(self, record: ConsumerRecord) -> Staged:
        """Everything before the first write: decode, read, expand. No effects, so the
        next event can be staged while the previous one is finished."""
        started = time.perf_counter()
        prepared = await self._cpu(partial(prepare, record.value))
        if isinstance(prepared, Rejected):
            return Staged("invalid", started, prepared)
        if isinstance(prepared, Chunk):
            try:
                action = await self._stage_chunk(record, prepared)
            except asyncpg.PostgresError as error:
                action = _refused(error)
            return Staged("requested", started, action)
        return Staged(_TYPE_LABEL[event_type(prepared)], started, prepared)

    async def finish(self, record: ConsumerRecord, staged: Staged) -> str:
        """The event's effect, made durable; the reads `stage` made are checked again
        under the campaign's lock, so staging ahead of the previous event is safe."""
        action = staged.action
        if action is None:
            outcome = "redelivered"
        elif isinstance(action, Rejected):
            outcome = await self._dead_letter(record, action.reason, action.detail)
        else:
            try:
                if isinstance(action, ChunkWrite):
                    outcome = await self._write_chunk(record, action)
                else:
                    outcome = await self._control(action, _source(record))
            except asyncpg.PostgresError as error:
                # The transaction rolled back: nothing of this event is stored.
                rejected = _refused(error)
                outcome = await self._dead_letter(record, rejected.reason, rejected.detail)
        metrics.EVENTS.labels(type=staged.kind, outcome=outcome).inc()
        metrics.EVENT_SECONDS.labels(type=staged.kind).observe(time.perf_counter() - staged.started)
        return outcome

    async def _dead_letter(
        self, record: ConsumerRecord, reason: DeadLetterReason, detail: str
    ) -> str:
        log.warning(
            "event_dead_lettered",
            reason=reason,
            detail=detail[:200],
            partition=record.partition,
            offset=record.offset,
        )
        await self._dead_letters.publish(record, reason, detail)
        return "dead_lettered"

    async def _stage_chunk(
        self, record: ConsumerRecord, chunk: Chunk
    ) -> ChunkWrite | Rejected | None:
        event, header = chunk.event, chunk.header
        campaign_id, index = event.campaign_id, event.chunk.index
        # Cheap checks first: a redelivered chunk costs two reads, no expansion.
        seen = await self._store.chunk_digest(campaign_id, index)
        if seen is not None:
            if seen in ("", chunk.digest):
                return None
            return Rejected(
                "chunk_conflict", f"chunk {index} was received before with different content"
            )
        campaign = await self._store.campaign(campaign_id)
        sender = None
        if campaign is None:
            sender = await self._accounts.decide(header.sender_spec, None)
        elif (problem := conflict(campaign.header, header)) is not None:
            return Rejected("chunk_conflict", problem)
        suppressed = await self._store.suppressed([p for p in chunk.phones if p is not None])
        expansion = await self._cpu(
            partial(expand, event, suppressed=suppressed, now=self._clock(), phones=chunk.phones)
        )
        return ChunkWrite(
            campaign_id=campaign_id,
            header=header,
            chunk_index=index,
            digest=chunk.digest,
            recipient_count=len(event.recipients),
            expansion=expansion,
            source=_source(record),
            sender=sender,
        )

    async def _write_chunk(self, record: ConsumerRecord, write: ChunkWrite) -> str:
        result = await self._store.write_chunk(write)
        while isinstance(result, NeedsSender):
            # The campaign was not stored when staged (or was deleted since): decide now.
            decision = await self._accounts.decide(write.header.sender_spec, None)
            write = replace(write, sender=decision)
            result = await self._store.write_chunk(write)
        if isinstance(result, ChunkRejected):
            return await self._dead_letter(record, "chunk_conflict", result.detail)
        if isinstance(result, ChunkRedelivered):
            return "redelivered"
        if isinstance(result, ChunkPruned):
            return await self._dead_letter(
                record, "campaign_pruned", f"campaign {write.campaign_id} was pruned"
            )
        campaign_id = str(write.campaign_id)
        for outcome, count in result.counts.items():
            metrics.RECIPIENTS.labels(outcome=outcome).inc(count)
        if result.created is not None:
            metrics.CAMPAIGNS.labels(state=result.created.state).inc()
            log.info(
                "campaign_created",
                campaign_id=campaign_id,
                state=result.created.state,
                state_reason=result.created.reason,
                phone_number_id=write.sender.phone_number_id if write.sender else None,
            )
        log.info(
            "chunk_stored",
            campaign_id=campaign_id,
            chunk_index=write.chunk_index,
            chunk_count=write.header.chunk_count,
            **{outcome: count for outcome, count in result.counts.items() if count},
        )
        return "stored"

    async def _control(self, event: control.ControlEvent, source: Source) -> str:
        command = control.command_of(event)
        campaign = await self._store.campaign(event.campaign_id)
        sender = None
        if campaign is not None and control.needs_sender_check(campaign.state, command):
            sender = await self._accounts.decide(campaign.sender_spec, campaign.phone_number_id)
        write = ControlWrite(
            campaign_id=event.campaign_id,
            command=command,
            reason=event.reason,
            source=source,
            sender=sender,
        )
        result = await self._store.apply_control(write)
        while isinstance(result, NeedsSenderCheck):
            # The state changed between our read and the transaction: check the sender now.
            found = result.campaign
            sender = await self._accounts.decide(found.sender_spec, found.phone_number_id)
            result = await self._store.apply_control(replace(write, sender=sender))
        if isinstance(result, ControlRemembered):
            log.info("control_remembered", campaign_id=str(event.campaign_id), command=command)
            return "remembered"
        log.info(
            "control_applied",
            campaign_id=str(event.campaign_id),
            command=command,
            before=result.before.state,
            after=result.after.state,
            state_reason=result.after.reason,
        )
        return "applied" if result.changed else "unchanged"
