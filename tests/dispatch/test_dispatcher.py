"""The dispatcher against the sandbox and a real PostgreSQL: once each, within tier and rate."""

from __future__ import annotations

import asyncpg

from consumer.dispatch.policy import RetryPolicy
from consumer.dispatch.settings import DispatchSettings
from sandbox.config import Account, Faults, Quota, RateLimits, RuntimeConfig, ServerErrors
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.dispatch.harness import (
    audit,
    count_status,
    ledger,
    new_sender_id,
    phones,
    running_dispatcher,
    seed_campaign,
    wait_for,
)

FAST_RETRY = RetryPolicy(base_seconds=0.05, max_seconds=0.5, in_progress_seconds=0.2)


def dispatch_settings(api_url: str, sender: str, **overrides: object) -> DispatchSettings:
    values: dict[str, object] = {
        "kirim_base_url": api_url,
        "only_senders": frozenset({sender}),
        "retry": FAST_RETRY,
        "ownership_interval_seconds": 0.2,
        "reconcile_interval_seconds": 0.2,
        "flush_seconds": 0.02,
        "request_timeout_seconds": 2.0,
        "quota_margin_seconds": 0.5,
    }
    values.update(overrides)
    return DispatchSettings(**values)  # type: ignore[arg-type]


def sandbox_config(sender: str, **overrides: object) -> RuntimeConfig:
    values: dict[str, object] = {
        "accounts": {sender: Account(messaging_tier=100_000)},
        "rate_limits": RateLimits(write_per_minute=60_000, read_per_minute=60_000),
    }
    values.update(overrides)
    return RuntimeConfig(**values)  # type: ignore[arg-type]


async def test_every_recipient_is_sent_exactly_once(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    audience = phones(300)
    campaign = await seed_campaign(db_pool, sender, audience)
    async with running_sandbox(SandboxSettings(port=0, config=sandbox_config(sender))) as sandbox:
        settings = dispatch_settings(sandbox.api_url, sender)
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: _settled(db_pool, campaign), within=60)
        report = await audit(sandbox.control_url)
    rows = await ledger(db_pool, campaign)
    assert {r["status"] for r in rows} == {"queued"}
    assert len({r["message_id"] for r in rows}) == 300
    assert report["totals"]["accepted_sends"] == 300
    assert report["totals"]["duplicate_accepts"] == 0


async def test_faults_never_cause_a_duplicate(db_pool: asyncpg.Pool, database_url: str) -> None:
    sender = new_sender_id()
    campaign = await seed_campaign(db_pool, sender, phones(300))
    faults = Faults(server_errors=ServerErrors(probability=0.1))
    config = sandbox_config(sender, faults=faults)
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        settings = dispatch_settings(sandbox.api_url, sender)
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: _settled(db_pool, campaign), within=90)
        report = await audit(sandbox.control_url)
    assert await count_status(db_pool, campaign) == {"queued": 300}
    assert report["totals"]["server_errors_injected"] > 0
    assert report["totals"]["accepted_sends"] == 300
    assert report["totals"]["duplicate_accepts"] == 0


async def test_a_250_tier_waits_for_the_next_window_without_quota_errors(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    window = 4.0
    campaign = await seed_campaign(db_pool, sender, phones(400))
    config = sandbox_config(
        sender, accounts={sender: Account(messaging_tier=250)}, quota=Quota(window_seconds=window)
    )
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        settings = dispatch_settings(
            sandbox.api_url, sender, quota_window_seconds=window, quota_margin_seconds=0.5
        )
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: _queued(db_pool, campaign, 250), within=30)
            first_window = await count_status(db_pool, campaign)
            deferred = await db_pool.fetchval(
                "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND reason = 'deferred_quota'",
                campaign,
            )
            await wait_for(lambda: _settled(db_pool, campaign), within=60)
        report = await audit(sandbox.control_url)
    assert first_window == {"queued": 250, "pending": 150}
    assert deferred == 150
    assert await count_status(db_pool, campaign) == {"queued": 400}
    number = report["numbers"][sender]
    assert number["quota_exceeded"] == 0
    assert number["max_window_recipients"] <= 250
    assert report["totals"]["duplicate_accepts"] == 0


async def _settled(pool: asyncpg.Pool, campaign: object) -> bool:
    pending = await pool.fetchval(
        "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'pending'", campaign
    )
    return bool(pending == 0)


async def _queued(pool: asyncpg.Pool, campaign: object, at_least: int) -> bool:
    queued = await pool.fetchval(
        "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'queued'", campaign
    )
    return int(queued) >= at_least
