"""Writes of the projector: one transaction per batch, bulk statements only.

`StatusStore.apply(rows, suppressions)` merges folded rows into
`message_statuses` (one UNNEST upsert whose merge is `projector.fold.merge`)
and adds suppressions, in one transaction, retrying the whole transaction on
transient errors (`runtime.db.retrying`). Applying the same rows twice, or in
any order, leaves the same table.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from projector.fold import MessageRow, Suppression
from runtime.db import retrying
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


async def write_batch(
    connection: asyncpg.Connection | PoolConnectionProxy,
    rows: Collection[MessageRow],
    found: Collection[Suppression],
) -> None:
    """The statements of one batch on `connection` (the caller owns the transaction)."""
    if rows:
        await connection.execute(QUERIES["upsert_statuses"], *row_columns(rows))
    if found:
        await connection.execute(QUERIES["insert_suppressions"], *suppression_columns(found))


class StatusStore:
    """The live projection in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(self, rows: Sequence[MessageRow], found: Sequence[Suppression]) -> None:
        """Commit one batch in one transaction; retried whole on transient errors."""
        if rows or found:
            await retrying(self._apply_once, rows, found)

    async def _apply_once(self, rows: Sequence[MessageRow], found: Sequence[Suppression]) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await write_batch(connection, rows, found)
