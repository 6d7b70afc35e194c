"""The SQL merge against real PostgreSQL: it must be `projector.fold.merge`, row for row."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

import asyncpg

from projector.fold import MessageRow, fold, status_of, suppressions
from projector.store import StatusStore
from tests.projector.updates import as_records, random_updates, update


def rng_digits() -> int:
    return random.SystemRandom().randint(10**11, 10**12 - 1)


def _seconds(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def stored_row(record: asyncpg.Record) -> MessageRow:
    return MessageRow(
        message_id=record["message_id"],
        wamid=record["wamid"],
        phone_number_id=record["phone_number_id"],
        recipient_id=record["recipient_id"],
        sent_at=_seconds(record["sent_at"]),
        delivered_at=_seconds(record["delivered_at"]),
        read_at=_seconds(record["read_at"]),
        failed_at=_seconds(record["failed_at"]),
        error_code=record["error_code"],
        provider_code=record["provider_code"],
        error_message=record["error_message"],
        updated_at=_seconds(record["updated_at"]) or 0,
    )


async def test_batches_merged_in_sql_equal_the_fold_of_all_events(db_pool: asyncpg.Pool) -> None:
    rng = random.Random(20240523)
    store = StatusStore(db_pool)
    for case in range(80):
        prefix = f"msg_{uuid.uuid4().hex[:12]}_{case}_"
        ids = [prefix + "A", prefix + "B"]
        events = random_updates(rng, ids, rng.randint(1, 30))
        position = 0
        while position < len(events):
            size = rng.randint(1, 8)
            batch = events[position : position + size]
            position += size
            await store.apply(as_records(batch))
        expected = fold(events)
        records = await db_pool.fetch(
            "SELECT *, message_status_of(ms) AS status FROM message_statuses AS ms "
            "WHERE message_id = ANY($1::text[])",
            list(expected),
        )
        assert {r["message_id"]: stored_row(r) for r in records} == expected, case
        for record in records:
            assert record["status"] == status_of(expected[record["message_id"]])


async def test_applying_a_batch_twice_changes_nothing(db_pool: asyncpg.Pool) -> None:
    rng = random.Random(5)
    ids = [f"msg_{uuid.uuid4().hex}"]
    records = as_records(random_updates(rng, ids, 40))
    store = StatusStore(db_pool)
    await store.apply(records)
    first = await db_pool.fetch("SELECT * FROM message_statuses WHERE message_id = $1", ids[0])
    await store.apply(records)
    again = await db_pool.fetch("SELECT * FROM message_statuses WHERE message_id = $1", ids[0])
    assert first == again


async def test_suppressions_are_added_once_and_never_overwritten(db_pool: asyncpg.Pool) -> None:
    digits = str(rng_digits())
    phone = "+" + digits
    await db_pool.execute(
        "INSERT INTO suppressions (phone, reason, source) VALUES ($1, 'opted_out', 'manual')",
        phone,
    )
    other = str(rng_digits())
    events = [
        update("failed", 1_700_000_100, recipient_id=digits, error_code="recipient_blocked"),
        update("failed", 1_700_000_050, recipient_id=other, error_code="recipient_not_on_whatsapp"),
    ]
    store = StatusStore(db_pool)
    assert len(suppressions(events)) == 2
    for _ in range(2):
        await store.apply(as_records(events))
    rows = await db_pool.fetch(
        "SELECT phone, reason, source, created_at FROM suppressions WHERE phone = ANY($1::text[])"
        " ORDER BY phone",
        [phone, "+" + other],
    )
    by_phone = {row["phone"]: row for row in rows}
    assert (by_phone[phone]["reason"], by_phone[phone]["source"]) == ("opted_out", "manual")
    added = by_phone["+" + other]
    assert (added["reason"], added["source"]) == ("recipient_not_on_whatsapp", "webhook")
    assert int(added["created_at"].timestamp()) == 1_700_000_050
