"""Intake's PostgreSQL side: one transaction per event, retried whole on transient errors.

Every write takes a per-campaign advisory lock first, then re-reads the campaign
row under `FOR UPDATE`: what the caller read before (outside the transaction) is
only a hint, and the decisions that matter are made again under the lock.

Notifications (sent on commit, so listeners never see uncommitted state):
`campaign_state` with the campaign id when a campaign is created or its state
changes; `ledger_pending` with the campaign id when a chunk added pending rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from consumer.intake import control, metrics
from consumer.intake.control import CampaignState, Command
from consumer.intake.expand import OUTCOMES, Expansion, Outcome
from consumer.intake.header import CampaignHeader, StoredHeader, conflict
from consumer.intake.sender import SenderDecision
from consumer.intake.statistics import LedgerStatistics
from runtime.db import TRANSIENT_ERRORS, retrying
from runtime.sqlfiles import load_queries

T = TypeVar("T")
Q: Final = load_queries(Path(__file__).with_name("sql") / "queries.sql")
# First key of intake's two-key advisory locks: "inta".
_LOCK_CLASS: Final = 0x696E7461


@dataclass(frozen=True, slots=True)
class Source:
    """Where an event came from in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class CampaignRow:
    header: StoredHeader
    state: CampaignState
    sender_spec: str
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class ChunkWrite:
    campaign_id: uuid.UUID
    header: CampaignHeader
    chunk_index: int
    digest: str
    recipient_count: int
    expansion: Expansion
    source: Source
    # The sender decision for a campaign not stored yet; None when the caller saw it stored.
    sender: SenderDecision | None


@dataclass(frozen=True, slots=True)
class ChunkStored:
    # Outcome counts of this chunk's rows as stored: rows that lost to (or displaced)
    # another chunk's occurrence of the same phone count as duplicates.
    counts: dict[Outcome, int]
    created: CampaignState | None = None


@dataclass(frozen=True, slots=True)
class ChunkRejected:
    """Dead-letter the chunk as `chunk_conflict`; nothing was written."""

    detail: str


@dataclass(frozen=True, slots=True)
class ChunkRedelivered:
    pass


@dataclass(frozen=True, slots=True)
class ChunkPruned:
    """The campaign was pruned: a chunk of it (a rewound group, a long-kept topic) must
    not bring it back and send it again. Dead-letter it as `campaign_pruned`."""


@dataclass(frozen=True, slots=True)
class NeedsSender:
    """The campaign is not stored (any more): decide its sender, then write again."""


@dataclass(frozen=True, slots=True)
class NeedsSenderCheck:
    """Applying the command would re-activate `campaign`: check its sender, then again."""

    campaign: CampaignRow


ChunkResult = ChunkStored | ChunkRejected | ChunkRedelivered | ChunkPruned | NeedsSender


@dataclass(frozen=True, slots=True)
class ControlWrite:
    campaign_id: uuid.UUID
    command: Command
    reason: str | None
    source: Source
    sender: SenderDecision | None = None


@dataclass(frozen=True, slots=True)
class ControlApplied:
    before: CampaignState
    after: CampaignState

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class ControlRemembered:
    pass


ControlResult = ControlApplied | ControlRemembered | NeedsSenderCheck


