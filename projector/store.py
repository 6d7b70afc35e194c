"""Writes of the projector: one transaction per batch, bulk statements only.

`StatusStore.apply(records, rejects)` folds the records, merges the rows into
`message_statuses` (one UNNEST upsert whose merge is `projector.fold.merge`),
adds suppressions, records the rejects and appends the messages reported failed
to `status_failures` (the dispatcher's reconciler reads it from a cursor; new
entries NOTIFY `status_failed` on commit), in one transaction, retrying the
whole transaction on transient errors (`runtime.db.retrying`). Applying the same
records twice, or in any order, leaves the same tables.

Isolation: when PostgreSQL refuses a write for the data in it
(`runtime.refusal`), the records are split in halves, each tried in a savepoint
of its own, until every refused record is alone; those become rejects
(`database_refused`, with the SQLSTATE) and the rest is written. The fold is a
join, so folding halves separately and merging them in SQL gives the same rows
as folding the whole. Any other error propagates.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from projector.fold import MessageRow, Suppression, fold, suppressions
from projector.records import Reject, StatusRecord
from runtime.db import retrying
from runtime.refusal import refusal_of
from runtime.sqlfiles import load_queries

QUERIES: Final = load_queries(Path(__file__).with_name("sql") / "queries.sql")


def row_columns(rows: Collection[MessageRow]) -> list[list[Any]]:
    """Rows as the twelve column arrays of the upsert, sorted by message_id.

    Sorted so that concurrent batches lock rows in the same order (no deadlocks).
    """
    ordered = sorted(rows, key=lambda row: row.message_id)
    return [
        [row.message_id for row in ordered],
        [row.wamid for row in ordered],
        [row.phone_number_id for row in ordered],
        [row.recipient_id for row in ordered],
        [row.sent_at for row in ordered],
        [row.delivered_at for row in ordered],
        [row.read_at for row in ordered],
        [row.failed_at for row in ordered],
        [row.error_code for row in ordered],
        [row.provider_code for row in ordered],
        [row.error_message for row in ordered],
        [row.updated_at for row in ordered],
    ]


def suppression_columns(found: Collection[Suppression]) -> list[list[Any]]:
    ordered = sorted(found, key=lambda item: item.phone)
    return [
        [item.phone for item in ordered],
        [item.reason for item in ordered],
        [item.since for item in ordered],
    ]


Connection = asyncpg.Connection | PoolConnectionProxy
DATABASE_REFUSED: Final = "database_refused"


@dataclass(slots=True)
class Written:
    """What one batch wrote: rows and suppressions, and the rejects new to the table."""

    rows: int = 0
    suppressions: int = 0
    refused: list[Reject] = field(default_factory=list)
    new_rejects: list[Reject] = field(default_factory=list)
    # Messages written with a failure, and how many of them status_failures did not have.
    failed: set[str] = field(default_factory=set)
    new_failures: int = 0


async def write_batch(
    connection: Connection,
    rows: Collection[MessageRow],
    found: Collection[Suppression],
) -> None:
    """The statements of one batch on `connection` (the caller owns the transaction)."""
    if rows:
        await connection.execute(QUERIES["upsert_statuses"], *row_columns(rows))
    if found:
        await connection.execute(QUERIES["insert_suppressions"], *suppression_columns(found))


async def _write_isolating(
    connection: Connection, records: Sequence[StatusRecord], written: Written
) -> list[Reject]:
    """Write the records' fold; returns the records PostgreSQL refused, each alone."""
    refused: list[Reject] = []
    groups = [list(records)] if records else []
    while groups:
        group = groups.pop()
        updates = [update for record in group for update in record.updates]
        rows, found = fold(updates), suppressions(updates)
        try:
            async with connection.transaction():  # a savepoint: a refusal undoes this only
                await write_batch(connection, list(rows.values()), list(found.values()))
        except asyncpg.PostgresError as error:
            why = refusal_of(error)
            if why is None:
                raise
            if len(group) == 1:
                reject = Reject(group[0], DATABASE_REFUSED, why.detail, why.sqlstate)
                refused.append(reject)
            else:
                middle = len(group) // 2
                groups += [group[middle:], group[:middle]]  # the first half is tried first
            continue
        written.rows += len(rows)
        written.suppressions += len(found)
        written.failed.update(row.message_id for row in rows.values() if row.failed_at is not None)
    return refused


def reject_columns(rejects: Collection[Reject]) -> list[list[Any]]:
    ordered = sorted(rejects, key=lambda r: (r.record.topic, r.record.partition, r.record.offset))
    return [
        [r.record.topic for r in ordered],
        [r.record.partition for r in ordered],
        [r.record.offset for r in ordered],
        [r.record.key for r in ordered],
        [r.record.value for r in ordered],
        [r.reason for r in ordered],
        [r.sqlstate for r in ordered],
        [r.detail for r in ordered],
    ]


async def write_records(
    connection: Connection,
    records: Sequence[StatusRecord],
    rejects: Sequence[Reject],
    *,
    record_failures: bool = False,
) -> Written:
    """Fold and write `records`, set aside the refused ones, record every reject, and
    (with `record_failures`: the live projector) append the failed messages to
    `status_failures`.

    The caller owns the transaction (each write attempt is a savepoint inside it) and
    commits right after: the failures' lock is taken last and held to the commit. The
    rebuild leaves `status_failures` alone: it replays what the live projector folds
    (and recorded) anyway, and its scratch rows are not the live ones until the swap.
    """
    written = Written()
    refused = written.refused = await _write_isolating(connection, records, written)
    everything = [*rejects, *refused]
    if everything:
        new = await connection.fetch(QUERIES["insert_rejects"], *reject_columns(everything))
        positions = {(r["source_topic"], r["source_partition"], r["source_offset"]) for r in new}
        written.new_rejects = [
            r
            for r in everything
            if (r.record.topic, r.record.partition, r.record.offset) in positions
        ]
    if record_failures and written.failed:
        written.new_failures = await append_failures(connection, sorted(written.failed))
    return written


async def append_failures(connection: Connection, message_ids: Sequence[str]) -> int:
    """Append failed messages to `status_failures` (last in the transaction: the lock is
    held to the commit); NOTIFY `status_failed` when any is new. Returns how many are."""
    await connection.execute(QUERIES["lock_failures"])
    added: int = await connection.fetchval(QUERIES["record_failures"], list(message_ids))
    if added:
        await connection.execute(QUERIES["notify_failures"])
    return added


class StatusStore:
    """The live projection in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(
        self, records: Sequence[StatusRecord], rejects: Sequence[Reject] = ()
    ) -> Written:
        """Commit one batch in one transaction; retried whole on transient errors."""
        if not records and not rejects:
            return Written()
        written: Written = await retrying(self._apply_once, records, rejects)
        return written

    async def _apply_once(
        self, records: Sequence[StatusRecord], rejects: Sequence[Reject]
    ) -> Written:
        async with self._pool.acquire() as connection, connection.transaction():
            return await write_records(connection, records, rejects, record_failures=True)
