"""`broadcast prune`: retention against the real database (and Kafka for the rebuild).

Campaigns are seeded, then made old by moving their timestamps back; the session's
database is shared with other tests, so every assertion looks at this test's own
campaigns and budget keys, and retention is 30 days (nothing seeded by another test
is that old).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from cli.errors import FAILED, OK
from cli.prune import Candidate, PruneReport, cutoffs, prune_campaign
from devstack.postgres import PostgresServer
from projector.service import run
from runtime.db import create_pool
from runtime.migrate import migrate_url
from tests.cli.conftest import Row, new_message_id, new_phone, run_cli, seed
from tests.conftest import MakeTopic
from tests.projector.conftest import STATUS_HEADERS as HEADERS
from tests.projector.conftest import produce, projector_settings, seed_campaign
from tests.projector.test_loop import T, lifecycle, record_of
from tests.projector.test_rejects import hostile
from tests.projector.updates import update

OLD = 40  # days back: past the 30-day retention
RECENT = 10  # days back: inside it


async def age(
    pool: asyncpg.Pool, campaign_id: uuid.UUID, days: float, *, statuses: bool = True
) -> None:
    """Move the campaign's timestamps (its row, recipients and, unless told otherwise,
    statuses) back `days`."""
    back = timedelta(days=days)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "UPDATE campaigns SET created_at = now() - $2::interval, "
            "updated_at = now() - $2::interval WHERE campaign_id = $1",
            campaign_id,
            back,
        )
        await connection.execute(
            "UPDATE ledger SET updated_at = now() - $2::interval WHERE campaign_id = $1",
            campaign_id,
            back,
        )
        if not statuses:
            return
        await connection.execute(
            "UPDATE message_statuses SET updated_at = now() - $2::interval "
            "WHERE message_id IN (SELECT message_id FROM ledger WHERE campaign_id = $1)",
            campaign_id,
            back,
        )


def finished_rows() -> list[Row]:
    return [
        Row(new_phone(), "queued", message_id=new_message_id(), seen=("sent", "read")),
        Row(new_phone(), "queued", message_id=new_message_id(), seen=("delivered",)),
        Row(
            new_phone(),
            "failed",
            message_id=new_message_id(),
            error_code="recipient_blocked",
            seen=("failed",),
            status_error_code="recipient_blocked",
        ),
        Row(new_phone(), "failed", error_code="internal_error"),
        Row(new_phone(), "skipped", reason="not_opted_in"),
    ]


@pytest.fixture
async def campaigns(db_pool: asyncpg.Pool) -> dict[str, uuid.UUID]:
    """One campaign per situation, by name; only `finished` and `cancelled` may go."""
    made = {
        "finished": await seed(db_pool, finished_rows()),
        # Old, but recipients still to send.
        "active": await seed(db_pool, [*finished_rows(), Row(new_phone(), "pending")]),
        "stopped": await seed(
            db_pool,
            [*finished_rows(), Row(new_phone(), "pending")],
            state="stopped",
            state_reason="template_paused",
        ),
        # A message accepted and never reported on: 'queued', so not terminal.
        "queued": await seed(
            db_pool, [*finished_rows(), Row(new_phone(), "queued", message_id=new_message_id())]
        ),
        # Cancelled while a send was in flight: it never hears back, and is done anyway.
        "cancelled": await seed(
            db_pool,
            [
                *finished_rows(),
                Row(new_phone(), "skipped", reason="cancelled"),
                Row(new_phone(), "queued", message_id=new_message_id(), seen=("sent",)),
            ],
            state="cancelled",
        ),
        "recent": await seed(db_pool, finished_rows()),
    }
    for name, campaign_id in made.items():
        await age(db_pool, campaign_id, RECENT if name == "recent" else OLD)
    return made


async def footprint(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> dict[str, Any]:
    """Everything stored for one campaign."""
    return {
        "campaign": await pool.fetch("SELECT * FROM campaigns WHERE campaign_id = $1", campaign_id),
        "chunks": await pool.fetch(
            "SELECT * FROM campaign_chunks WHERE campaign_id = $1", campaign_id
        ),
        "ledger": await pool.fetch(
            "SELECT * FROM ledger WHERE campaign_id = $1 ORDER BY phone", campaign_id
        ),
        "statuses": await pool.fetch(
            "SELECT ms.* FROM message_statuses AS ms JOIN ledger AS l USING (message_id) "
            "WHERE l.campaign_id = $1 ORDER BY ms.message_id",
            campaign_id,
        ),
    }


def listed(result_json: dict[str, Any], ours: dict[str, uuid.UUID]) -> dict[str, dict[str, Any]]:
    """The report's campaigns that are this test's, by name."""
    names = {str(campaign_id): name for name, campaign_id in ours.items()}
    return {
        names[c["campaign_id"]]: c for c in result_json["campaigns"] if c["campaign_id"] in names
    }


async def test_a_dry_run_changes_nothing_and_counts_what_would_go(
    cli_env: dict[str, str], db_pool: asyncpg.Pool, campaigns: dict[str, uuid.UUID]
) -> None:
    before = {name: await footprint(db_pool, c) for name, c in campaigns.items()}
    result = await run_cli(["prune", "--dry-run", "--json"], cli_env)
    assert result.code == OK, result.err
    report = result.json()
    assert report["dry_run"] is True
    assert report["older_than_days"] == 30
    found = listed(report, campaigns)
    assert set(found) == {"finished", "cancelled"}
    assert (found["finished"]["recipients"], found["finished"]["statuses"]) == (5, 3)
    assert (found["cancelled"]["recipients"], found["cancelled"]["statuses"]) == (7, 4)
    assert found["cancelled"]["state"] == "cancelled"
    # The totals are the listed campaigns' (another test's may be listed too).
    assert report["ledger_rows"] == sum(c["recipients"] for c in report["campaigns"])
    assert report["status_rows"] == sum(c["statuses"] for c in report["campaigns"])
    assert {name: await footprint(db_pool, c) for name, c in campaigns.items()} == before

    text = await run_cli(["prune", "--dry-run"], cli_env)
    assert text.code == OK
    assert "would prune" in text.out
    assert str(campaigns["finished"]) in text.out
    assert str(campaigns["active"]) not in text.out
    assert text.out.rstrip().endswith("dry run: nothing deleted")

    # --older-than overrides the retention: at 50 days nothing of ours is old enough.
    longer = await run_cli(["prune", "--dry-run", "--json", "--older-than", "50"], cli_env)
    assert listed(longer.json(), campaigns) == {}
    # and RETENTION_DAYS sets it.
    shorter = await run_cli(["prune", "--dry-run", "--json"], {**cli_env, "RETENTION_DAYS": "5"})
    assert set(listed(shorter.json(), campaigns)) == {"finished", "cancelled", "recent"}


async def test_prune_removes_only_terminal_campaigns_past_retention(
    cli_env: dict[str, str], db_pool: asyncpg.Pool, campaigns: dict[str, uuid.UUID]
) -> None:
    untouched = {
        name: await footprint(db_pool, c)
        for name, c in campaigns.items()
        if name not in ("finished", "cancelled")
    }
    message_ids = {
        name: {
            r["message_id"]
            for r in await db_pool.fetch(
                "SELECT message_id FROM ledger WHERE campaign_id = $1 AND message_id IS NOT NULL",
                campaigns[name],
            )
        }
        for name in ("finished", "cancelled")
    }
    result = await run_cli(["prune", "--json", "--batch-size", "2"], cli_env)
    assert result.code == OK, result.err
    report = result.json()
    assert set(listed(report, campaigns)) == {"finished", "cancelled"}
    assert report["kept"] == []

    for name in ("finished", "cancelled"):
        gone = await footprint(db_pool, campaigns[name])
        assert gone == {"campaign": [], "chunks": [], "ledger": [], "statuses": []}
        assert not await db_pool.fetchval(
            "SELECT count(*) FROM message_statuses WHERE message_id = ANY($1::text[])",
            list(message_ids[name]),
        )
        tombstones = await db_pool.fetch(
            "SELECT message_id FROM pruned_messages WHERE campaign_id = $1", campaigns[name]
        )
        assert {r["message_id"] for r in tombstones} == message_ids[name]
        record = await db_pool.fetchrow(
            "SELECT * FROM pruned_campaigns WHERE campaign_id = $1", campaigns[name]
        )
        assert record is not None
        assert record["completed_at"] is not None
    assert {name: await footprint(db_pool, campaigns[name]) for name in untouched} == untouched

    again = await run_cli(["prune", "--json"], cli_env)
    assert again.code == OK
    assert listed(again.json(), campaigns) == {}

    text = await run_cli(["prune", "--older-than", "5"], cli_env)
    assert text.code == OK, text.err
    assert text.out.startswith("pruned ")
    assert str(campaigns["recent"]) in text.out
    assert await footprint(db_pool, campaigns["recent"]) == {
        "campaign": [],
        "chunks": [],
        "ledger": [],
        "statuses": [],
    }


async def test_a_recipient_retried_meanwhile_keeps_its_campaign(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    retried = new_phone()
    campaign_id = await seed(db_pool, [*finished_rows(), Row(retried, "pending")])
    await age(db_pool, campaign_id, OLD)
    connection = await asyncpg.connect(cli_env["DATABASE_URL"])
    try:
        # The campaign as the candidates query saw it before a retry re-queued a recipient.
        row = await connection.fetchrow(
            "SELECT * FROM campaigns WHERE campaign_id = $1", campaign_id
        )
        assert row is not None
        candidate = Candidate(campaign_id, "active", None, 6, 3, row["updated_at"])
        report = PruneReport(False, 30, cutoffs(row["updated_at"], 30, 60), [candidate])
        await prune_campaign(connection, candidate, 2, report)
    finally:
        await connection.close()
    assert report.kept == [campaign_id]
    left = await footprint(db_pool, campaign_id)
    assert [r["phone"] for r in left["ledger"]] == [retried]
    assert len(left["campaign"]) == 1


async def test_quota_contacts_inside_the_window_are_kept(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    key = f"test-{uuid.uuid4().hex[:8]}"
    # A one-hour window: contacts older than 2 h (window plus the 1 h margin) go.
    ages_minutes = {"keep_10m": 10, "keep_61m": 61, "keep_119m": 119, "go_3h": 180}
    ages_minutes |= {f"go_{i}d": 60 * 24 * i for i in range(1, 6)}
    phones = {name: new_phone() for name in ages_minutes}
    await db_pool.execute(
        "INSERT INTO quota_contacts (budget_key, phone, last_contact_at) "
        "SELECT $1, p, now() - make_interval(mins => m) "
        "FROM unnest($2::text[], $3::int[]) AS t(p, m)",
        key,
        list(phones.values()),
        list(ages_minutes.values()),
    )
    env = {**cli_env, "QUOTA_WINDOW_SECONDS": "3600"}
    old_elsewhere = await db_pool.fetchval(
        "SELECT count(*) FROM quota_contacts "
        "WHERE budget_key <> $1 AND last_contact_at < now() - interval '2 hours'",
        key,
    )
    dry = await run_cli(["prune", "--dry-run", "--json"], env)
    assert dry.code == OK, dry.err
    assert dry.json()["quota_contacts"] == old_elsewhere + 6
    assert await db_pool.fetchval(
        "SELECT count(*) FROM quota_contacts WHERE budget_key = $1", key
    ) == len(phones)

    result = await run_cli(["prune", "--json", "--batch-size", "2"], env)
    assert result.code == OK, result.err
    assert result.json()["quota_contacts"] >= 6
    left = await db_pool.fetch("SELECT phone FROM quota_contacts WHERE budget_key = $1", key)
    assert {r["phone"] for r in left} == {
        phones[name] for name in ages_minutes if name.startswith("keep")
    }


async def test_late_statuses_and_rejects_of_pruned_messages_are_swept(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    campaign_id = await seed(db_pool, finished_rows())
    ids = [
        r["message_id"]
        for r in await db_pool.fetch(
            "SELECT message_id FROM ledger WHERE campaign_id = $1 AND message_id IS NOT NULL "
            "ORDER BY message_id",
            campaign_id,
        )
    ]
    await age(db_pool, campaign_id, OLD)
    assert (await run_cli(["prune"], cli_env)).code == OK
    assert not await db_pool.fetchval(
        "SELECT count(*) FROM campaigns WHERE campaign_id = $1", campaign_id
    )

    # A read receipt arrives for a pruned message, a record keyed by another is set aside,
    # and the third message id is adopted by a live recipient (the reconciler's match).
    late, rejected, adopted = ids
    await db_pool.execute(
        "INSERT INTO message_statuses (message_id, read_at, updated_at) "
        "VALUES ($1, now(), now()), ($2, now(), now())",
        late,
        adopted,
    )
    await db_pool.execute(
        "INSERT INTO status_rejects (source_topic, source_partition, source_offset, "
        "message_key, raw_value, reason, detail) "
        "VALUES ('test', 0, $2, $1, 'x', 'timestamp_out_of_range', 'test')",
        rejected.encode(),
        random.randrange(2**40),
    )
    live = await seed(db_pool, [Row(new_phone(), "queued", message_id=adopted)])

    result = await run_cli(["prune", "--json"], cli_env)
    assert result.code == OK, result.err
    assert result.json()["late_statuses"] >= 1
    assert result.json()["rejects"] >= 1
    left = await db_pool.fetch(
        "SELECT message_id FROM message_statuses WHERE message_id = ANY($1::text[])", ids
    )
    assert [r["message_id"] for r in left] == [adopted]
    assert not await db_pool.fetchval(
        "SELECT count(*) FROM status_rejects WHERE message_key = $1", rejected.encode()
    )
    assert len((await footprint(db_pool, live))["statuses"]) == 1


async def test_only_one_prune_runs_at_a_time(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    async with db_pool.acquire() as connection:
        assert await connection.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended('broadcast.prune', 0))"
        )
        try:
            result = await run_cli(["prune", "--json"], cli_env)
            assert result.code == FAILED
            assert "another prune is running" in result.err
            # A dry run changes nothing, so it does not wait for the lock.
            assert (await run_cli(["prune", "--dry-run"], cli_env)).code == OK
        finally:
            await connection.fetchval(
                "SELECT pg_advisory_unlock(hashtextextended('broadcast.prune', 0))"
            )


# --- sends go on while a prune runs -----------------------------------------------------

PRUNED_ROWS = 200_000
LIVE_ROWS = 20_000
WRITE_BATCH = 50
# A dispatcher's flush must never wait on the prune for long (design.md "Retention").
MAX_WRITE_SECONDS = 1.0


async def big_finished_campaign(pool: asyncpg.Pool, rows: int) -> uuid.UUID:
    """A finished campaign of `rows` recipients (every one read), generated in SQL."""
    campaign_id = await seed(pool, [])
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO ledger (campaign_id, phone, status, chunk_index, message_id, updated_at) "
            "SELECT $1, '+62' || (8000000000 + i), 'queued', 0, $3 || ':' || i, "
            "now() - interval '40 days' FROM generate_series(1, $2) AS i",
            campaign_id,
            rows,
            str(campaign_id),
        )
        await connection.execute(
            "INSERT INTO message_statuses (message_id, sent_at, delivered_at, read_at, updated_at) "
            "SELECT $1 || ':' || i, now() - interval '41 days', "
            "now() - interval '41 days', now() - interval '41 days', now() - interval '41 days' "
            "FROM generate_series(1, $2) AS i",
            str(campaign_id),
            rows,
        )
    await age(pool, campaign_id, OLD)
    await pool.execute("ANALYZE ledger")
    await pool.execute("ANALYZE message_statuses")
    return campaign_id


async def dispatcher_like(
    pool: asyncpg.Pool, campaign_id: uuid.UUID, stop: asyncio.Event
) -> list[float]:
    """Record results for a live campaign, `WRITE_BATCH` recipients a statement, as the
    dispatcher's flush does (an UPDATE of the ledger), and fold their statuses as the
    projector does (an upsert into message_statuses); returns each statement's seconds."""
    phones = [
        r["phone"]
        for r in await pool.fetch(
            "SELECT phone FROM ledger WHERE campaign_id = $1 ORDER BY phone", campaign_id
        )
    ]
    latencies: list[float] = []
    position = 0
    while not stop.is_set() and position < len(phones):
        batch = phones[position : position + WRITE_BATCH]
        ids = [f"live:{campaign_id}:{phone}" for phone in batch]
        position += WRITE_BATCH
        started = time.perf_counter()
        await pool.execute(
            "UPDATE ledger AS l SET status = 'queued', message_id = t.message_id, "
            "updated_at = now() FROM unnest($2::text[], $3::text[]) AS t(phone, message_id) "
            "WHERE l.campaign_id = $1 AND l.phone = t.phone AND l.status = 'pending'",
            campaign_id,
            batch,
            ids,
        )
        await pool.execute(
            "INSERT INTO message_statuses (message_id, sent_at, updated_at) "
            "SELECT m, now(), now() FROM unnest($1::text[]) AS m "
            "ON CONFLICT (message_id) DO UPDATE SET sent_at = excluded.sent_at",
            ids,
        )
        latencies.append(time.perf_counter() - started)
    return latencies