async def _transient(operation: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`retrying`, counting each retry in the intake's metrics."""

    async def attempt(*inner: Any) -> T:
        try:
            return await operation(*inner)
        except TRANSIENT_ERRORS:
            metrics.RETRIES.labels(cause="database").inc()
            raise

    result: T = await retrying(attempt, *args)
    return result


def campaign_lock_keys(campaign_id: uuid.UUID) -> tuple[int, int]:
    """The advisory lock (two int4 keys) that serialises writers of one campaign."""
    return _LOCK_CLASS, int.from_bytes(campaign_id.bytes[:4], "big", signed=True)


def _campaign(row: asyncpg.Record) -> CampaignRow:
    return CampaignRow(
        header=StoredHeader(
            fingerprint=row["header_fingerprint"],
            send_at=row["send_at"],
            chunk_count=row["chunk_count"],
        ),
        state=CampaignState(row["state"], row["state_reason"]),
        sender_spec=row["sender_spec"],
        phone_number_id=row["phone_number_id"],
    )


def _stored_counts(expansion: Expansion, written: list[asyncpg.Record]) -> dict[Outcome, int]:
    inserted = {row["phone"] for row in written if row["inserted"]}
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["duplicate"] = expansion.counts["duplicate"]
    for phone, status, reason in zip(
        expansion.phones, expansion.statuses, expansion.reasons, strict=True
    ):
        if phone not in inserted:
            counts["duplicate"] += 1
        elif status == "pending":
            counts["eligible"] += 1
        else:
            counts[reason] += 1  # type: ignore[index]
    return counts


class IntakeStore:
    def __init__(self, pool: asyncpg.Pool, statistics: LedgerStatistics | None = None) -> None:
        self._pool = pool
        self._statistics = statistics

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignRow | None:
        row = await _transient(self._pool.fetchrow, Q["select_campaign"], campaign_id)
        return None if row is None else _campaign(row)

    async def chunk_digest(self, campaign_id: uuid.UUID, chunk_index: int) -> str | None:
        """The digest of a chunk already stored ('' when stored before digests), else None."""
        value: str | None = await _transient(
            self._pool.fetchval, Q["select_chunk"], campaign_id, chunk_index
        )
        return value

    async def suppressed(self, phones: list[str]) -> frozenset[str]:
        if not phones:
            return frozenset()
        rows = await _transient(self._pool.fetch, Q["suppressed_phones"], phones)
        return frozenset(row["phone"] for row in rows)

    async def write_chunk(self, chunk: ChunkWrite) -> ChunkResult:
        result = await _transient(self._write_chunk, chunk)
        if isinstance(result, ChunkStored) and self._statistics is not None:
            self._statistics.added(result.counts["eligible"])
        return result

    async def _write_chunk(self, chunk: ChunkWrite) -> ChunkResult:
        key = str(chunk.campaign_id)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["lock_campaign"], *campaign_lock_keys(chunk.campaign_id))
            # Under the campaign's lock, which prune takes to record a campaign as pruned.
            if await conn.fetchval(Q["campaign_pruned"], chunk.campaign_id):
                return ChunkPruned()
            row = await conn.fetchrow(Q["select_campaign_for_update"], chunk.campaign_id)
            created = None
            if row is None:
                if chunk.sender is None:
                    return NeedsSender()
                created = await self._create_campaign(conn, chunk, chunk.sender)
                state = created
            else:
                stored = _campaign(row)
                problem = conflict(stored.header, chunk.header)
                if problem is not None:
                    return ChunkRejected(problem)
                state = stored.state
            inserted = await conn.fetchval(
                Q["insert_chunk"],
                chunk.campaign_id,
                chunk.chunk_index,
                chunk.recipient_count,
                chunk.source.topic,
                chunk.source.partition,
                chunk.source.offset,
                chunk.digest,
            )
            if inserted is None:
                seen = await conn.fetchval(Q["select_chunk"], chunk.campaign_id, chunk.chunk_index)
                if seen not in ("", chunk.digest):
                    return ChunkRejected(
                        f"chunk {chunk.chunk_index} was received before with different content"
                    )
                return ChunkRedelivered()
            x = chunk.expansion
            written = await conn.fetch(
                Q["upsert_ledger"],
                chunk.campaign_id,
                chunk.chunk_index,
                state.cancelled,
                x.phones,
                x.statuses,
                x.reasons,
                x.components,
                x.opted_in_at,
                x.opt_in_source,
            )
            if any(r["status"] == "pending" for r in written):
                await conn.execute(Q["notify_ledger_pending"], key)
            return ChunkStored(counts=_stored_counts(x, written), created=created)

    async def _create_campaign(
        self, conn: PoolConnectionProxy[asyncpg.Record], chunk: ChunkWrite, sender: SenderDecision
    ) -> CampaignState:
        early = await conn.fetch(Q["early_controls"], chunk.campaign_id)
        state = control.fold(
            control.initial_state(sender.problem),
            ((r["command"], r["reason"]) for r in early),
            sender_problem=sender.problem,
        )
        h = chunk.header
        await conn.execute(
            Q["insert_campaign"],
            chunk.campaign_id,
            h.sender_spec,
            sender.phone_number_id,
            h.template_name,
            h.template_language,
            h.template_components,
            h.fingerprint,
            h.send_at,
            h.chunk_count,
            state.state,
            state.reason,
            h.priority,
            h.quiet_hours,
            h.quality_guard,
        )
        if early:
            await conn.execute(Q["forget_controls"], chunk.campaign_id)
        await conn.execute(Q["notify_campaign_state"], str(chunk.campaign_id))
        return state

    async def apply_control(self, write: ControlWrite) -> ControlResult:
        return await _transient(self._apply_control, write)

    async def _apply_control(self, write: ControlWrite) -> ControlResult:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["lock_campaign"], *campaign_lock_keys(write.campaign_id))
            row = await conn.fetchrow(Q["select_campaign_for_update"], write.campaign_id)
            if row is None:
                await conn.execute(
                    Q["remember_control"],
                    write.campaign_id,
                    write.command,
                    control.storable_reason(write.reason),
                    write.source.topic,
                    write.source.partition,
                    write.source.offset,
                )
                return ControlRemembered()
            campaign = _campaign(row)
            before = campaign.state
            sender = write.sender
            if control.needs_sender_check(before, write.command) and sender is None:
                return NeedsSenderCheck(campaign)
            after = control.apply(
                before,
                write.command,
                reason=write.reason,
                sender_problem=sender.problem if sender is not None else None,
            )
            if after != before:
                resolved = sender.phone_number_id if sender is not None else None
                await conn.execute(
                    Q["update_campaign_state"],
                    write.campaign_id,
                    after.state,
                    after.reason,
                    resolved,
                )
                if after.cancelled:
                    await conn.execute(Q["cancel_pending"], write.campaign_id)
                await conn.execute(Q["notify_campaign_state"], str(write.campaign_id))
            return ControlApplied(before=before, after=after)
