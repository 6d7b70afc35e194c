"""Exactly once through crashes: real consumer processes, SIGKILLed and restarted, a faulty API.

Each test reconciles the ledger with the messages the sandbox accepted: no recipient
accepted twice, every one accepted or failed with a code, the ledger's message id for
each phone the one the API gave.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from sandbox.config import (
    Account,
    Faults,
    LateAnswers,
    Latency,
    RateLimits,
    RuntimeConfig,
    ServerErrors,
)
from tests.children import Child, kill, stop_all
from tests.restarts import restart_kafka, restart_postgres
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import (
    System,
    assert_exactly_once,
    audience,
    audit,
    eventually,
    ledger_counts,
    owned_senders,
    publish_campaign,
)


def faulty_api(senders: list[str], write_per_minute: int, faults: Faults) -> RuntimeConfig:
    return RuntimeConfig(
        accounts={sender: Account(messaging_tier=100_000) for sender in senders},
        rate_limits=RateLimits(write_per_minute=write_per_minute, read_per_minute=60_000),
        faults=faults,
    )


async def _pending(pool: asyncpg.Pool, campaign: uuid.UUID) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'pending'", campaign
        )
    )


async def _all_rows(pool: asyncpg.Pool, campaign: uuid.UUID, count: int) -> bool:
    return sum((await ledger_counts(pool, campaign)).values()) == count


async def test_kill_9_five_times_under_5xx_and_late_answers(
    system: SystemFactory, db_pool: asyncpg.Pool
) -> None:
    sender = new_sender()
    recipients = 5000
    faults = Faults(
        server_errors=ServerErrors(probability=0.05),
        # Processed and stored, but answered after the client's 1.5 s timeout.
        late_answers=LateAnswers(probability=0.02, delay_seconds=3.0),
        latency=Latency(fixed_ms=10.0),
    )
    rng = random.Random(20261127)
    children: list[Child] = []
    async with system(faulty_api([sender], 60_000, faults), [sender]) as sys_:
        # Four in flight against 10 ms: ~300 sends a second, ~17 s of sending, so five
        # kills 1-3 s apart all land mid-campaign.
        sys_.extra["DISPATCH_CONCURRENCY"] = "100000:4"
        campaign = await publish_campaign(sys_, sender, audience(recipients, seed=1))
        try:
            consumer, _ = await sys_.start_consumer("consumer-0")
            children.append(consumer)
            await eventually(lambda: _all_rows(db_pool, campaign, recipients), within=60)
            kills = 0
            while kills < 5 and await _pending(db_pool, campaign) > 0:
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                await kill(consumer)
                kills += 1
                consumer, _ = await sys_.start_consumer(f"consumer-{kills}")
                children.append(consumer)
            await eventually(lambda: _settled(db_pool, campaign), within=180, step=0.5)
        finally:
            await stop_all(children)
        report = await _audit_for(sys_, sender)
        await assert_exactly_once(sys_, db_pool, campaign, sender, recipients)
    assert kills == 5
    assert report["server_errors_injected"] > 0
    assert report["late_answers"] > 0
    assert report["duplicate_accepts"] == 0


async def test_broker_and_postgres_crash_mid_campaign(
    system: SystemFactory, db_pool: asyncpg.Pool, kafka: KafkaBroker, postgres: PostgresServer
) -> None:
    sender = new_sender()
    recipients = 3000
    # Four in flight against 20 ms of latency: ~200 sends a second, so the campaign
    # runs ~15 s and both crashes land in its middle.
    faults = Faults(latency=Latency(fixed_ms=20.0), server_errors=ServerErrors(probability=0.02))
    children: list[Child] = []
    async with system(faulty_api([sender], 60_000, faults), [sender]) as sys_:
        sys_.extra["DISPATCH_CONCURRENCY"] = "100000:4"
        campaign = await publish_campaign(sys_, sender, audience(recipients, seed=2))
        try:
            consumer, _ = await sys_.start_consumer("consumer")
            children.append(consumer)
            await eventually(lambda: _queued_at_least(db_pool, campaign, 600), within=60)
            await restart_postgres(postgres, crash=True)
            await eventually(lambda: _queued_at_least(db_pool, campaign, 1500), within=60, step=0.5)
            await restart_kafka(kafka, crash=True)
            await eventually(lambda: _settled(db_pool, campaign), within=120, step=0.5)
            assert consumer.process.returncode is None, consumer.describe()
        finally:
            await stop_all(children)
        report = await _audit_for(sys_, sender)
        await assert_exactly_once(sys_, db_pool, campaign, sender, recipients)
    assert report["duplicate_accepts"] == 0


async def test_two_instances_share_senders_and_take_over_after_kill_9(
    system: SystemFactory, db_pool: asyncpg.Pool
) -> None:
    senders = [new_sender(), new_sender()]
    recipients = 2000
    faults = Faults(latency=Latency(fixed_ms=20.0))
    children: list[Child] = []
    async with system(faulty_api(senders, 60_000, faults), senders) as sys_:
        sys_.extra["DISPATCH_CONCURRENCY"] = "100000:2"
        campaigns = [
            await publish_campaign(sys_, sender, audience(recipients, seed=10 + i))
            for i, sender in enumerate(senders)
        ]
        try:
            first, first_port = await sys_.start_consumer("consumer-a")
            second, second_port = await sys_.start_consumer("consumer-b")
            children += [first, second]

            async def shared() -> bool:
                owned = [await owned_senders(first_port), await owned_senders(second_port)]
                return owned == [1.0, 1.0]

            await eventually(shared, within=60, step=0.2)
            assert all([await _pending(db_pool, c) > 0 for c in campaigns])
            await kill(first)
            killed_at = time.monotonic()

            async def took_over() -> bool:
                return await owned_senders(second_port) == 2.0

            await eventually(took_over, within=30, step=0.1)
            takeover_seconds = time.monotonic() - killed_at
            await eventually(lambda: _all_settled(db_pool, campaigns), within=120, step=0.5)
        finally:
            await stop_all(children)
        for sender, campaign in zip(senders, campaigns, strict=True):
            await assert_exactly_once(sys_, db_pool, campaign, sender, recipients)
    assert takeover_seconds < 10


async def _settled(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    counts = await ledger_counts(pool, campaign)
    return bool(counts) and counts.get("pending", 0) == 0


async def _all_settled(pool: asyncpg.Pool, campaigns: list[uuid.UUID]) -> bool:
    return all([await _settled(pool, campaign) for campaign in campaigns])


async def _queued_at_least(pool: asyncpg.Pool, campaign: uuid.UUID, count: int) -> bool:
    return (await ledger_counts(pool, campaign)).get("queued", 0) >= count


async def _audit_for(sys_: System, sender: str) -> dict[str, int]:
    number: dict[str, int] = (await audit(sys_))["numbers"][sender]
    return number
