"""Accepted messages that failed later: each code gets its action, once, against real Postgres."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from consumer.dispatch.context import AccountBook, CampaignStates, DispatchContext
from consumer.dispatch.pacing import RatePacer
from consumer.dispatch.policy import Scope
from consumer.dispatch.reconcile import FailureReconciler, predates_resume
from consumer.dispatch.request import idempotency_key
from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.store import AsyncFailure, DispatchStore
from consumer.kirim.client import KirimClient
from devstack.postgres import PostgresServer
from runtime.db import create_pool
from runtime.migrate import MIGRATIONS_DIR, migrate
from tests.dispatch.harness import new_sender_id, phones, record_failures, seed_campaign

# phone index -> (Kirim code, Meta code, extra statuses folded besides the failure)
CASES = {
    0: ("recipient_not_on_whatsapp", 131026, ()),
    1: ("whatsapp_upstream_error", 131000, ()),
    2: ("quota_exceeded", 131048, ()),
    3: ("template_paused", 132015, ()),
    4: ("recipient_blocked", 1013, ("delivered",)),  # multi-device: delivered wins
    5: (None, None, ("delivered", "read")),  # never failed
}


def reconciler(
    pool: asyncpg.Pool, *, recheck_seconds: float = 0.0, clock: Callable[[], float] = time.time
) -> FailureReconciler:
    settings = DispatchSettings(failure_recheck_seconds=recheck_seconds)
    ctx = DispatchContext(
        settings=settings,
        store=DispatchStore(pool),
        # Nothing listens there: a recheck finds the API unreachable and waits.
        client=KirimClient("http://127.0.0.1:9/v1", "unused", timeout_seconds=1.0),
        pacer=RatePacer(limit_per_minute=60),
        campaigns=CampaignStates(),
        accounts=AccountBook(),
        clock=clock,
        rng=random.Random(3),
    )
    return FailureReconciler(ctx)


async def fold_failure(
    pool: asyncpg.Pool, message_id: str, code: str, provider: int, failed_at: datetime
) -> None:
    """A `failed` status as the projector writes it: folded, and appended to the backlog."""
    await pool.execute(
        """INSERT INTO message_statuses (message_id, failed_at, error_code, provider_code,
               updated_at)
           VALUES ($1, $2, $3, $4, $2)""",
        message_id,
        failed_at,
        code,
        provider,
    )
    await record_failures(pool, [message_id])


async def queue(pool: asyncpg.Pool, campaign: uuid.UUID, phone: str, message_id: str) -> None:
    await pool.execute(
        "UPDATE ledger SET status = 'queued', message_id = $3, queued_at = now()"
        " WHERE campaign_id = $1 AND phone = $2",
        campaign,
        phone,
        message_id,
    )


async def waiting(pool: asyncpg.Pool, message_id: str) -> float | None:
    """When the backlog looks at the message's failure again (None: not waiting)."""
    moment: datetime | None = await pool.fetchval(
        """SELECT w.check_at FROM failure_waits AS w JOIN status_failures AS f USING (seq)
           WHERE f.message_id = $1""",
        message_id,
    )
    return moment.timestamp() if moment is not None else None


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:26].upper()}"


