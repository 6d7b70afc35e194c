"""The real PostgreSQL: a pool rides out a server restart; migrations give the expected schema."""

from __future__ import annotations

import asyncpg

from devstack.postgres import PostgresServer
from runtime.db import retrying
from runtime.migrate import migrate_url
from tests.restarts import restart_postgres


async def test_pool_recovers_after_a_postgres_restart(
    postgres: PostgresServer, db_pool: asyncpg.Pool
) -> None:
    assert await db_pool.fetchval("SELECT 1") == 1
    await restart_postgres(postgres, crash=True)
    # Pooled connections died with the server; the retried call gets a fresh one.
    assert await retrying(db_pool.fetchval, "SELECT 2") == 2


async def test_migrations_are_idempotent(database_url: str) -> None:
    assert await migrate_url(database_url) == []


async def test_migrations_produce_the_contract_schema(db_pool: asyncpg.Pool) -> None:
    tables = {
        r["table_name"]
        for r in await db_pool.fetch(
            """SELECT table_name FROM information_schema.tables
               WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"""
        )
    }
    assert {
        "campaigns",
        "campaign_chunks",
        "ledger",
        "message_statuses",
        "suppressions",
        "senders",
        "quota_contacts",
        "schema_migrations",
    } <= tables

    async def columns(view: str) -> set[str]:
        rows = await db_pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", view
        )
        return {r["column_name"] for r in rows}

    assert {
        "campaign_id",
        "phone",
        "status",
        "reason",
        "message_id",
        "error_code",
        "error_message",
        "updated_at",
    } <= await columns("campaign_recipient_status")
    assert {"campaign_id", "status", "count", "pct"} <= await columns("campaign_progress")
    key = await db_pool.fetch(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = 'ledger'::regclass AND i.indisprimary"""
    )
    assert {r["attname"] for r in key} == {"campaign_id", "phone"}


async def test_jsonb_reads_back_what_json_would(db_pool: asyncpg.Pool) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Budi é"}]}]
    assert await db_pool.fetchval("SELECT $1::jsonb", components) == components
    # Numbers jsonb keeps exactly but a float cannot hold are read as json reads them.
    huge = "1" + "0" * 400 + ".5"
    value = await db_pool.fetchval(f"SELECT '[{huge}, 12345678901234567890123, 0.5]'::jsonb")
    assert value == [float("inf"), 12345678901234567890123, 0.5]
