"""Fixtures for the `broadcast` command's tests: real Kafka, PostgreSQL and a Kirim sandbox.

- `cli_api`: one sandbox for the session (its default account, tier 1,000, is connected);
- `cli_env`: the environment of one test: fresh request/DLQ/status topics, the session's
  migrated database, the sandbox, a short timeout;
- `run_cli(argv, env)`: the command in-process, with its exit code, stdout and stderr;
- `seed(...)`: a campaign written straight into the ledger (and message_statuses).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from cli.app import invoke
from consumer.app import run as run_consumer
from consumer.settings import ConsumerSettings
from devstack.procs import free_port
from sandbox.testing import RunningSandbox, running_sandbox
from tests.conftest import MakeTopic

SENDER = "106540352242922"
COMPONENTS = [{"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]}]
WAIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The last JSON line of stdout."""
        return msgspec.json.decode(self.out.strip().splitlines()[-1])


async def run_cli(argv: Sequence[str], env: Mapping[str, str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = await invoke(list(argv), env, out, err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
async def cli_api() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def dead_bootstrap() -> str:
    """A Kafka address nothing listens on."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
async def cli_env(
    kafka_bootstrap: str, database_url: str, make_topic: MakeTopic, cli_api: RunningSandbox
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "KIRIM_BASE_URL": cli_api.api_url,
        "REQUESTS_TOPIC": await make_topic("requests", partitions=3),
        "REQUESTS_DLQ_TOPIC": await make_topic("requests-dlq", partitions=1),
        "STATUS_TOPIC": await make_topic("status", partitions=1),
        "BROADCAST_TIMEOUT": "10",
        "USER": "tester",
    }


@dataclass(frozen=True, slots=True)
class Row:
    """One ledger row to seed, with an optional webhook fold for its message."""

    phone: str
    status: str = "pending"
    reason: str | None = None
    message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    generation: int = 0
    attempts: int = 0
    # message_statuses for `message_id`: which of sent/delivered/read/failed were seen.
    seen: tuple[str, ...] = ()
    status_error_code: str | None = None


def new_phone() -> str:
    return f"+62812{uuid.uuid4().int % 10**7:07d}"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:26].upper()}"


async def seed(
    pool: asyncpg.Pool,
    rows: Sequence[Row],
    *,
    state: str = "active",
    state_reason: str | None = None,
    chunk_count: int = 1,
    chunks_received: int = 1,
    sender: str = SENDER,
) -> uuid.UUID:
    """A campaign with these ledger rows; returns its (fresh) id."""
    campaign_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count,
                   state, state_reason)
               VALUES ($1, $2, $2, 'promo_flash_sale', 'id_ID', $3, 'test', $4, $5, $6)""",
            campaign_id,
            sender,
            COMPONENTS,
            chunk_count,
            state,
            state_reason,
        )
        for index in range(chunks_received):
            await connection.execute(
                "INSERT INTO campaign_chunks (campaign_id, chunk_index, recipient_count) "
                "VALUES ($1, $2, $3)",
                campaign_id,
                index,
                len(rows),
            )
        await connection.executemany(
            """INSERT INTO ledger (campaign_id, phone, status, reason, chunk_index, message_id,
                   error_code, error_message, generation, attempts)
               VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9)""",
            [
                (
                    campaign_id,
                    r.phone,
                    r.status,
                    r.reason,
                    r.message_id,
                    r.error_code,
                    r.error_message,
                    r.generation,
                    r.attempts,
                )
                for r in rows
            ],
        )
        await connection.executemany(
            """INSERT INTO message_statuses (message_id, sent_at, delivered_at, read_at,
                   failed_at, error_code, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            [
                (
                    r.message_id,
                    now if "sent" in r.seen else None,
                    now if "delivered" in r.seen else None,
                    now if "read" in r.seen else None,
                    now if "failed" in r.seen else None,
                    r.status_error_code,
                    now,
                )
                for r in rows
                if r.seen and r.message_id
            ],
        )
    return campaign_id


async def intake_until_idle(cli_env: Mapping[str, str], database_url: str) -> None:
    """Run the consumer's intake alone (no dispatcher) over what the test published."""
    settings = ConsumerSettings(
        bootstrap_servers=cli_env["KAFKA_BOOTSTRAP_SERVERS"],
        database_url=database_url,
        kirim_base_url=cli_env["KIRIM_BASE_URL"],
        requests_topic=cli_env["REQUESTS_TOPIC"],
        requests_dlq_topic=cli_env["REQUESTS_DLQ_TOPIC"],
        consumer_group=f"g-{uuid.uuid4().hex[:10]}",
        metrics_port=0,
        migrate_on_start=False,
        ensure_topics_on_start=False,
        dispatcher_enabled=False,
        intake_until_idle=True,
        intake_commit_interval_seconds=0.2,
        intake_session_timeout_ms=3_000,
    )
    async with asyncio.timeout(60):
        await run_consumer(settings, asyncio.Event())
