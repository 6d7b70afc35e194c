"""Restart the session's real Kafka broker or PostgreSQL in the middle of a test."""

from __future__ import annotations

import asyncio

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer


async def restart_kafka(
    broker: KafkaBroker, *, down_seconds: float = 0.0, crash: bool = False
) -> None:
    """Stop (cleanly, or SIGKILL with `crash`) and start the session's broker on the same ports."""
    await asyncio.to_thread(broker.kill if crash else broker.stop)
    if down_seconds:
        await asyncio.sleep(down_seconds)
    await asyncio.to_thread(broker.start)


async def restart_postgres(
    server: PostgresServer, *, down_seconds: float = 0.0, crash: bool = False
) -> None:
    """Stop (fast shutdown, or SIGKILL with `crash`) and start the session's PostgreSQL."""
    await asyncio.to_thread(server.kill if crash else server.stop)
    if down_seconds:
        await asyncio.sleep(down_seconds)
    await asyncio.to_thread(server.start)
