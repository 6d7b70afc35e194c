"""Priority lanes through the dispatcher, a real PostgreSQL and the sandbox: a
transactional campaign that lands while bulk is paced out overtakes it, on the same
number or on another one sharing the organisation's rate, and bulk keeps its share."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from sandbox.config import Account, Faults, Latency, RateLimits, RuntimeConfig
from sandbox.settings import SandboxSettings
from sandbox.testing import RunningSandbox, running_sandbox
from tests.dispatch.harness import (
    COMPONENTS,
    audit,
    count_status,
    new_sender_id,
    phones,
    running_dispatcher,
    wait_for,
)
from tests.dispatch.test_dispatcher import dispatch_settings

WRITE_PER_MINUTE = 6000  # 100 sends a second: binding, at 20 ms and 50 in flight
SHARE = 0.1


async def seed(pool: asyncpg.Pool, sender: str, recipients: list[str], priority: str) -> uuid.UUID:
    """A campaign in the ledger, announced as intake does (NOTIFY on commit)."""
    campaign_id = uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count,
                   priority)
               VALUES ($1, $2, $2, 'promo_flash_sale', 'id_ID', $3, 'test', 1, $4)""",
            campaign_id,
            sender,
            COMPONENTS,
            priority,
        )
        await connection.copy_records_to_table(
            "ledger",
            records=[(campaign_id, phone, "pending", 0) for phone in recipients],
            columns=["campaign_id", "phone", "status", "chunk_index"],
        )
        await connection.execute("SELECT pg_notify('ledger_pending', $1)", str(campaign_id))
    return campaign_id


def config(*senders: str) -> RuntimeConfig:
    return RuntimeConfig(
        accounts={s: Account(messaging_tier=100_000) for s in senders},
        rate_limits=RateLimits(write_per_minute=WRITE_PER_MINUTE, read_per_minute=60_000),
        faults=Faults(latency=Latency(fixed_ms=20.0)),
    )


async def empty_the_bucket(sandbox: RunningSandbox) -> None:
    """The sandbox's bucket starts full (a minute of sends at once); shrinking and
    restoring the plan keeps one token, so the rate binds from the first send."""
    async with httpx.AsyncClient() as client:
        for per_minute in (1, WRITE_PER_MINUTE):
            response = await client.patch(
                sandbox.control_url + "/config",
                json={"rate_limits": {"write_per_minute": per_minute}},
            )
            response.raise_for_status()


async def sends(sandbox: RunningSandbox, sender: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            sandbox.control_url + "/messages",
            params={"phone_number_id": sender, "limit": "10000"},
        )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["data"]
    return messages


def at(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["created_at"].replace("Z", "+00:00")).timestamp()


async def accepted(sandbox: RunningSandbox, count: int) -> bool:
    return int((await audit(sandbox.control_url))["totals"]["accepted_sends"]) >= count


async def settled(pool: asyncpg.Pool, *campaigns: uuid.UUID) -> bool:
    for campaign in campaigns:
        if "pending" in await count_status(pool, campaign):
            return False
    return True


def check_overtaking(
    urgent: list[float], bulk: list[float], landed: float, urgent_count: int
) -> tuple[float, float]:
    """The transactional sends came soon after landing and before bulk ended, bulk kept
    its share meanwhile; returns (first send after landing, bulk's share)."""
    urgent, bulk = sorted(urgent), sorted(bulk)
    assert len(urgent) == urgent_count
    first, last = urgent[0], urgent[-1]
    during = sum(1 for t in bulk if first <= t <= last)
    share = during / (during + len(urgent))
    print(
        f"first transactional send {first - landed:.3f}s after its rows landed, all "
        f"{len(urgent)} in {last - first:.2f}s; bulk {during} sends meanwhile ({share:.1%}), "
        f"bulk's last send {bulk[-1] - last:.2f}s after"
    )
    assert first - landed < 1.0
    assert last < bulk[-1]  # all of it before bulk finished
    # Bulk kept sending, at about its share of the turns (the gate's rule is exact when
    # both wait; the ends of the interval may add or take a send or two).
    assert SHARE / 2 <= share <= 2 * SHARE
    return first - landed, share


async def test_a_transactional_campaign_overtakes_bulk_on_the_same_number(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    bulk_phones, urgent_phones = phones(800, "+62812"), phones(100, "+62813")
    async with running_sandbox(SandboxSettings(port=0, config=config(sender))) as sandbox:
        await empty_the_bucket(sandbox)
        settings = dispatch_settings(
            sandbox.api_url, sender, write_per_minute=WRITE_PER_MINUTE, bulk_min_share=SHARE
        )
        bulk = await seed(db_pool, sender, bulk_phones, "bulk")
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: accepted(sandbox, 150), within=30, step=0.02)
            urgent = await seed(db_pool, sender, urgent_phones, "transactional")
            landed = time.time()
            await wait_for(lambda: settled(db_pool, bulk, urgent), within=60)
        messages = await sends(sandbox, sender)
        report = await audit(sandbox.control_url)
    urgent_set = set(urgent_phones)
    check_overtaking(
        [at(m) for m in messages if m["to"] in urgent_set],
        [at(m) for m in messages if m["to"] not in urgent_set],
        landed,
        len(urgent_phones),
    )
    assert await count_status(db_pool, bulk) == {"queued": 800}
    assert await count_status(db_pool, urgent) == {"queued": 100}
    assert report["totals"]["accepted_sends"] == 900
    assert report["totals"]["duplicate_accepts"] == 0
    assert report["totals"]["rate_limited"] == 0


async def test_a_transactional_campaign_on_another_number_overtakes_bulk_at_the_shared_rate(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    bulk_sender, urgent_sender = new_sender_id(), new_sender_id()
    bulk_phones, urgent_phones = phones(800, "+62812"), phones(100, "+62813")
    runtime = config(bulk_sender, urgent_sender)
    async with running_sandbox(SandboxSettings(port=0, config=runtime)) as sandbox:
        await empty_the_bucket(sandbox)
        settings = dispatch_settings(
            sandbox.api_url,
            bulk_sender,
            only_senders=frozenset({bulk_sender, urgent_sender}),
            write_per_minute=WRITE_PER_MINUTE,
            bulk_min_share=SHARE,
        )
        bulk = await seed(db_pool, bulk_sender, bulk_phones, "bulk")
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: accepted(sandbox, 150), within=30, step=0.02)
            urgent = await seed(db_pool, urgent_sender, urgent_phones, "transactional")
            landed = time.time()
            await wait_for(lambda: settled(db_pool, bulk, urgent), within=60)
        bulk_sends = await sends(sandbox, bulk_sender)
        urgent_sends = await sends(sandbox, urgent_sender)
        report = await audit(sandbox.control_url)
    check_overtaking(
        [at(m) for m in urgent_sends], [at(m) for m in bulk_sends], landed, len(urgent_phones)
    )
    assert await count_status(db_pool, bulk) == {"queued": 800}
    assert await count_status(db_pool, urgent) == {"queued": 100}
    assert report["totals"]["accepted_sends"] == 900
    assert report["totals"]["duplicate_accepts"] == 0
    assert report["totals"]["rate_limited"] == 0