@pytest.mark.timeout(600)
async def test_a_prune_does_not_hold_up_a_dispatcher_sending_another_campaign(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    old = await big_finished_campaign(db_pool, PRUNED_ROWS)
    live = await seed(db_pool, [Row(f"+6281{i:09d}") for i in range(LIVE_ROWS)])

    stop = asyncio.Event()
    writer = asyncio.create_task(dispatcher_like(db_pool, live, stop))
    await asyncio.sleep(0.5)
    result = await run_cli(["prune", "--json"], cli_env)
    stop.set()
    latencies = await writer
    assert result.code == OK, result.err
    report = result.json()
    assert str(old) in {c["campaign_id"] for c in report["campaigns"]}
    assert report["ledger_rows"] >= PRUNED_ROWS
    assert not await db_pool.fetchval("SELECT count(*) FROM ledger WHERE campaign_id = $1", old)
    # The writer kept going all along, each statement within the bound.
    assert len(latencies) >= 20
    assert max(latencies) < MAX_WRITE_SECONDS, (
        f"p50 {statistics.median(latencies):.4f}s max {max(latencies):.3f}s"
    )
    queued = await db_pool.fetchval(
        "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'queued'", live
    )
    assert queued == len(latencies) * WRITE_BATCH or queued == LIVE_ROWS


# --- a rebuild after a prune ------------------------------------------------------------


@pytest.fixture
async def own_database(postgres: PostgresServer) -> AsyncIterator[str]:
    """The rebuild replaces all of message_statuses: a database of its own."""
    name = f"prune_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    await migrate_url(url)
    yield url
    await asyncio.to_thread(postgres.drop_database, name)


PROJECTION = {
    "campaign_recipient_status": "SELECT * FROM campaign_recipient_status "
    "ORDER BY campaign_id, phone",
    "campaign_progress": "SELECT * FROM campaign_progress ORDER BY campaign_id, status",
    "message_statuses": "SELECT * FROM message_statuses ORDER BY message_id",
    "status_rejects": "SELECT source_topic, source_partition, source_offset, message_key, "
    "reason FROM status_rejects ORDER BY source_offset",
}


async def projection(pool: asyncpg.Pool) -> dict[str, list[asyncpg.Record]]:
    return {name: await pool.fetch(query) for name, query in PROJECTION.items()}


def events_of(message_id: str, phone: str, rng: random.Random, *, ended: bool) -> list[Any]:
    """A message's webhooks; `ended`: delivered, read or failed (never only 'sent')."""
    events = lifecycle(message_id, phone.removeprefix("+"), rng)
    if ended and len(events) == 1:
        events.append(msgspec.structs.replace(events[0], status="delivered", occurred_at=T + 2))
    return events


async def test_a_rebuild_after_a_prune_rebuilds_the_live_part_exactly(
    kafka_bootstrap: str, make_topic: MakeTopic, own_database: str
) -> None:
    topic = await make_topic("status", partitions=2)
    rng = random.Random(11)
    messages: dict[str, dict[str, str]] = {}
    records = []
    for name, size in (("pruned", 120), ("live", 150), ("old_but_sending", 40)):
        phones = [f"+62{rng.randrange(10**9, 10**10)}" for _ in range(size)]
        messages[name] = {p: f"msg_{name}_{i:04d}" for i, p in enumerate(phones)}
        records += [
            record_of(event)
            for phone, message_id in messages[name].items()
            for event in events_of(message_id, phone, rng, ended=name == "pruned")
        ]
    # One message of the old campaign is still only 'sent': the campaign is not terminal.
    records.append(
        record_of(update("sent", T, message_id="msg_old_but_sending_9999", wamid="wamid.x"))
    )
    messages["old_but_sending"]["+620000000000"] = "msg_old_but_sending_9999"
    # Records PostgreSQL cannot store, one keyed by a message to be pruned, one live.
    records += [
        (key.encode(), hostile(key, {"status": "sent", "timestamp": 99_999_999_999_999}), HEADERS)
        for key in ("msg_pruned_0000", "msg_live_0000")
    ]
    records += rng.sample(records, 60)  # redeliveries
    rng.shuffle(records)
    await produce(kafka_bootstrap, topic, records)

    settings = projector_settings(kafka_bootstrap, own_database, topic, batch_size=101)
    await asyncio.wait_for(run(settings, asyncio.Event(), until_idle=True, serve_metrics=False), 90)
    pool = await create_pool(own_database)
    try:
        ids = {
            name: await seed_campaign(
                pool, [(phone, "queued", message_id) for phone, message_id in recipients.items()]
            )
            for name, recipients in messages.items()
        }
        # Status events are from 2023 already (and the topic says so): only the campaigns'
        # own rows are made old.
        for name in ("pruned", "old_but_sending"):
            await age(pool, ids[name], OLD, statuses=False)
        before = await projection(pool)
        assert len(before["status_rejects"]) == 2
        env = {
            "DATABASE_URL": own_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "STATUS_TOPIC": topic,
        }

        pruned = await run_cli(["prune", "--json"], env)
        assert pruned.code == OK, pruned.err
        assert [c["campaign_id"] for c in pruned.json()["campaigns"]] == [str(ids["pruned"])]
        gone = set(messages["pruned"].values())
        live_part = {
            "campaign_recipient_status": [
                r for r in before["campaign_recipient_status"] if r["campaign_id"] != ids["pruned"]
            ],
            "campaign_progress": [
                r for r in before["campaign_progress"] if r["campaign_id"] != ids["pruned"]
            ],
            "message_statuses": [
                r for r in before["message_statuses"] if r["message_id"] not in gone
            ],
            "status_rejects": [
                r for r in before["status_rejects"] if r["message_key"] != b"msg_pruned_0000"
            ],
        }
        assert await projection(pool) == live_part

        # The topic still holds every pruned event; the rebuild leaves them out.
        rebuilt = await run_cli(["projector", "rebuild", "--json"], env)
        assert rebuilt.code == OK, rebuilt.err
        assert rebuilt.json()["rows"] == len(live_part["message_statuses"])
        assert await projection(pool) == live_part
    finally:
        await pool.close()
