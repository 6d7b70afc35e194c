"""Fixtures for intake's integration tests: real Kafka and PostgreSQL, the sandbox for accounts.

- `accounts_api`: one Kirim sandbox for the session (its default account is connected);
- `intake_env`: fresh topics and group for one test, as settings and as the
  environment of a `python -m consumer` subprocess;
- `run_intake(env)`: the consumer in-process until it is idle (drain-and-exit);
- helpers to publish events, read the DLQ back and dump a campaign's ledger.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from consumer.app import run
from consumer.settings import ConsumerSettings
from sandbox.testing import RunningSandbox, running_sandbox
from schemas.requests import RequestEvent, encode_request_event
from tests.conftest import MakeTopic

REPO_ROOT = Path(__file__).resolve().parents[2]
# Long enough for a loaded 2-core machine; every wait ends as soon as its condition holds.
WAIT_SECONDS = 90.0


@pytest.fixture(scope="session")
async def accounts_api() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox() as sandbox:
        yield sandbox


@dataclass(frozen=True)
class IntakeEnv:
    settings: ConsumerSettings

    @property
    def topic(self) -> str:
        return self.settings.requests_topic

    @property
    def dlq(self) -> str:
        return self.settings.requests_dlq_topic

    def with_(self, **changes: Any) -> IntakeEnv:
        return IntakeEnv(replace(self.settings, **changes))

    def process_env(self, **extra: str) -> dict[str, str]:
        """The environment of a `python -m consumer` running these settings (no drain mode)."""
        s = self.settings
        return {
            "PATH": os.environ.get("PATH", ""),
            "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "DATABASE_URL": s.database_url,
            "KIRIM_BASE_URL": s.kirim_base_url,
            "KIRIM_API_KEY": s.kirim_api_key,
            "REQUESTS_TOPIC": s.requests_topic,
            "REQUESTS_DLQ_TOPIC": s.requests_dlq_topic,
            "CONSUMER_GROUP": s.consumer_group,
            "CONSUMER_METRICS_PORT": "0",
            "CONSUMER_MIGRATE": "false",
            "CONSUMER_ENSURE_TOPICS": "false",
            "DISPATCH_ENABLED": "false",
            "INTAKE_SESSION_TIMEOUT_MS": str(s.intake_session_timeout_ms),
            "INTAKE_COMMIT_INTERVAL_SECONDS": str(s.intake_commit_interval_seconds),
            "INTAKE_GRACE_SECONDS": str(s.intake_grace_seconds),
            "LOG_LEVEL": "WARNING",
            **extra,
        }


@pytest.fixture
async def intake_env(
    kafka_bootstrap: str,
    database_url: str,
    make_topic: MakeTopic,
    group_id: str,
    accounts_api: RunningSandbox,
) -> IntakeEnv:
    topic = await make_topic("requests", partitions=3)
    dlq = await make_topic("requests-dlq", partitions=1)
    return IntakeEnv(
        ConsumerSettings(
            bootstrap_servers=kafka_bootstrap,
            database_url=database_url,
            kirim_base_url=accounts_api.api_url,
            requests_topic=topic,
            requests_dlq_topic=dlq,
            consumer_group=group_id,
            metrics_port=0,
            migrate_on_start=False,
            ensure_topics_on_start=False,
            dispatcher_enabled=False,
            intake_until_idle=True,
            intake_commit_interval_seconds=0.2,
            intake_session_timeout_ms=3_000,
            intake_grace_seconds=3.0,
            accounts_retry_max_seconds=0.5,
        )
    )


async def run_intake(env: IntakeEnv) -> None:
    """The whole consumer process in-process, until intake has drained the topic."""
    async with asyncio.timeout(WAIT_SECONDS):
        await run(env.settings, asyncio.Event())


Publish = Callable[..., Awaitable[None]]


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, max_request_size=4 << 20
    )
    await producer.start()
    yield producer
    await producer.stop()


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    events: Iterable[RequestEvent | tuple[bytes, bytes | None]],
) -> list[tuple[int, int]]:
    """Publish events (key = campaign id) or raw (value, key) pairs, in order, acknowledged;
    returns each one's (partition, offset)."""
    futures = []
    for event in events:
        if isinstance(event, tuple):
            value, key = event
        else:
            value, key = encode_request_event(event), str(event.campaign_id).encode()
        futures.append(await producer.send(topic, value, key=key))
    await producer.flush()
    return [((m := await future).partition, m.offset) for future in futures]


LEDGER_COLUMNS = "phone, status, reason, components::text, opted_in_at, chunk_index, attempts"


async def ledger_rows(
    pool: asyncpg.Pool | asyncpg.Connection, campaign_id: uuid.UUID
) -> list[tuple[Any, ...]]:
    """The campaign's ledger, every column intake writes, ordered by phone."""
    rows = await pool.fetch(
        f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE campaign_id = $1 ORDER BY phone",
        campaign_id,
    )
    return [tuple(row) for row in rows]


async def ledger_outcomes(
    pool: asyncpg.Pool | asyncpg.Connection, campaign_id: uuid.UUID
) -> dict[str, tuple[str, str | None]]:
    rows = await pool.fetch(
        "SELECT phone, status, reason FROM ledger WHERE campaign_id = $1", campaign_id
    )
    return {row["phone"]: (row["status"], row["reason"]) for row in rows}


async def suppress(pool: asyncpg.Pool, phones: Sequence[str]) -> None:
    await pool.executemany(
        "INSERT INTO suppressions (phone, reason, source) VALUES ($1, 'opted_out', 'test') "
        "ON CONFLICT DO NOTHING",
        [(p,) for p in phones],
    )


async def consumer_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m consumer` as a child process (its output goes to the test's stderr)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer",
        env=env,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
    )
