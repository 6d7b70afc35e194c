"""Tier changes mid-campaign (issue 13) through a real `python -m consumer` process.

The sandbox changes a number's tier at run time (`PATCH /_sandbox/config`); the consumer
reads `GET /v1/accounts` every `DISPATCH_ACCOUNTS_REFRESH_SECONDS` and plans every claim
with the tier it last read, without a restart. A rise lets the recipients deferred for
the old tier's window go at once; after a fall the sandbox, which enforces the new tier
from the moment it changed, refuses only what the consumer had reserved under the old
tier before it learned of the fall (docs/dispatch.md, "Tier changes mid-campaign").
The sandbox answers `quota_exceeded` synchronously (a 429), so a refused send is
deferred at once and sent again later: nothing is lost without webhooks.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from sandbox.config import Account, Faults, Latency, Quota, RateLimits, RuntimeConfig
from tests.children import Child, stop_all
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import (
    System,
    accepted_messages,
    assert_exactly_once,
    audience,
    audit,
    eventually,
    publish_campaign,
)

# 10 sends a second for the organisation (a full bucket of 600 allows a burst), 50 ms an
# answer and 2 in flight for tiers up to 250, so a claim takes max(2 * 2,
# min(DISPATCH_BATCH_MAX, 10 per second)) = 10 recipients and a campaign of a few hundred
# is still being sent when its tier changes.
WRITE_PER_MINUTE = 600
BATCH = 10
MAX_SEND_RATE = 2 / 0.050  # in flight / latency: faster than the pacer while it bursts
REFRESH_SECONDS = 0.5
MARGIN_SECONDS = 0.5


def _config(sender: str, tier: int, window: float) -> RuntimeConfig:
    return RuntimeConfig(
        accounts={sender: Account(messaging_tier=tier)},
        rate_limits=RateLimits(write_per_minute=WRITE_PER_MINUTE, read_per_minute=60_000),
        quota=Quota(window_seconds=window, exceeded_mode="sync"),
        faults=Faults(latency=Latency(fixed_ms=50.0)),
    )


def _fast_accounts(system: System, window: float) -> None:
    system.extra.update(
        {
            "QUOTA_WINDOW_SECONDS": str(int(window)),
            "QUOTA_MARGIN_SECONDS": str(MARGIN_SECONDS),
            "DISPATCH_ACCOUNTS_REFRESH_SECONDS": str(REFRESH_SECONDS),
            "DISPATCH_CONCURRENCY": "250:2,2000:10,10000:20,unlimited:50",
        }
    )


async def _set_tier(system: System, sender: str, tier: int) -> float:
    async with httpx.AsyncClient() as client:
        response = await client.patch(
            system.sandbox.control_url + "/config",
            json={"accounts": {sender: {"messaging_tier": tier}}},
        )
    response.raise_for_status()
    return time.time()


async def _number(system: System, sender: str) -> dict[str, Any]:
    numbers: dict[str, Any] = (await audit(system))["numbers"]
    number: dict[str, Any] = numbers.get(sender, {"accepted_sends": 0})
    return number


async def _learned_at(consumer: Child, tier: int) -> float | None:
    """When the consumer logged `tier_changed` to `tier` (its clock; None: not yet)."""
    for line in consumer.log_path.read_text(errors="replace").splitlines():
        if '"tier_changed"' in line:
            entry = json.loads(line)
            if entry.get("after") == tier:
                return float(entry["ts"])
    return None


async def _counts(pool: asyncpg.Pool, campaign: uuid.UUID) -> dict[tuple[str, str | None], int]:
    rows = await pool.fetch(
        "SELECT status, reason, count(*) AS n FROM ledger WHERE campaign_id = $1"
        " GROUP BY status, reason",
        campaign,
    )
    return {(r["status"], r["reason"]): r["n"] for r in rows}


async def _none_pending(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    return not any(status == "pending" for status, _ in await _counts(pool, campaign))


def _created(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["created_at"].replace("Z", "+00:00")).timestamp()


def _peak_window(times: list[float], window: float, after: float) -> int:
    """The most accepted first contacts in any window (t - window, t] ending after `after`."""
    return max(
        (sum(1 for s in times if t - window < s <= t) for t in times if t >= after), default=0
    )


async def test_a_tier_raised_mid_campaign_sends_past_the_old_limit_at_once(
    system: SystemFactory, db_pool: asyncpg.Pool
) -> None:
    sender, window, old, new, recipients = new_sender(), 30.0, 10, 200, 60
    async with system(_config(sender, old, window), [sender]) as sys_:
        _fast_accounts(sys_, window)
        campaign = await publish_campaign(sys_, sender, audience(recipients, seed=131))
        consumer, _ = await sys_.start_consumer("consumer")
        try:
            # The old tier's worth goes out; the rest waits for the window to free.
            await eventually(
                lambda: _deferred_at_least(db_pool, campaign, recipients - old), within=30
            )
            # The claim defers the rest before its own sends are answered: wait for them.
            await eventually(lambda: _accepted_at_least(sys_, sender, old), within=10)
            assert (await _number(sys_, sender))["accepted_sends"] == old
            frees_at = await db_pool.fetchval(
                "SELECT extract(epoch FROM min(next_attempt_at)) FROM ledger"
                " WHERE campaign_id = $1 AND reason = 'deferred_quota'",
                campaign,
            )
            raised_at = await _set_tier(sys_, sender, new)
            await eventually(lambda: _none_pending(db_pool, campaign), within=window / 2)
            finished_at = time.time()
            assert consumer.process.returncode is None, consumer.describe()
        finally:
            await stop_all([consumer])
        learned_at = await _learned_at(consumer, new)
        number = await _number(sys_, sender)
        await assert_exactly_once(sys_, db_pool, campaign, sender, recipients)
    # Without the rise nothing more could have gone before `frees_at`, a window on.
    assert learned_at is not None
    print(
        f"tier {old}->{new}: planned with {new} {learned_at - raised_at:.2f}s after the change, "
        f"all {recipients} sent {finished_at - raised_at:.2f}s after it; the old tier's "
        f"window would have freed {float(frees_at) - raised_at:.2f}s after it"
    )
    assert learned_at - raised_at <= REFRESH_SECONDS + 2.0
    assert finished_at < float(frees_at)
    assert finished_at - raised_at < window / 2
    assert number["max_window_recipients"] == recipients  # past the old limit in one window
    assert number["quota_exceeded"] == 0
    assert number["duplicate_accepts"] == 0


async def test_a_tier_lowered_mid_campaign_defers_the_rest_and_loses_no_one(
    system: SystemFactory, db_pool: asyncpg.Pool
) -> None:
    sender, window, old, new, recipients = new_sender(), 5.0, 200, 40, 150
    async with system(_config(sender, old, window), [sender]) as sys_:
        _fast_accounts(sys_, window)
        campaign = await publish_campaign(sys_, sender, audience(recipients, seed=132))
        consumer, _ = await sys_.start_consumer("consumer")
        try:
            # Lowered once the window holds the new tier: every new recipient the consumer
            # sends to after the change, before it reads the change, is over the new tier.
            await eventually(lambda: _accepted_at_least(sys_, sender, new), within=30, step=0.02)
            lowered_at = await _set_tier(sys_, sender, new)
            await eventually(lambda: _learns(consumer, new), within=10, step=0.05)
            # The window holds more than the new tier allows: the rest waits for it.
            await eventually(lambda: _deferred_at_least(db_pool, campaign, 1), within=10)
            deferred = await _counts(db_pool, campaign)
            await eventually(lambda: _none_pending(db_pool, campaign), within=45, step=0.2)
            assert consumer.process.returncode is None, consumer.describe()
        finally:
            await stop_all([consumer])
        learned_at = await _learned_at(consumer, new)
        number = await _number(sys_, sender)
        messages = await accepted_messages(sys_, sender)
        await assert_exactly_once(sys_, db_pool, campaign, sender, recipients)
    assert learned_at is not None
    times = sorted(_created(m) for m in messages)
    before = sum(1 for t in times if lowered_at - window < t <= lowered_at)
    # Every new recipient sent to after the change is over the new tier until the window
    # frees, so what the sandbox refused is what the consumer sent under the old tier
    # after the change: what it sent before it read the change, plus at most the two
    # batches it held when it did (the rest of the one being sent, the one claimed ahead).
    lag = learned_at - lowered_at
    bound = 2 * BATCH + math.ceil(lag * MAX_SEND_RATE)
    refused = number["quota_exceeded_sync"]
    print(
        f"tier {old}->{new}: {before} in the window at the change, planned with {new} "
        f"{lag:.2f}s later, {refused} sends refused (bound {bound}), "
        f"peak window after the change {_peak_window(times, window, lowered_at)}"
    )
    assert deferred.get(("pending", "deferred_quota"), 0) > 0
    assert lag <= REFRESH_SECONDS + 2.0
    assert refused <= bound
    # The sandbox never counted more than the new tier in a window after the change,
    # beyond what was already in the window when it changed.
    assert _peak_window(times, window, lowered_at) <= max(new, before)
    assert number["duplicate_accepts"] == 0
    assert number["accepted_sends"] == recipients


async def _accepted_at_least(system: System, sender: str, count: int) -> bool:
    return int((await _number(system, sender))["accepted_sends"]) >= count


async def _learns(consumer: Child, tier: int) -> bool:
    return await _learned_at(consumer, tier) is not None


async def _deferred_at_least(pool: asyncpg.Pool, campaign: uuid.UUID, count: int) -> bool:
    return (await _counts(pool, campaign)).get(("pending", "deferred_quota"), 0) >= count
