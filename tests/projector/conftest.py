"""Helpers for the projector's tests: produce status records, configure, seed a campaign."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from projector.settings import ProjectorSettings

Headers = list[tuple[str, bytes]]
STATUS_HEADERS: Headers = [("X-Kirim-Event", b"message.status")]


async def produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None, Headers]]
) -> None:
    """Append records (key, value, headers) in order; returns once all are acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def projector_settings(
    bootstrap: str, database_url: str, topic: str, **overrides: object
) -> ProjectorSettings:
    base = ProjectorSettings(
        bootstrap_servers=bootstrap,
        database_url=database_url,
        topic=topic,
        group_id=f"projector-{uuid.uuid4().hex[:10]}",
        batch_size=500,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


async def seed_campaign(
    pool: asyncpg.Pool, recipients: Sequence[tuple[str, str, str | None]]
) -> uuid.UUID:
    """A campaign with ledger rows (phone, ledger status, message id), as the consumer writes."""
    campaign_id = uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count)
               VALUES ($1, '106540352242922', '106540352242922', 'promo_flash_sale', 'id_ID',
                   '[]'::jsonb, 'test', 1)""",
            campaign_id,
        )
        await connection.execute(
            """INSERT INTO ledger (campaign_id, phone, status, chunk_index, message_id)
               SELECT $1, r.phone, r.status, 0, r.message_id
               FROM unnest($2::text[], $3::text[], $4::text[]) AS r (phone, status, message_id)""",
            campaign_id,
            [phone for phone, _, _ in recipients],
            [status for _, status, _ in recipients],
            [message_id for _, _, message_id in recipients],
        )
    return campaign_id


async def progress(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count FROM campaign_progress WHERE campaign_id = $1", campaign_id
    )
    return {row["status"]: row["count"] for row in rows}


async def overview_terminal(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> bool:
    terminal: bool = await pool.fetchval(
        "SELECT terminal FROM campaign_overview WHERE campaign_id = $1", campaign_id
    )
    return terminal