async def test_each_asynchronous_failure_gets_its_action_once(db_pool: asyncpg.Pool) -> None:
    sender = new_sender_id()
    audience = phones(len(CASES))
    campaign = await seed_campaign(db_pool, sender, audience)
    now = datetime.now(UTC)
    for index, (code, provider, extra) in CASES.items():
        message_id = f"msg_{uuid.uuid4().hex[:26].upper()}"
        await db_pool.execute(
            "UPDATE ledger SET status = 'queued', message_id = $3"
            " WHERE campaign_id = $1 AND phone = $2",
            campaign,
            audience[index],
            message_id,
        )
        await db_pool.execute(
            """INSERT INTO message_statuses (message_id, sent_at, delivered_at, read_at, failed_at,
                   error_code, provider_code, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $2)""",
            message_id,
            now,
            now if "delivered" in extra else None,
            now if "read" in extra else None,
            now if code else None,
            code,
            provider,
        )
        if code:
            await record_failures(db_pool, [message_id])

    worker = reconciler(db_pool)
    assert await worker.reconcile_once() >= 5  # the five failures (and any older entries)
    # Past the cursor, and nothing waits: every action moved its row out of 'queued'.
    assert await worker.reconcile_once() == 0

    rows = {
        r["phone"]: r
        for r in await db_pool.fetch("SELECT * FROM ledger WHERE campaign_id = $1", campaign)
    }
    gone, upstream, quota, paused, multi, fine = (rows[p] for p in audience)
    assert (gone["status"], gone["error_code"]) == ("failed", "recipient_not_on_whatsapp")
    assert (
        await db_pool.fetchval("SELECT reason FROM suppressions WHERE phone = $1", audience[0])
        == "recipient_not_on_whatsapp"
    )
    # Sent again under the next key generation: the first key would only replay the failure.
    for row, reason in ((upstream, "retry_backoff"), (quota, "deferred_quota")):
        assert (row["status"], row["generation"], row["message_id"]) == ("pending", 1, None)
        assert row["reason"] == reason
        assert idempotency_key(str(campaign), row["phone"], row["generation"]) != idempotency_key(
            str(campaign), row["phone"]
        )
    assert await db_pool.fetchval(
        "SELECT quota_hold_until > now() FROM senders WHERE phone_number_id = $1", sender
    )
    # The campaign stops; its recipient waits, unsent, for an operator.
    assert (paused["status"], paused["generation"]) == ("pending", 1)
    state = await db_pool.fetchrow(
        "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
    )
    assert state is not None
    assert (state["state"], state["state_reason"]) == ("stopped", "template_paused")
    assert multi["status"] == fine["status"] == "queued"
    view = {
        r["phone"]: (r["status"], r["reason"])
        for r in await db_pool.fetch(
            "SELECT phone, status, reason FROM campaign_recipient_status WHERE campaign_id = $1",
            campaign,
        )
    }
    assert view[audience[0]] == ("failed", None)
    assert view[audience[3]] == ("pending", "paused")
    assert view[audience[4]] == ("delivered", None)
    assert view[audience[5]] == ("read", None)


@pytest.mark.parametrize(
    ("scope", "queued_at", "campaign_changed", "sender_changed", "stale"),
    [
        (Scope.CAMPAIGN, 100.0, 50.0, None, False),  # sent after the last change: real news
        (Scope.CAMPAIGN, 100.0, 150.0, None, True),  # sent before a resume: old news
        (Scope.ORGANISATION, 100.0, 150.0, None, False),  # the sender never changed state
        (Scope.ORGANISATION, 100.0, 50.0, 150.0, True),
        (Scope.SENDER, 200.0, 50.0, 150.0, False),
        (Scope.CAMPAIGN, None, 150.0, None, False),  # unknown send time: take it seriously
    ],
)
def test_a_late_failure_from_before_a_resume_does_not_stop_again(
    scope: Scope,
    queued_at: float | None,
    campaign_changed: float | None,
    sender_changed: float | None,
    stale: bool,
) -> None:
    failure = AsyncFailure(
        campaign_id=uuid.uuid4(),
        phone="+628120000000",
        generation=0,
        message_id="msg_X",
        phone_number_id="106540352242922",
        error_code="template_paused",
        provider_code=132015,
        error_message=None,
        queued_at=queued_at,
        campaign_changed_at=campaign_changed,
        sender_changed_at=sender_changed,
    )
    assert predates_resume(scope, failure) is stale


async def test_a_failure_in_its_grace_period_waits_past_the_cursor(db_pool: asyncpg.Pool) -> None:
    sender = new_sender_id()
    (phone,) = phones(1)
    campaign = await seed_campaign(db_pool, sender, [phone])
    message_id = new_message_id()
    await queue(db_pool, campaign, phone, message_id)
    failed_at = datetime.now(UTC)
    await fold_failure(db_pool, message_id, "whatsapp_upstream_error", 131000, failed_at)
    clock = [failed_at.timestamp() + 1.0]
    worker = reconciler(db_pool, recheck_seconds=30.0, clock=lambda: clock[0])
    while await worker.reconcile_once():
        pass
    # Not acted on, not lost: it waits for the end of its grace period.
    assert await waiting(db_pool, message_id) == pytest.approx(failed_at.timestamp() + 30.0)
    cursor = await db_pool.fetchval("SELECT seq FROM failure_cursor")
    assert cursor >= await db_pool.fetchval(
        "SELECT seq FROM status_failures WHERE message_id = $1", message_id
    )
    clock[0] += 20.0
    while await worker.reconcile_once():  # (other tests' entries share the database)
        pass
    assert await waiting(db_pool, message_id) == pytest.approx(failed_at.timestamp() + 30.0)
    clock[0] += 10.0
    while await worker.reconcile_once():  # due: the API is asked, and is unreachable
        pass
    row = await db_pool.fetchrow("SELECT status, generation FROM ledger WHERE phone = $1", phone)
    assert row is not None
    assert (row["status"], row["generation"]) == ("queued", 0)
    assert await waiting(db_pool, message_id) == pytest.approx(clock[0] + 2.0)


