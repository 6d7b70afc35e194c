"""Quiet hours in the dispatcher (quiet_deferral.py), against PostgreSQL and the sandbox.

The quiet hours are chosen around the current time in Jakarta (UTC+7), where the
+62815 numbers are; Berlin's numbers (+49151) are five or six hours behind, outside
them. The rule itself is tested in test_quiet.py; here, what the claim does with it.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from prometheus_client import REGISTRY

from consumer.dispatch.store import DispatchStore, DueRow, at
from sandbox.config import Account, RateLimits
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from schemas.requests import QuietHours
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

JAKARTA = ZoneInfo("Asia/Jakarta")


def night_in_jakarta(now: float) -> tuple[QuietHours, float]:
    """Quiet hours from an hour ago to two hours on in Jakarta, and when they end."""
    local = datetime.fromtimestamp(now, JAKARTA).replace(second=0, microsecond=0)
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return QuietHours(start=f"{start:%H:%M}", end=f"{end:%H:%M}"), end.timestamp()


async def set_quiet_hours(pool: asyncpg.Pool, campaign: uuid.UUID, hours: QuietHours) -> None:
    await pool.execute(
        "UPDATE campaigns SET quiet_hours = $2 WHERE campaign_id = $1",
        campaign,
        {"start": hours.start, "end": hours.end},
    )


async def reasons(pool: asyncpg.Pool, campaign: uuid.UUID) -> dict[tuple[str, str | None], int]:
    rows = await pool.fetch(
        "SELECT status, reason, count(*) AS n FROM ledger WHERE campaign_id = $1"
        " GROUP BY status, reason",
        campaign,
    )
    return {(r["status"], r["reason"]): r["n"] for r in rows}


def quiet_deferred(sender: str) -> float:
    value = REGISTRY.get_sample_value("broadcast_dispatch_quiet_deferred_total", {"sender": sender})
    return value or 0.0


async def test_a_campaign_claimed_in_its_quiet_hours_waits_and_uses_no_quota(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender, now = new_sender_id(), time.time()
    hours, ends_at = night_in_jakarta(now)
    asleep, awake = phones(3_000, prefix="+62815"), phones(30, prefix="+49151")
    quiet = await seed_campaign(db_pool, sender, asleep + awake)
    await set_quiet_hours(db_pool, quiet, hours)
    plain = await seed_campaign(db_pool, sender, phones(100, prefix="+62816"))
    # 10 sends a second: a claim takes ten recipients, so 3,000 deferred a claim at a
    # time would take 300 claims; the sweep takes them 1,000 a statement.
    config = sandbox_config(
        sender,
        accounts={sender: Account(messaging_tier=250)},
        rate_limits=RateLimits(write_per_minute=600, read_per_minute=60_000),
    )
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        settings = dispatch_settings(sandbox.api_url, sender)
        async with running_dispatcher(settings, db_pool, database_url):
            started = time.monotonic()
            await wait_for(
                lambda: _reached(db_pool, quiet, ("pending", "quiet_hours"), len(asleep)),
                within=30,
            )
            deferred_in = time.monotonic() - started
            await wait_for(lambda: _reached(db_pool, plain, ("queued", None), 100), within=60)
            await wait_for(lambda: _reached(db_pool, quiet, ("queued", None), 30), within=60)
            settled = quiet_deferred(sender)
            await wait_for(lambda: _idle_for(db_pool, quiet, 2.0), within=10)
            again = quiet_deferred(sender)
        report = await audit(sandbox.control_url)
    print(f"3,000 quiet recipients deferred {deferred_in:.2f}s after the start")
    assert deferred_in < 10
    # The other campaign was not held up, and Berlin's recipients of the quiet one went.
    assert await count_status(db_pool, plain) == {"queued": 100}
    assert await reasons(db_pool, quiet) == {
        ("pending", "quiet_hours"): len(asleep),
        ("queued", None): len(awake),
    }
    # Each waits for the end of its window, and used no quota.
    waits = await db_pool.fetch(
        "SELECT DISTINCT next_attempt_at FROM ledger WHERE campaign_id = $1 AND status = 'pending'",
        quiet,
    )
    assert [r["next_attempt_at"] for r in waits] == [at(ends_at)]
    contacts = await db_pool.fetchval(
        "SELECT count(*) FROM quota_contacts WHERE budget_key = $1", f"number:{sender}"
    )
    assert contacts == 130
    assert report["totals"]["accepted_sends"] == 130
    # Deferred once each: no claim took them again while they wait.
    assert settled == again == len(asleep)


async def _reached(
    pool: asyncpg.Pool, campaign: uuid.UUID, key: tuple[str, str | None], count: int
) -> bool:
    return (await reasons(pool, campaign)).get(key, 0) >= count


async def _idle_for(pool: asyncpg.Pool, campaign: uuid.UUID, seconds: float) -> bool:
    """True once no row of the campaign has changed for `seconds`."""
    changed = await pool.fetchval(
        "SELECT extract(epoch FROM now() - max(updated_at)) FROM ledger WHERE campaign_id = $1",
        campaign,
    )
    return float(changed) >= seconds


async def test_the_store_defers_each_row_until_its_own_instant(db_pool: asyncpg.Pool) -> None:
    store, sender, now = DispatchStore(db_pool), new_sender_id(), time.time()
    numbers = phones(3, prefix="+62815")
    campaign = await seed_campaign(db_pool, sender, numbers)
    rows = [DueRow(campaign, phone, None, 0, 0, None) for phone in numbers[:2]]
    await store.defer_quiet([(rows[0], now + 60), (rows[1], now + 120)])
    found = await db_pool.fetch(
        "SELECT phone, reason, next_attempt_at FROM ledger WHERE campaign_id = $1", campaign
    )
    assert {r["phone"]: (r["reason"], r["next_attempt_at"]) for r in found} == {
        numbers[0]: ("quiet_hours", at(now + 60)),
        numbers[1]: ("quiet_hours", at(now + 120)),
        numbers[2]: (None, None),
    }
