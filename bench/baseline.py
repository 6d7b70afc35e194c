"""The naive broadcast script every benchmark compares against (the common recipe).

An asyncio semaphore of 10 (or as told) over httpx posts with the sha256
idempotency key, `sleep(Retry-After)` on 429, and one upsert per recipient. It
keeps no ledger of its own: restarted, it starts again from the first recipient.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx

from runtime import defaults

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS baseline_results (
    campaign_id text NOT NULL, phone text NOT NULL, status text NOT NULL, message_id text,
    PRIMARY KEY (campaign_id, phone))"""

UPSERT = """INSERT INTO baseline_results (campaign_id, phone, status, message_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (campaign_id, phone) DO UPDATE SET status = excluded.status,
    message_id = excluded.message_id"""


async def run_baseline(
    api_url: str,
    sender: str,
    campaign_id: str,
    phones: Sequence[str],
    pool: asyncpg.Pool,
    *,
    concurrency: int = 10,
    components: list[Any] | None = None,
) -> dict[str, int]:
    """Send to everyone; returns counts of answers by HTTP status (429s included)."""
    await pool.execute(CREATE_TABLE)
    semaphore = asyncio.Semaphore(concurrency)
    statuses: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {defaults.KIRIM_API_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as client:

        async def send(phone: str) -> None:
            async with semaphore:
                key = hashlib.sha256(f"{campaign_id}:{phone}".encode()).hexdigest()
                body = {
                    "messaging_product": "whatsapp",
                    "to": phone,
                    "type": "template",
                    "template": {
                        "name": defaults.DEFAULT_TEMPLATE,
                        "language": {"code": defaults.DEFAULT_TEMPLATE_LANGUAGE},
                        "components": components or [],
                    },
                }
                while True:
                    response = await client.post(
                        f"{api_url}/{sender}/messages", json=body, headers={"Idempotency-Key": key}
                    )
                    statuses[str(response.status_code)] = (
                        statuses.get(str(response.status_code), 0) + 1
                    )
                    if response.status_code != 429:
                        break
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                data = response.json().get("data") or {}
                await pool.execute(
                    UPSERT, campaign_id, phone, str(response.status_code), data.get("id")
                )

        await asyncio.gather(*(send(phone) for phone in phones))
    return statuses
