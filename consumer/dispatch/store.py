"""The dispatcher's reads and writes: one statement per batch, never one per recipient."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from consumer.dispatch.quota import QuotaPlan, QuotaSnapshot, freeing_offset
from consumer.dispatch.settle import Sighting
from runtime.db import TRANSIENT_ERRORS
from runtime.sqlfiles import load_queries
from schemas.requests import Priority, QualityGuard, QuietHours

Q = load_queries(Path(__file__).with_name("sql") / "queries.sql")
_Option = TypeVar("_Option", QuietHours, QualityGuard)
Connection = asyncpg.Connection | PoolConnectionProxy


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def seconds_of(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


@dataclass(frozen=True, slots=True)
class Budget:
    """A quota budget (one number, or a group sharing one) as of one batch."""

    key: str
    limit: int
    window_start: float
    hold_until: float


@dataclass(frozen=True, slots=True)
class SenderState:
    stopped: bool
    reason: str | None
    hold_until: float


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: uuid.UUID
    template_name: str
    template_language: str
    components: list[Any]
    send_at: float | None
    state: str
    priority: Priority = "bulk"
    quiet_hours: QuietHours | None = None
    quality_guard: QualityGuard | None = None


@dataclass(frozen=True, slots=True)
class DueRow:
    campaign_id: uuid.UUID
    phone: str
    components: list[Any] | None
    generation: int
    attempts: int
    uncertain_since: float | None


@dataclass(frozen=True, slots=True)
class RowResult:
    """What one send did to a ledger row; written in bulk by `record_results`."""

    campaign_id: uuid.UUID
    phone: str
    status: str
    reason: str | None = None
    message_id: str | None = None
    attempted: int = 1
    next_attempt_at: float | None = None
    attempted_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    uncertain_since: float | None = None


_T = TypeVar("_T")
# (results, {message id: (campaign, phone) holding it}) -> (to write, conflicts)
ResolveIds = Callable[
    [Sequence[RowResult], Mapping[str, tuple[uuid.UUID, str]]],
    tuple[list[RowResult], list[_T]],
]


@dataclass(frozen=True, slots=True)
class AsyncFailure:
    campaign_id: uuid.UUID
    phone: str
    generation: int
    message_id: str
    phone_number_id: str
    error_code: str | None
    provider_code: int | None
    error_message: str | None
    failed_at: float | None = None
    queued_at: float | None = None
    campaign_changed_at: float | None = None
    sender_changed_at: float | None = None


@dataclass(frozen=True, slots=True)
class BacklogEntry:
    """One entry of the failures backlog (`status_failures`), with what decides it."""

    seq: int
    message_id: str
    recorded_at: float
    fresh: bool  # read past the cursor (else: a waiting entry come due)
    failed: bool  # the fold still says failed: no delivered or read since
    held: bool  # a ledger row holds the message id
    failure: AsyncFailure | None  # that row, when it is queued and not yet checked


class FailureBacklog:
    """The reconciler's backlog, read and settled on the connection that holds its lock."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def read(self, now: float, limit: int) -> tuple[int, list[BacklogEntry]]:
        """The cursor, and up to `limit` entries past it plus up to `limit` due waits."""
        cursor: int = await self._connection.fetchval(Q["failure_cursor"])
        rows = await self._connection.fetch(Q["failure_backlog"], cursor, at(now), limit)
        return cursor, [_backlog_entry(r) for r in rows]

    async def settle(
        self, cursor: int, keep: Sequence[tuple[int, float]], finished: Sequence[int]
    ) -> None:
        """In one transaction: the entries to look at again (seq, when), the waits that
        are finished, and the cursor moved to `cursor` (never back)."""
        async with self._connection.transaction():
            if keep:
                await self._connection.execute(
                    Q["keep_waiting"], [seq for seq, _ in keep], [at(when) for _, when in keep]
                )
            if finished:
                await self._connection.execute(Q["stop_waiting"], list(finished))
            await self._connection.execute(Q["advance_failure_cursor"], cursor)


