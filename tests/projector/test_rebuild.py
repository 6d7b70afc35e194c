"""Replay equality: dump the views, rebuild from the topic, dump again: identical.

The rebuild replaces all of `message_statuses`, so it runs in a database of its own,
not in the session's shared one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from devstack.postgres import PostgresServer
from projector.fold import fold
from projector.rebuild import RebuildError, rebuild
from projector.records import updates_of
from projector.service import run
from runtime.db import create_pool
from runtime.migrate import migrate_url
from tests.conftest import MakeTopic
from tests.projector.conftest import produce, projector_settings, seed_campaign
from tests.projector.test_loop import lifecycle, record_of
from tests.projector.test_store import stored_row

VIEWS = {
    "campaign_recipient_status": "SELECT * FROM campaign_recipient_status ORDER BY phone",
    "campaign_progress": "SELECT * FROM campaign_progress ORDER BY campaign_id, status",
    "message_statuses": "SELECT * FROM message_statuses ORDER BY message_id",
}


@pytest.fixture
async def own_database(postgres: PostgresServer) -> AsyncIterator[str]:
    name = f"rebuild_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    await migrate_url(url)
    yield url
    await asyncio.to_thread(postgres.drop_database, name)


async def dump(pool: asyncpg.Pool) -> dict[str, list[asyncpg.Record]]:
    return {name: await pool.fetch(query) for name, query in VIEWS.items()}


async def test_a_rebuild_from_the_topic_reproduces_the_views(
    kafka_bootstrap: str, make_topic: MakeTopic, own_database: str
) -> None:
    topic = await make_topic("status")
    rng = random.Random(3)
    phones = [f"+62{rng.randrange(10**9, 10**10)}" for _ in range(300)]
    ids = {phone: f"msg_{i:04d}" for i, phone in enumerate(phones)}
    events = [e for p in phones for e in lifecycle(ids[p], p.removeprefix("+"), rng)]
    records = [record_of(e) for e in events + rng.sample(events, 100)]
    rng.shuffle(records)
    await produce(kafka_bootstrap, topic, records)

    settings = projector_settings(kafka_bootstrap, own_database, topic, batch_size=97)
    await asyncio.wait_for(run(settings, asyncio.Event(), until_idle=True, serve_metrics=False), 60)
    pool = await create_pool(own_database)
    try:
        await seed_campaign(pool, [(phone, "queued", ids[phone]) for phone in phones])
        before = await dump(pool)
        assert len(before["campaign_recipient_status"]) == 300
        failures = await pool.fetch("SELECT * FROM status_failures ORDER BY seq")
        assert {r["message_id"] for r in failures} == {
            r["message_id"] for r in before["message_statuses"] if r["failed_at"] is not None
        }

        # Damage the live table: the rebuild must restore it from the topic alone.
        await pool.execute("DELETE FROM message_statuses WHERE message_id < 'msg_0050'")
        await pool.execute("UPDATE message_statuses SET read_at = NULL, delivered_at = NULL")
        assert await dump(pool) != before

        report = await rebuild(dataclasses.replace(settings, rebuild_batch_size=211))
        assert report.events == len(records)
        assert report.rows == 300
        assert await dump(pool) == before
        # The scratch table is gone; a second rebuild changes nothing.
        assert (
            await pool.fetchval("SELECT to_regclass('projector_rebuild.message_statuses')") is None
        )
        await rebuild(settings)
        assert await dump(pool) == before
        # Not part of the projection: a rebuild leaves it as it was, the cursor's order too.
        assert await pool.fetch("SELECT * FROM status_failures ORDER BY seq") == failures
    finally:
        await pool.close()


async def test_a_rebuild_while_the_projector_runs_loses_nothing(
    kafka_bootstrap: str, make_topic: MakeTopic, own_database: str
) -> None:
    topic = await make_topic("status")
    rng = random.Random(4)
    events = [e for i in range(1500) for e in lifecycle(f"msg_{i:05d}", f"62{i:09d}", rng)]
    records = [record_of(e) for e in events]
    rng.shuffle(records)
    first, second = records[: len(records) // 2], records[len(records) // 2 :]
    await produce(kafka_bootstrap, topic, first)

    settings = projector_settings(kafka_bootstrap, own_database, topic, batch_size=200)
    stop = asyncio.Event()
    live = asyncio.create_task(run(settings, stop, serve_metrics=False))
    pool = await create_pool(own_database)
    try:
        expected = fold(u for _, body, _ in records if body for u in updates_of(body))
        # More statuses arrive while the rebuild replays and swaps.
        feeding = asyncio.create_task(produce(kafka_bootstrap, topic, second))
        await rebuild(dataclasses.replace(settings, rebuild_batch_size=300))
        await feeding
        async with asyncio.timeout(60):
            while True:
                rows = await pool.fetch("SELECT * FROM message_statuses")
                if {r["message_id"]: stored_row(r) for r in rows} == expected:
                    break
                assert not live.done()
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await live
        await pool.close()


async def test_one_rebuild_at_a_time(
    kafka_bootstrap: str, make_topic: MakeTopic, own_database: str
) -> None:
    topic = await make_topic("status")
    settings = projector_settings(kafka_bootstrap, own_database, topic)
    holder = await asyncpg.connect(own_database)
    try:
        await holder.execute("SELECT pg_advisory_lock(hashtextextended('projector.rebuild', 0))")
        with pytest.raises(RebuildError):
            await rebuild(settings)
    finally:
        await holder.close()
