"""Pauses bite within a second; a revoked key stops sending and loses no one."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.tiers import UNLIMITED
from sandbox.config import Faults, Latency, RuntimeConfig
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.dispatch.harness import (
    audit,
    count_status,
    new_sender_id,
    phones,
    running_dispatcher,
    seed_campaign,
    wait_for,
)
from tests.dispatch.test_dispatcher import dispatch_settings, sandbox_config

# Two sends in flight against 20 ms of latency: about 100 sends a second, so the
# 1,000-recipient campaign runs ~10 s and a pause or revoke lands in its middle
# (the rate bucket alone would let the whole campaign out in one burst).
SLOW_AUDIENCE = 1000


def slow_sandbox(sender: str) -> RuntimeConfig:
    return sandbox_config(sender, faults=Faults(latency=Latency(fixed_ms=20.0)))


def slow_dispatch(api_url: str, sender: str, **overrides: object) -> DispatchSettings:
    return dispatch_settings(api_url, sender, concurrency={UNLIMITED: 2}, **overrides)


async def _queued(pool: asyncpg.Pool, campaign: uuid.UUID) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'queued'", campaign
        )
    )


async def _set_state(pool: asyncpg.Pool, campaign: uuid.UUID, state: str) -> None:
    # What intake does for a control event: update and notify in one transaction.
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "UPDATE campaigns SET state = $2 WHERE campaign_id = $1", campaign, state
        )
        await connection.execute("SELECT pg_notify('campaign_state', $1)", str(campaign))


async def test_a_pause_stops_sends_within_a_second_and_resume_finishes(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    campaign = await seed_campaign(db_pool, sender, phones(SLOW_AUDIENCE))
    async with running_sandbox(SandboxSettings(port=0, config=slow_sandbox(sender))) as sandbox:
        settings = slow_dispatch(sandbox.api_url, sender)
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: _at_least(db_pool, campaign, 50), within=30)
            await _set_state(db_pool, campaign, "paused")
            await asyncio.sleep(1.0)
            after_a_second = await _queued(db_pool, campaign)
            await asyncio.sleep(2.0)
            later = await _queued(db_pool, campaign)
            view = await db_pool.fetch(
                "SELECT DISTINCT reason FROM campaign_recipient_status"
                " WHERE campaign_id = $1 AND status = 'pending'",
                campaign,
            )
            await _set_state(db_pool, campaign, "active")
            await wait_for(lambda: _at_least(db_pool, campaign, SLOW_AUDIENCE), within=60)
        report = await audit(sandbox.control_url)
    assert later == after_a_second < SLOW_AUDIENCE
    assert {r["reason"] for r in view} == {"paused"}
    assert report["totals"]["accepted_sends"] == SLOW_AUDIENCE
    assert report["totals"]["duplicate_accepts"] == 0


async def test_a_revoked_key_stops_the_sender_and_nothing_is_lost(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    campaign = await seed_campaign(db_pool, sender, phones(SLOW_AUDIENCE))
    async with running_sandbox(SandboxSettings(port=0, config=slow_sandbox(sender))) as sandbox:
        settings = slow_dispatch(sandbox.api_url, sender, accounts_refresh_seconds=0.5)
        async with running_dispatcher(settings, db_pool, database_url), httpx.AsyncClient() as http:
            await wait_for(lambda: _at_least(db_pool, campaign, 50), within=30)
            revoked = await http.patch(
                sandbox.control_url + "/config", json={"api_key": "kdv_live_revokedrevokedrevoked0"}
            )
            revoked.raise_for_status()
            await wait_for(lambda: _sender_stopped(db_pool, sender), within=10)
            stopped = await count_status(db_pool, campaign)
            reasons = await db_pool.fetch(
                "SELECT DISTINCT reason FROM campaign_recipient_status"
                " WHERE campaign_id = $1 AND status = 'pending'",
                campaign,
            )
            restored = await http.patch(sandbox.control_url + "/config", json={"api_key": None})
            restored.raise_for_status()
            await wait_for(lambda: _at_least(db_pool, campaign, SLOW_AUDIENCE), within=60)
        report = await audit(sandbox.control_url)
    assert stopped.get("failed", 0) == 0
    assert stopped["pending"] > 0
    assert {r["reason"] for r in reasons} == {"paused"}
    assert await count_status(db_pool, campaign) == {"queued": SLOW_AUDIENCE}
    assert report["totals"]["duplicate_accepts"] == 0


async def _at_least(pool: asyncpg.Pool, campaign: uuid.UUID, count: int) -> bool:
    return await _queued(pool, campaign) >= count


async def _sender_stopped(pool: asyncpg.Pool, sender: str) -> bool:
    state = await pool.fetchval(
        "SELECT state_reason FROM senders WHERE phone_number_id = $1 AND state = 'stopped'", sender
    )
    return bool(state == "invalid_api_key")