async def test_a_failure_folded_before_the_ledger_knows_the_message_id_is_not_lost(
    db_pool: asyncpg.Pool,
) -> None:
    sender = new_sender_id()
    (phone,) = phones(1)
    campaign = await seed_campaign(db_pool, sender, [phone])
    message_id = new_message_id()
    now = datetime.now(UTC)
    await fold_failure(db_pool, message_id, "recipient_not_on_whatsapp", 131026, now)
    clock = [now.timestamp()]
    worker = reconciler(db_pool, clock=lambda: clock[0])
    while await worker.reconcile_once():
        pass
    check_at = await waiting(db_pool, message_id)
    assert check_at is not None
    # The send's result is recorded a moment later; the next look acts on it.
    await queue(db_pool, campaign, phone, message_id)
    clock[0] = check_at
    assert await worker.reconcile_once() >= 1
    row = await db_pool.fetchrow(
        "SELECT status, error_code FROM ledger WHERE campaign_id = $1", campaign
    )
    assert row is not None
    assert (row["status"], row["error_code"]) == ("failed", "recipient_not_on_whatsapp")
    assert await waiting(db_pool, message_id) is None


async def test_one_pass_at_a_time_across_instances(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    (phone,) = phones(1)
    campaign = await seed_campaign(db_pool, sender, [phone])
    message_id = new_message_id()
    await queue(db_pool, campaign, phone, message_id)
    await fold_failure(db_pool, message_id, "outside_24h_window", 131047, datetime.now(UTC))
    worker = reconciler(db_pool)
    other = await asyncpg.connect(database_url)
    try:
        # Another instance's pass holds the lock: this one skips, and moves nothing.
        await other.execute("SELECT pg_advisory_lock(hashtextextended('reconciler', 0))")
        cursor = await db_pool.fetchval("SELECT seq FROM failure_cursor")
        assert await worker.reconcile_once() == 0
        assert await db_pool.fetchval("SELECT seq FROM failure_cursor") == cursor
    finally:
        await other.close()
    assert await worker.reconcile_once() >= 1
    status = await db_pool.fetchval("SELECT status FROM ledger WHERE campaign_id = $1", campaign)
    assert status == "failed"


async def test_an_upgrade_backfills_the_failures_still_to_act_on(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Migration 0006 on a database whose failures the reconciler of 0005 still had to see."""
    name = f"upgrade_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    for path in sorted(MIGRATIONS_DIR.glob("000[1-5]_*.sql")):
        shutil.copy(path, tmp_path / path.name)
    connection = await asyncpg.connect(url)
    try:
        await migrate(connection, tmp_path)
        pool = await create_pool(url, max_size=2)
        try:
            sender = new_sender_id()
            audience = phones(4)
            campaign = await seed_campaign(pool, sender, audience)
            ids = [new_message_id() for _ in audience]
            for phone, message_id in zip(audience, ids, strict=True):
                await queue(pool, campaign, phone, message_id)
            await pool.execute(
                "UPDATE ledger SET status = 'failed' WHERE message_id = $1", ids[1]
            )  # already acted on
            await pool.execute(
                "UPDATE ledger SET failure_checked_at = now() WHERE message_id = $1", ids[2]
            )  # found delivered by the API
            now = datetime.now(UTC)
            await pool.executemany(
                """INSERT INTO message_statuses (message_id, failed_at, delivered_at,
                       error_code, provider_code, updated_at)
                   VALUES ($1, $2, $3, 'recipient_blocked', 1013, $2)""",
                [
                    (ids[0], now, None),
                    (ids[1], now, None),
                    (ids[2], now, None),
                    (ids[3], now, now),  # delivered after all
                    ("msg_UNKNOWN_TO_THE_LEDGER", now, None),
                ],
            )
            await migrate(connection)
            backfilled = await pool.fetch("SELECT message_id FROM status_failures ORDER BY seq")
            assert {r["message_id"] for r in backfilled} == {ids[0], "msg_UNKNOWN_TO_THE_LEDGER"}
            assert await pool.fetchval("SELECT seq FROM failure_cursor") == 0
            worker = reconciler(pool)
            assert await worker.reconcile_once() == 2
            status = await pool.fetchval("SELECT status FROM ledger WHERE message_id = $1", ids[0])
            assert status == "failed"
        finally:
            await pool.close()
    finally:
        await connection.close()
        await asyncio.to_thread(postgres.drop_database, name)
