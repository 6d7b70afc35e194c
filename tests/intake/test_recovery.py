"""Crashes and restarts during intake: the ledger still ends exactly as designed.

- `python -m consumer` is killed with SIGKILL at random points while 50 chunks are
  consumed, restarted each time, then drained: one row per distinct recipient, the
  right reasons, every chunk recorded once, nothing dead-lettered.
- The broker, then PostgreSQL, is killed and restarted in the middle of intake
  (in-process consumer): intake completes, and its offsets are committed.
"""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.app import run
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from runtime.db import retrying
from schemas.requests import BroadcastRequested
from tests.intake.builders import DesignedCampaign, designed_campaign
from tests.intake.conftest import (
    WAIT_SECONDS,
    IntakeEnv,
    consumer_process,
    ledger_outcomes,
    publish,
    suppress,
)
from tests.restarts import restart_kafka, restart_postgres
from tests.topics import read_all

pytestmark = pytest.mark.slow


async def _designs(
    pool: asyncpg.Pool, *, campaigns: int, chunks: int, per_chunk: int, seed: int
) -> list[DesignedCampaign]:
    designs = [
        designed_campaign(chunks=chunks, per_chunk=per_chunk, seed=seed + i)
        for i in range(campaigns)
    ]
    for design in designs:
        await suppress(pool, design.suppressed)
    return designs


def _interleaved(designs: list[DesignedCampaign], rng: random.Random) -> list[BroadcastRequested]:
    chunks = [chunk for design in designs for chunk in design.chunks]
    rng.shuffle(chunks)
    return chunks


async def _chunks_stored(database_url: str, designs: list[DesignedCampaign]) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(database_url)
        try:
            found: int = await connection.fetchval(
                "SELECT count(*) FROM campaign_chunks WHERE campaign_id = ANY($1::uuid[])",
                [design.campaign_id for design in designs],
            )
            return found
        finally:
            await connection.close()

    stored: int = await retrying(count)
    return stored


async def _wait_until(check: Callable[[], Awaitable[bool]], *, poll: float = 0.01) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not await check():
            await asyncio.sleep(poll)


async def _assert_ledgers(database_url: str, designs: list[DesignedCampaign]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for design in designs:
            assert await ledger_outcomes(connection, design.campaign_id) == design.expected
            chunk_rows = await connection.fetchval(
                "SELECT count(*) FROM campaign_chunks WHERE campaign_id = $1", design.campaign_id
            )
            assert chunk_rows == len(design.chunks)
    finally:
        await connection.close()


async def test_kill_9_at_random_points_loses_and_doubles_nothing(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    rng = random.Random(uuid.uuid4().int)
    designs = await _designs(
        db_pool, campaigns=5, chunks=10, per_chunk=400, seed=rng.randrange(999)
    )
    await publish(producer, intake_env.topic, _interleaved(designs, rng))
    url = intake_env.settings.database_url
    kills = 0
    for threshold in sorted(rng.sample(range(0, 45), 4)):
        process = await consumer_process(intake_env.process_env())
        try:
            await _wait_until(partial(_stored_at_least, url, designs, threshold))
            if threshold == 0:
                await asyncio.sleep(rng.uniform(0.5, 2.0))  # somewhere in start-up
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            await process.wait()
    assert kills == 4

    drained = await consumer_process(intake_env.process_env(INTAKE_UNTIL_IDLE="true"))
    async with asyncio.timeout(WAIT_SECONDS):
        assert await drained.wait() == 0

    await _assert_ledgers(url, designs)
    assert await read_all(intake_env.settings.bootstrap_servers, intake_env.dlq) == []


async def _stored_at_least(url: str, designs: list[DesignedCampaign], count: int) -> bool:
    return await _chunks_stored(url, designs) >= count


async def _committed_to_end(env: IntakeEnv, partitions: int = 3) -> bool:
    probe = AIOKafkaConsumer(
        bootstrap_servers=env.settings.bootstrap_servers,
        group_id=env.settings.consumer_group,
        enable_auto_commit=False,
    )
    await probe.start()
    try:
        tps = [TopicPartition(env.topic, p) for p in range(partitions)]
        ends = await probe.end_offsets(tps)
        return all([(await probe.committed(tp) or 0) == ends[tp] for tp in tps])
    finally:
        await probe.stop()


async def _intake_across_a_restart(
    env: IntakeEnv,
    producer: AIOKafkaProducer,
    designs: list[DesignedCampaign],
    restart: Callable[[], Awaitable[None]],
) -> None:
    chunks = _interleaved(designs, random.Random(5))
    half = len(chunks) // 2
    await publish(producer, env.topic, chunks[:half])
    stop = asyncio.Event()
    intake = asyncio.create_task(run(env.with_(intake_until_idle=False).settings, stop))
    url = env.settings.database_url
    try:
        await _wait_until(lambda: _stored_at_least(url, designs, 3))
        await restart()
        await publish(producer, env.topic, chunks[half:])
        await _wait_until(lambda: _stored_at_least(url, designs, len(chunks)), poll=0.1)
        await _wait_until(lambda: _committed_to_end(env), poll=0.2)
        assert not intake.done()
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_SECONDS):
            await intake
    await _assert_ledgers(url, designs)


async def test_a_broker_crash_during_intake(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool, kafka: KafkaBroker
) -> None:
    designs = await _designs(db_pool, campaigns=3, chunks=10, per_chunk=400, seed=40)
    await _intake_across_a_restart(
        intake_env, producer, designs, lambda: restart_kafka(kafka, crash=True)
    )


@pytest.mark.parametrize("crash", [True, False])
async def test_a_postgres_restart_during_intake(
    intake_env: IntakeEnv,
    producer: AIOKafkaProducer,
    db_pool: asyncpg.Pool,
    postgres: PostgresServer,
    crash: bool,
) -> None:
    designs = await _designs(db_pool, campaigns=3, chunks=10, per_chunk=400, seed=50 + crash)
    await _intake_across_a_restart(
        intake_env, producer, designs, lambda: restart_postgres(postgres, crash=crash)
    )


async def test_a_second_consumer_joining_mid_intake_shares_without_loss(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    designs = await _designs(db_pool, campaigns=6, chunks=6, per_chunk=300, seed=60)
    chunks = _interleaved(designs, random.Random(6))
    settings = intake_env.with_(intake_until_idle=False).settings
    stops = [asyncio.Event(), asyncio.Event()]
    first = asyncio.create_task(run(settings, stops[0]))
    second: asyncio.Task[None] | None = None
    url = settings.database_url
    try:
        await publish(producer, intake_env.topic, chunks[:18])
        await _wait_until(lambda: _stored_at_least(url, designs, 4))
        # The join revokes the first consumer's partitions: it commits what it finished.
        second = asyncio.create_task(run(settings, stops[1]))
        await publish(producer, intake_env.topic, chunks[18:])
        await _wait_until(lambda: _stored_at_least(url, designs, len(chunks)), poll=0.1)
        await _wait_until(lambda: _committed_to_end(intake_env), poll=0.2)
        assert not first.done()
        assert not second.done()
    finally:
        for stop in stops:
            stop.set()
        async with asyncio.timeout(WAIT_SECONDS):
            await asyncio.gather(first, *([second] if second else []))
    await _assert_ledgers(url, designs)
