"""Seed campaigns straight into the ledger and run a dispatcher against a sandbox."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from consumer.dispatch.dispatcher import Dispatcher
from consumer.dispatch.settings import DispatchSettings
from projector.store import append_failures

COMPONENTS = [{"type": "body", "parameters": [{"type": "text", "text": "hello"}]}]


def new_sender_id() -> str:
    return str(random.randint(10**14, 10**15 - 1))


def phones(count: int, prefix: str = "+62812") -> list[str]:
    base = random.randint(0, 10**6)
    return [f"{prefix}{(base + i) % 10**7:07d}" for i in range(count)]


async def seed_campaign(
    pool: asyncpg.Pool,
    sender: str,
    recipients: list[str],
    *,
    template: str = "promo_flash_sale",
    state: str = "active",
) -> uuid.UUID:
    campaign_id = uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count, state)
               VALUES ($1, $2, $2, $3, 'id_ID', $4, 'test', 1, $5)""",
            campaign_id,
            sender,
            template,
            COMPONENTS,
            state,
        )
        await connection.copy_records_to_table(
            "ledger",
            records=[(campaign_id, phone, "pending", 0) for phone in recipients],
            columns=["campaign_id", "phone", "status", "chunk_index"],
        )
    return campaign_id


async def ledger(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM ledger WHERE campaign_id = $1 ORDER BY phone", campaign_id
    )


async def count_status(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM ledger WHERE campaign_id = $1 GROUP BY status",
        campaign_id,
    )
    return {r["status"]: r["n"] for r in rows}


async def record_failures(pool: asyncpg.Pool, message_ids: list[str]) -> None:
    """What the projector appends to `status_failures` with the failed statuses it folds
    (for tests that write `message_statuses` themselves)."""
    async with pool.acquire() as connection, connection.transaction():
        await append_failures(connection, sorted(message_ids))


async def audit(control_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(control_url + "/audit")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        data: dict[str, Any] = body.get("data", body)
        return data


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float, step: float = 0.1
) -> None:
    async with asyncio.timeout(within):
        while not await predicate():
            await asyncio.sleep(step)


@asynccontextmanager
async def running_dispatcher(
    settings: DispatchSettings, pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(settings, pool, database_url, rng=random.Random(7))
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
