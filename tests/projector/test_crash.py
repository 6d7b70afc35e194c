"""kill -9 of the projector process during a burst: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

from devstack.procs import free_port
from projector.fold import MessageRow, fold, status_of
from projector.records import updates_of
from tests.conftest import MakeTopic
from tests.projector.conftest import produce, progress, seed_campaign
from tests.projector.test_loop import lifecycle, record_of
from tests.projector.test_store import stored_row

ROOT = Path(__file__).resolve().parents[2]


def projector_process_env(
    bootstrap: str, database_url: str, topic: str, group: str, port: int
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "STATUS_TOPIC": topic,
        "PROJECTOR_GROUP": group,
        "PROJECTOR_METRICS_PORT": str(port),
        "PROJECTOR_BATCH_SIZE": "300",
        "LOG_LEVEL": "WARNING",
    }


async def start_projector(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "projector", "run", *args, env=env, cwd=ROOT
    )


async def test_kill_9_during_a_burst_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap: str, make_topic: MakeTopic, database_url: str, db_pool: asyncpg.Pool
) -> None:
    topic = await make_topic("status")
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(9)
    count = 4000
    ids = [f"msg_{run_id}_{i:05d}" for i in range(count)]
    phones = [f"+6281{run_id_digits(run_id)}{i:05d}" for i in range(count)]
    events = [
        e for mid, phone in zip(ids, phones, strict=True) for e in lifecycle(mid, phone[1:], rng)
    ]
    records = [record_of(event) for event in events]
    rng.shuffle(records)
    expected = fold(u for _, body, _ in records if body for u in updates_of(body))
    campaign_id = await seed_campaign(
        db_pool, [(phone, "queued", mid) for mid, phone in zip(ids, phones, strict=True)]
    )

    port = free_port()
    env = projector_process_env(kafka_bootstrap, database_url, topic, f"g-{run_id}", port)
    process = await start_projector(env)
    try:
        feeding = asyncio.create_task(produce(kafka_bootstrap, topic, records))
        # Kill it mid-burst, once part of the burst is folded.
        async with asyncio.timeout(60):
            while await stored_count(db_pool, run_id) < count // 4:
                assert process.returncode is None
                await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert "broadcast_projector_events_total" in await response.text()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
        process.kill()
        await process.wait()
        folded_at_kill = await stored_count(db_pool, run_id)
        assert folded_at_kill < count
        await feeding
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    restarted = await start_projector(env, "--until-idle")
    assert await asyncio.wait_for(restarted.wait(), 90) == 0

    rows = await db_pool.fetch(
        "SELECT * FROM message_statuses WHERE message_id LIKE $1", f"msg_{run_id}_%"
    )
    assert {row["message_id"]: stored_row(row) for row in rows} == expected
    counts = await progress(db_pool, campaign_id)
    assert sum(counts.values()) == count
    assert counts == expected_counts(expected)


def run_id_digits(run_id: str) -> str:
    return str(int(run_id, 16) % 10**3).zfill(3)


async def stored_count(pool: asyncpg.Pool, run_id: str) -> int:
    value: int = await pool.fetchval(
        "SELECT count(*) FROM message_statuses WHERE message_id LIKE $1", f"msg_{run_id}_%"
    )
    return value


def expected_counts(expected: dict[str, MessageRow]) -> dict[str, int]:
    return dict(Counter(status_of(row) for row in expected.values()))