def _backlog_entry(r: asyncpg.Record) -> BacklogEntry:
    failure = None
    if r["actionable"]:
        failure = AsyncFailure(
            campaign_id=r["campaign_id"],
            phone=r["phone"],
            generation=r["generation"],
            message_id=r["message_id"],
            phone_number_id=r["phone_number_id"],
            error_code=r["error_code"],
            provider_code=r["provider_code"],
            error_message=r["error_message"],
            failed_at=seconds_of(r["failed_at"]),
            queued_at=seconds_of(r["queued_at"]),
            campaign_changed_at=seconds_of(r["campaign_changed_at"]),
            sender_changed_at=seconds_of(r["sender_changed_at"]),
        )
    return BacklogEntry(
        seq=r["seq"],
        message_id=r["message_id"],
        recorded_at=r["recorded_at"].timestamp(),
        fresh=r["fresh"],
        failed=r["failed"],
        held=r["held"],
        failure=failure,
    )


class DispatchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        """For the modules with statements of their own (health.py)."""
        return self._pool

    async def senders_with_work(self) -> list[str]:
        rows = await self._pool.fetch(Q["senders_with_work"])
        return [r["phone_number_id"] for r in rows]

    async def sender_campaigns(self, phone_number_id: str) -> list[Campaign]:
        rows = await self._pool.fetch(Q["sender_campaigns"], phone_number_id)
        return [
            Campaign(
                campaign_id=r["campaign_id"],
                template_name=r["template_name"],
                template_language=r["template_language"],
                components=r["template_components"],
                send_at=seconds_of(r["send_at"]),
                state=r["state"],
                priority=r["priority"],
                quiet_hours=_option(QuietHours, r["quiet_hours"]),
                quality_guard=_option(QualityGuard, r["quality_guard"]),
            )
            for r in rows
        ]

    async def campaign_states(self, campaign_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        rows = await self._pool.fetch(Q["campaign_states"], list(campaign_ids))
        return {r["campaign_id"]: r["state"] for r in rows}

    async def due_rows(
        self, campaign_ids: Sequence[uuid.UUID], per_campaign: int, now: float, token: uuid.UUID
    ) -> list[DueRow]:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["due_rows_plan"])
            rows = await connection.fetch(
                Q["due_rows"], list(campaign_ids), per_campaign, at(now), token
            )
        return [
            DueRow(
                campaign_id=r["campaign_id"],
                phone=r["phone"],
                components=r["components"],
                generation=r["generation"],
                attempts=r["attempts"],
                uncertain_since=seconds_of(r["uncertain_since"]),
            )
            for r in rows
        ]

    async def has_pending(self, campaign_ids: Sequence[uuid.UUID]) -> bool:
        return bool(await self._pool.fetchval(Q["has_pending"], list(campaign_ids)))

    async def next_due_at(self, campaign_ids: Sequence[uuid.UUID]) -> float | None:
        return seconds_of(await self._pool.fetchval(Q["next_due_at"], list(campaign_ids)))

    async def reserve(
        self,
        budget: Budget,
        rows: Sequence[DueRow],
        decide: Callable[[QuotaSnapshot], QuotaPlan],
        *,
        token: uuid.UUID,
        now: float,
    ) -> QuotaPlan:
        """Plan and record a batch under the budget's lock, in one transaction.

        `decide(snapshot)` is the pure planner; its `send` phones are recorded as
        contacts and their rows claimed, its `defer` rows get `retry_at`.
        """
        budget_key, window_start = budget.key, budget.window_start
        phones = sorted({row.phone for row in rows})
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["lock_budget"], budget_key)
            usage = await connection.fetchrow(Q["budget_usage"], budget_key, at(window_start))
            known = await connection.fetch(
                Q["budget_known_phones"], budget_key, phones, at(window_start)
            )
            used = usage["used"] if usage else 0
            # The tier fell below what the window holds: room comes only once enough
            # contacts age out, not when the oldest does.
            offset = freeing_offset(used, budget.limit)
            freeing = (
                await connection.fetchval(
                    Q["budget_freeing_contact"], budget_key, at(window_start), offset
                )
                if offset
                else None
            )
            snapshot = QuotaSnapshot(
                limit=budget.limit,
                used=used,
                in_window=frozenset(r["phone"] for r in known),
                oldest_contact_at=seconds_of(usage["oldest"]) if usage else None,
                hold_until=budget.hold_until,
                freeing_contact_at=seconds_of(freeing),
            )
            plan = decide(snapshot)
            sending = set(plan.send)
            send_rows = [row for row in rows if row.phone in sending]
            defer_rows = [row for row in rows if row.phone not in sending]
            if send_rows:
                await connection.execute(Q["record_contacts"], budget_key, sorted(sending), at(now))
                await connection.execute(
                    Q["claim_rows"],
                    [row.campaign_id for row in send_rows],
                    [row.phone for row in send_rows],
                    token,
                    at(now),
                )
            if defer_rows and plan.retry_at is not None:
                await connection.execute(
                    Q["defer_rows"],
                    [row.campaign_id for row in defer_rows],
                    [row.phone for row in defer_rows],
                    at(plan.retry_at),
                )
        return plan

    async def defer_quiet(self, deferrals: Sequence[tuple[DueRow, float]]) -> None:
        """(row, until): recipients inside their quiet hours, each until its window opens."""
        await self._pool.execute(
            Q["defer_quiet"],
            [row.campaign_id for row, _ in deferrals],
            [row.phone for row, _ in deferrals],
            [at(until) for _, until in deferrals],
        )

    async def fail_unknown_outcome(self, rows: Sequence[DueRow]) -> None:
        await self._pool.execute(
            Q["fail_unknown_outcome"],
            [row.campaign_id for row in rows],
            [row.phone for row in rows],
        )

    async def record_results(
        self, results: Sequence[RowResult], token: uuid.UUID, resolve: ResolveIds[_T]
    ) -> list[_T]:
        """Write a batch of send results in one transaction. `resolve(results, holders)`
        is the pure rule for message ids that other recipients already hold; returns
        the conflicts it found."""
        for attempt in range(3):
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    ids = sorted({r.message_id for r in results if r.message_id})
                    held = await connection.fetch(Q["message_id_holders"], ids) if ids else []
                    holders = {r["message_id"]: (r["campaign_id"], r["phone"]) for r in held}
                    written, rewritten = resolve(results, holders)
                    await connection.execute(Q["record_results"], *_result_columns(written, token))
                    return rewritten
            except asyncpg.UniqueViolationError:
                # Another worker recorded the same id meanwhile: the next look sees it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def reassign_message(
        self, message_id: str, holder: tuple[uuid.UUID, str], rightful: RowResult, detail: str
    ) -> bool:
        """Move `message_id` from `holder` (then failed as an anomaly) to the recipient the
        API says it is to; False (and nothing changed) when either row has moved on."""
        async with self._pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                taken = await connection.fetchval(
                    Q["take_message_from_holder"], holder[0], holder[1], message_id, detail
                )
                given = taken and await connection.fetchval(
                    Q["give_message_to_rightful"],
                    rightful.campaign_id,
                    rightful.phone,
                    message_id,
                    at(rightful.attempted_at) if rightful.attempted_at else None,
                )
                if given:
                    await connection.execute(Q["watch_failures_of"], [message_id])
            except BaseException:
                await transaction.rollback()
                raise
            if given:
                await transaction.commit()
            else:
                await transaction.rollback()
            return bool(given)

    async def release_rows(self, rows: Sequence[DueRow], token: uuid.UUID) -> None:
        await self._pool.execute(
            Q["release_rows"],
            [row.campaign_id for row in rows],
            [row.phone for row in rows],
            [at(row.uncertain_since) if row.uncertain_since else None for row in rows],
            token,
        )

    @contextlib.asynccontextmanager
    async def reconciler_turn(self) -> AsyncIterator[FailureBacklog | None]:
        """The failures backlog while this instance holds the reconciler's lock; None
        when another instance's pass holds it (this one then skips its pass)."""
        async with self._pool.acquire() as connection:
            if not await connection.fetchval(Q["try_reconcile_lock"]):
                yield None
                return
            try:
                yield FailureBacklog(connection)
            finally:
                # A broken connection took the lock with it; the pool drops it.
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await connection.fetchval(Q["release_reconcile_lock"])

    async def resend_after_failure(
        self, failures: Sequence[tuple[AsyncFailure, float, str | None]]
    ) -> None:
        """(failure, when to send again, pending reason) for each recipient."""
        await self._pool.execute(
            Q["resend_after_failure"],
            [f.campaign_id for f, _, _ in failures],
            [f.phone for f, _, _ in failures],
            [f.message_id for f, _, _ in failures],
            [at(when) for _, when, _ in failures],
            [reason for _, _, reason in failures],
            [f.error_code for f, _, _ in failures],
            [f.error_message for f, _, _ in failures],
        )

    async def delivered_after_failure(self, message_ids: Sequence[str]) -> None:
        await self._pool.execute(Q["delivered_after_failure"], list(message_ids))

    async def unknown_sightings(
        self, phone_number_id: str, recipient_ids: Sequence[str]
    ) -> list[Sighting]:
        rows = await self._pool.fetch(Q["unknown_sightings"], phone_number_id, list(recipient_ids))
        return [
            Sighting(
                phone_number_id=r["phone_number_id"],
                recipient_id=r["recipient_id"],
                message_id=r["message_id"],
                first_seen_at=seconds_of(r["first_seen_at"]) or 0.0,
            )
            for r in rows
        ]

    async def adopt_messages(self, found: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        """(campaign, phone, message id): in-doubt rows matched to their message. A failure
        of an adopted message, read past long ago, is put back before the reconciler."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                Q["adopt_messages"],
                [campaign for campaign, _, _ in found],
                [phone for _, phone, _ in found],
                [message_id for _, _, message_id in found],
            )
            await connection.execute(
                Q["watch_failures_of"], [message_id for _, _, message_id in found]
            )

    async def fail_after_failure(self, failures: Sequence[tuple[AsyncFailure, str]]) -> None:
        await self._pool.execute(
            Q["fail_after_failure"],
            [f.campaign_id for f, _ in failures],
            [f.phone for f, _ in failures],
            [f.message_id for f, _ in failures],
            [code for _, code in failures],
            [f.error_message for f, _ in failures],
        )

    async def suppress(self, phones_and_reasons: Sequence[tuple[str, str]]) -> None:
        await self._pool.execute(
            Q["suppress_phones"],
            [phone for phone, _ in phones_and_reasons],
            [reason for _, reason in phones_and_reasons],
        )

    async def stop_campaign(self, campaign_id: uuid.UUID, reason: str) -> None:
        await self._pool.execute(Q["stop_campaign"], campaign_id, reason)

    async def stop_sender(self, phone_number_id: str, reason: str) -> None:
        await self._pool.execute(Q["stop_sender"], phone_number_id, reason)

    async def resume_sender(self, phone_number_id: str, reasons: Sequence[str]) -> None:
        await self._pool.execute(Q["resume_sender"], phone_number_id, list(reasons))

    async def sender_state(self, phone_number_id: str) -> SenderState:
        row = await self._pool.fetchrow(Q["sender_state"], phone_number_id)
        if row is None:
            return SenderState(stopped=False, reason=None, hold_until=0.0)
        return SenderState(
            stopped=row["state"] == "stopped",
            reason=row["state_reason"],
            hold_until=seconds_of(row["quota_hold_until"]) or 0.0,
        )

    async def hold_sender(self, phone_number_id: str, until: float) -> None:
        await self._pool.execute(Q["hold_sender"], phone_number_id, at(until))

    async def stopped_senders(self) -> dict[str, str | None]:
        rows = await self._pool.fetch(Q["stopped_senders"])
        return {r["phone_number_id"]: r["state_reason"] for r in rows}

    async def heartbeat(self, instance_id: uuid.UUID) -> None:
        await self._pool.execute(Q["heartbeat"], instance_id)

    async def live_instances(self, within_seconds: float) -> int:
        return int(await self._pool.fetchval(Q["live_instances"], within_seconds))

    async def forget_instance(self, instance_id: uuid.UUID) -> None:
        await self._pool.execute(Q["forget_instance"], instance_id)

    async def record_tier(self, phone_number_id: str, tier: int | None) -> int | None:
        """Record the number's tier; returns the one recorded before (None: none)."""
        before: int | None = await self._pool.fetchval(Q["record_tier"], phone_number_id, tier)
        return before

    async def tier_rose(self, phone_number_id: str, limit: int, now: float) -> None:
        """Make what waits for the old tier's window due now: deferred rows, the hold."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["undefer_quota"], phone_number_id, at(now), limit)
            await connection.execute(Q["lift_quota_hold"], phone_number_id, at(now))


def _option(kind: type[_Option], stored: object) -> _Option | None:
    """A campaign option as the request gave it (stored as jsonb; NULL when absent)."""
    return None if stored is None else msgspec.convert(stored, kind)


def _result_columns(results: Sequence[RowResult], token: uuid.UUID) -> list[Any]:
    """The arguments of `record_results`: one array per column, then the token."""

    def opt_at(value: float | None) -> datetime | None:
        return at(value) if value is not None else None

    return [
        [r.campaign_id for r in results],
        [r.phone for r in results],
        [r.status for r in results],
        [r.reason for r in results],
        [r.message_id for r in results],
        [r.attempted for r in results],
        [opt_at(r.next_attempt_at) for r in results],
        [opt_at(r.attempted_at) for r in results],
        [r.error_code for r in results],
        [r.error_message for r in results],
        [opt_at(r.uncertain_since) for r in results],
        token,
    ]
