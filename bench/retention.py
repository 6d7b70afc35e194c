"""Retention: what deleting a finished campaign costs the sends of another one.

    .venv/bin/python -m bench.retention [--rows N] [--batch-size N]

A private PostgreSQL; a finished campaign of `--rows` recipients (default 1,000,000,
every message read, 40 days old) and a live one whose recipients a dispatcher-like
writer records as sent, 50 a statement (an UPDATE of the ledger and an upsert into
message_statuses, the dispatcher's flush and the projector's fold), without pause.
Three phases, the writer's statement latency measured in each: alone; while
`broadcast prune` deletes the finished campaign in batches; while one DELETE
statement (one transaction) deletes a freshly seeded copy. docs/design.md
"Retention" quotes the result.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

import asyncpg

from cli.prune import prune
from cli.settings import CliSettings
from devstack.postgres import PostgresServer
from devstack.procs import free_port
from runtime.migrate import migrate_url

WRITE_BATCH = 50
LIVE_ROWS = 100_000


async def seed_finished(pool: asyncpg.Pool, rows: int) -> uuid.UUID:
    campaign_id = uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count,
                   created_at, updated_at)
               VALUES ($1, 'x', '106540352242922', 't', 'id_ID', '[]', 'f', 1,
                       now() - interval '40 days', now() - interval '40 days')""",
            campaign_id,
        )
        await connection.execute(
            "INSERT INTO ledger (campaign_id, phone, status, chunk_index, message_id, "
            "components, updated_at) "
            "SELECT $1, '+62' || (8000000000 + i), 'queued', 0, $3 || ':' || i, "
            """'[{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}]', """
            "now() - interval '40 days' FROM generate_series(1, $2) AS i",
            campaign_id,
            rows,
            str(campaign_id),
        )
        await connection.execute(
            "INSERT INTO message_statuses (message_id, wamid, phone_number_id, recipient_id, "
            "sent_at, delivered_at, read_at, updated_at) "
            "SELECT $1 || ':' || i, 'wamid.' || $1 || ':' || i, '106540352242922', "
            "'62' || (8000000000 + i), now() - interval '41 days', now() - interval '41 days', "
            "now() - interval '41 days', now() - interval '41 days' "
            "FROM generate_series(1, $2) AS i",
            str(campaign_id),
            rows,
        )
    return campaign_id


async def seed_live(pool: asyncpg.Pool) -> tuple[uuid.UUID, list[str]]:
    campaign_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
               template_language, template_components, header_fingerprint, chunk_count)
           VALUES ($1, 'x', '106540352242923', 't', 'id_ID', '[]', 'f', 1)""",
        campaign_id,
    )
    await pool.execute(
        "INSERT INTO ledger (campaign_id, phone, status, chunk_index) "
        "SELECT $1, '+63' || (8000000000 + i), 'pending', 0 FROM generate_series(1, $2) AS i",
        campaign_id,
        LIVE_ROWS,
    )
    rows = await pool.fetch(
        "SELECT phone FROM ledger WHERE campaign_id = $1 ORDER BY phone", campaign_id
    )
    phones = [r["phone"] for r in rows]
    return campaign_id, phones


class Writer:
    """Records sends of the live campaign until stopped; keeps each statement's seconds."""

    def __init__(self, pool: asyncpg.Pool, campaign_id: uuid.UUID, phones: list[str]) -> None:
        self.pool, self.campaign_id, self.phones = pool, campaign_id, phones
        self.position = 0

    async def run(self, stop: asyncio.Event) -> list[float]:
        latencies: list[float] = []
        while not stop.is_set():
            # Round and round the live campaign: the same rows, updated again.
            start = self.position % len(self.phones)
            batch = self.phones[start : start + WRITE_BATCH]
            self.position += WRITE_BATCH
            ids = [f"live:{phone}" for phone in batch]
            started = time.perf_counter()
            await self.pool.execute(
                "UPDATE ledger AS l SET status = 'queued', message_id = t.m, updated_at = now() "
                "FROM unnest($2::text[], $3::text[]) AS t(phone, m) "
                "WHERE l.campaign_id = $1 AND l.phone = t.phone",
                self.campaign_id,
                batch,
                ids,
            )
            await self.pool.execute(
                "INSERT INTO message_statuses (message_id, sent_at, updated_at) "
                "SELECT m, now(), now() FROM unnest($1::text[]) AS m "
                "ON CONFLICT (message_id) DO UPDATE SET sent_at = excluded.sent_at",
                ids,
            )
            latencies.append(time.perf_counter() - started)
        return latencies


async def measure(writer: Writer, work: Awaitable[object] | float) -> tuple[float, list[float]]:
    """Run the writer during `work` (or for that many seconds); the work's seconds, latencies."""
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    if isinstance(work, float):
        await asyncio.sleep(work)
    else:
        await work
    seconds = time.perf_counter() - started
    stop.set()
    return seconds, await task


def row(name: str, seconds: float, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate = len(latencies) * WRITE_BATCH / seconds
    return (
        f"| {name} | {seconds:.1f} | {len(latencies):,} | {rate:,.0f} | "
        f"{statistics.median(ordered) * 1000:.1f} | {p99 * 1000:.1f} | {ordered[-1] * 1000:.0f} |"
    )


async def single_delete(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "DELETE FROM message_statuses AS ms USING ledger AS l "
            "WHERE l.campaign_id = $1 AND ms.message_id = l.message_id",
            campaign_id,
        )
        await connection.execute("DELETE FROM campaigns WHERE campaign_id = $1", campaign_id)


async def main(rows: int, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        server = PostgresServer(Path(scratch) / "pg", port=free_port())
        server.start()
        try:
            server.ensure_database("retention")
            url = server.url("retention")
            await migrate_url(url)
            pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
            live, phones = await seed_live(pool)
            writer = Writer(pool, live, phones)
            await seed_finished(pool, rows)
            await pool.execute("VACUUM ANALYZE")
            lines = [
                f"{rows:,} finished recipients (ledger + message_statuses rows each); the "
                f"writer records {WRITE_BATCH} sends a statement pair",
                "",
                "| phase | seconds | writer statements | sends/s | p50 ms | p99 ms | max ms |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            seconds, latencies = await measure(writer, 20.0)
            lines.append(row("writer alone", seconds, latencies))
            settings = CliSettings(database_url=url)
            seconds, latencies = await measure(
                writer, prune(settings, older_than_days=30, batch_size=batch_size)
            )
            lines.append(row(f"`broadcast prune`, batches of {batch_size:,}", seconds, latencies))
            again = await seed_finished(pool, rows)
            await pool.execute("VACUUM ANALYZE")
            seconds, latencies = await measure(writer, single_delete(pool, again))
            lines.append(row("one DELETE transaction", seconds, latencies))
            await pool.close()
            print("\n".join(lines))
        finally:
            server.destroy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch_size))
