"""A Kafka broker and a PostgreSQL of a benchmark's own, on free ports, in its state dir.

For benchmarks that kill the infrastructure (the soak) or fill it with millions of
rows (the scale bench): never the developer's stack (`python -m devstack`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from devstack.procs import free_port
from runtime.migrate import migrate_url
from runtime.topics import ensure_topics


@dataclass(frozen=True, slots=True)
class PrivateStack:
    kafka: KafkaBroker
    postgres: PostgresServer
    database_url: str


@contextlib.asynccontextmanager
async def private_stack(
    state_dir: Path,
    topics: Mapping[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
    *,
    kafka_heap: str = "512m",
) -> AsyncIterator[PrivateStack]:
    """Start both, create the database `bench` with the migrations and the topics; stop
    the broker and destroy the database cluster afterwards."""
    kafka = KafkaBroker(
        state_dir / "kafka", port=free_port(), controller_port=free_port(), heap=kafka_heap
    )
    postgres = PostgresServer(state_dir / "postgres", port=free_port())
    await asyncio.to_thread(kafka.start)
    try:
        await asyncio.to_thread(postgres.start)
        try:
            await asyncio.to_thread(postgres.ensure_database, "bench")
            url = postgres.url("bench")
            await migrate_url(url)
            await ensure_topics(kafka.bootstrap_servers, topics, configs=configs)
            yield PrivateStack(kafka, postgres, url)
        finally:
            await asyncio.to_thread(postgres.destroy)
    finally:
        await asyncio.to_thread(kafka.stop)
