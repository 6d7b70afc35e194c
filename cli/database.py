"""PostgreSQL for the CLI: one connection per command, opened within the timeout.

Connection failures become `Unavailable` (exit 4) naming the server without its
credentials; `campaign_overview` turns an unknown campaign into `NotFound` (exit 3).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import asyncpg

from cli.errors import NotFound, Unavailable, UsageError
from cli.settings import CliSettings
from runtime.sqlfiles import load_queries

Q: Final = load_queries(Path(__file__).with_name("sql") / "queries.sql")

# What an unreachable, starting or refusing server raises at connect time.
CONNECT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresError,
)


@asynccontextmanager
async def connect(settings: CliSettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `DATABASE_URL`, closed on exit; `Unavailable` when it cannot open."""
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            settings.database_url, timeout=settings.timeout_seconds
        )
    except CONNECT_ERRORS as error:
        raise Unavailable(
            f"PostgreSQL unreachable at {settings.database_label}: {describe(error)}"
        ) from error
    try:
        yield connection
    finally:
        await connection.close(timeout=settings.timeout_seconds)


def describe(error: BaseException) -> str:
    """A short, single-line reason for an exception."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def parse_campaign_id(raw: str) -> uuid.UUID:
    """A campaign id from the command line; `UsageError` when it is not a UUID."""
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise UsageError(f"{raw!r} is not a campaign id (a UUID)") from None


async def campaign_overview(
    connection: asyncpg.Connection, campaign_id: uuid.UUID
) -> asyncpg.Record:
    """The campaign's `campaign_overview` row; `NotFound` when there is none."""
    row: asyncpg.Record | None = await connection.fetchrow(Q["campaign_overview"], campaign_id)
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found", campaign_id=str(campaign_id))
    return row
