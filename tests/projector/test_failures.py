"""The projector's part of the reconciler's backlog: every message reported failed is
appended to `status_failures` once, in the fold's transaction, and wakes the reconciler."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from projector.store import StatusStore
from tests.projector.updates import as_records, update


async def entries(pool: asyncpg.Pool, ids: list[str]) -> list[tuple[int, str]]:
    rows = await pool.fetch(
        "SELECT seq, message_id FROM status_failures WHERE message_id = ANY($1::text[])"
        " ORDER BY seq",
        ids,
    )
    return [(r["seq"], r["message_id"]) for r in rows]


async def test_each_failed_message_is_appended_once_and_notified(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    failed, delivered_later, fine = (f"msg_{uuid.uuid4().hex}" for _ in range(3))
    events = [
        update("failed", 1_700_000_100, message_id=failed, error_code="recipient_blocked"),
        update("sent", 1_700_000_000, message_id=failed),
        update("failed", 1_700_000_100, message_id=delivered_later, error_code="x"),
        update("delivered", 1_700_000_200, message_id=delivered_later),
        update("delivered", 1_700_000_200, message_id=fine),
    ]
    store = StatusStore(db_pool)
    listener = await asyncpg.connect(database_url)
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("status_failed", lambda *args: notified.put_nowait(args[2]))
    try:
        written = await store.apply(as_records(events))
        assert written.new_failures == 2
        await asyncio.wait_for(notified.get(), 5)
        first = await entries(db_pool, [failed, delivered_later, fine])
        # Whether a failure still stands is the reconciler's question, asked of the fold.
        assert sorted(message_id for _, message_id in first) == sorted([failed, delivered_later])
        # A redelivery (or a replay) adds nothing, moves nothing and wakes nobody.
        again = await store.apply(as_records(events))
        assert again.new_failures == 0
        assert await entries(db_pool, [failed, delivered_later, fine]) == first
        await asyncio.sleep(0.2)
        assert notified.empty()
    finally:
        await listener.close()
