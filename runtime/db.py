"""Connection pools that ride out a PostgreSQL restart.

asyncpg drops a pooled connection that errors; the pool opens a new one on the
next acquire. Callers retry whole transactions on `TRANSIENT_ERRORS`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import msgspec

from runtime.logs import get_logger

log = get_logger(__name__)

# What a restarting or unreachable server raises; anything else is a bug or bad data.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.ConnectionFailureError,
    # A pooled connection that a server crash left mid-protocol ("cannot switch to
    # state ..."): the pool replaces it on release, so retrying is safe.
    asyncpg.exceptions.InternalClientError,
)


def _decode_jsonb(text: str) -> Any:
    # msgspec reads the send path's components about 3x faster than json; a number
    # beyond a float's range (jsonb keeps numerics exactly) is json's to read, as inf.
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=_decode_jsonb, schema="pg_catalog"
    )


async def create_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 60.0
) -> asyncpg.Pool:
    """Open a pool, retrying while the server is starting or briefly unreachable."""
    deadline = asyncio.get_running_loop().time() + connect_timeout
    delay = 0.2
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                database_url,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                command_timeout=60,
                max_inactive_connection_lifetime=60,
            )
        except TRANSIENT_ERRORS as error:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            log.warning("postgres_connect_retry", error=type(error).__name__, delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return pool


async def retrying(operation: Any, *args: Any, attempts: int = 30, max_delay: float = 5.0) -> Any:
    """Run `await operation(*args)`, retrying transient database errors with backoff."""
    delay = 0.1
    for attempt in range(1, attempts + 1):
        try:
            return await operation(*args)
        except TRANSIENT_ERRORS as error:
            if attempt == attempts:
                raise
            log.warning("postgres_retry", error=type(error).__name__, attempt=attempt)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")
