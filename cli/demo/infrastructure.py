"""Kafka and PostgreSQL for the demo: as given, else the dev stack with a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from cli.database import CONNECT_ERRORS, describe
from cli.demo.config import DemoOptions
from cli.demo.paths import ROOT
from cli.errors import Failed, Unavailable
from cli.output import Console
from cli.settings import redact_url
from devstack.errors import DevstackError
from devstack.stack import Stack
from runtime.migrate import MigrationError, migrate_url


@dataclass(frozen=True, kw_only=True)
class Infrastructure:
    """Where the services find Kafka and PostgreSQL."""

    bootstrap_servers: str
    database_url: str
    # A database this run created (on the dev stack): the next demo drops it.
    fresh_database: bool = False


async def prepare(options: DemoOptions, console: Console) -> Infrastructure:
    """Kafka reachable and the database migrated; `Unavailable` or `Failed` otherwise."""
    infrastructure = await _servers(options, console)
    await _check_kafka(infrastructure.bootstrap_servers)
    database_url = infrastructure.database_url
    # The projector expects the schema (in production it starts after the consumer).
    try:
        await migrate_url(database_url)
    except MigrationError as error:
        raise Failed(f"{redact_url(database_url)}: {error}") from error
    except CONNECT_ERRORS as error:
        raise Unavailable(
            f"PostgreSQL unreachable at {redact_url(database_url)}: {describe(error)}"
        ) from error
    return infrastructure


async def _servers(options: DemoOptions, console: Console) -> Infrastructure:
    """Kafka's bootstrap servers and the database (as given, else fresh on the dev stack)."""
    database_url = options.database_url or ""
    if options.bootstrap_servers and options.database_url:
        return Infrastructure(
            bootstrap_servers=options.bootstrap_servers, database_url=database_url
        )
    stack = Stack.load_or_plan(ROOT / ".run" / "devstack")
    if not all(stack.status().values()):
        console.line("starting Kafka and PostgreSQL (python -m devstack up)...")
    try:
        await asyncio.to_thread(stack.up)
    except DevstackError as error:
        raise Unavailable(f"the dev stack did not start: {error}") from error
    fresh_database = False
    if not options.database_url:
        old = await _demo_databases(stack.postgres.url("postgres"))
        for previous in old:
            await asyncio.to_thread(stack.postgres.drop_database, previous)
        if old:
            console.line(f"dropped the earlier demo database(s) {', '.join(old)}")
        name = f"demo_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"
        await asyncio.to_thread(stack.postgres.ensure_database, name)
        database_url, fresh_database = stack.postgres.url(name), True
    return Infrastructure(
        bootstrap_servers=options.bootstrap_servers or stack.kafka.bootstrap_servers,
        database_url=database_url,
        fresh_database=fresh_database,
    )


async def _check_kafka(bootstrap_servers: str) -> None:
    """`Unavailable` unless a broker accepts connections (the services would only crash)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            async with asyncio.timeout(5.0):
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.close()
            return
    raise Unavailable(f"Kafka unreachable at {bootstrap_servers}")


async def _demo_databases(maintenance_url: str) -> list[str]:
    connection = await asyncpg.connect(maintenance_url, timeout=15)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'demo\\_%' ORDER BY datname"
        )
    finally:
        await connection.close()
    return [row["datname"] for row in rows]
