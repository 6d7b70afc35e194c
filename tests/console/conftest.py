"""The console in-process against the session's Kafka and a database of its own.

`running_console(...)` builds the real app (console.app.build) on a free loopback
port with its background tasks (snapshots, the dead-letter tail); a test signs in
through the login form like an operator, or sends raw HTTP with httpx.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import asyncpg
import pytest
from playwright.async_api import Page

from console.access import Credentials
from console.app import background, build
from console.context import Console
from console.settings import ConsoleSettings
from devstack.postgres import PostgresServer
from runtime.db import create_pool
from runtime.httpserve import EmbeddedServer
from runtime.migrate import migrate_url
from tests.console.browser import browser, page  # noqa: F401 - fixtures, shared by every module
from tests.system.conftest import system  # noqa: F401 - the system tests' pipeline factory

OPERATOR_TOKEN: Final = "operator-token-for-the-tests-01"
VIEWER_TOKEN: Final = "viewer-token-for-the-tests-0002"
CREDENTIALS: Final = Credentials.parse(OPERATOR_TOKEN, f"vera:viewer:{VIEWER_TOKEN}")


@dataclass
class RunningConsole:
    url: str
    settings: ConsoleSettings
    console: Console
    pool: asyncpg.Pool

    async def sign_in(self, tab: Page, token: str = OPERATOR_TOKEN, path: str = "/") -> None:
        """Through the login form, as a person does."""
        await tab.goto(self.url + path)
        await tab.fill("input[name=token]", token)
        await tab.click("button[type=submit]")
        await tab.wait_for_load_state()


@pytest.fixture
async def console_database(postgres: PostgresServer) -> AsyncIterator[str]:
    """A database of its own: the campaign list shows only this test's campaigns."""
    name = f"console_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    await migrate_url(url)
    yield url
    await asyncio.to_thread(postgres.drop_database, name)


@asynccontextmanager
async def running_console(
    database_url: str,
    bootstrap_servers: str,
    *,
    requests_topic: str = "console-test-requests",
    dlq_topic: str = "console-test-dlq",
    kirim_base_url: str = "http://127.0.0.1:9/v1",
    live_interval: float = 0.5,
) -> AsyncIterator[RunningConsole]:
    settings = ConsoleSettings(
        database_url=database_url,
        bootstrap_servers=bootstrap_servers,
        requests_topic=requests_topic,
        requests_dlq_topic=dlq_topic,
        kirim_base_url=kirim_base_url,
        credentials=CREDENTIALS,
        port=0,
        live_interval_seconds=live_interval,
        timeout_seconds=10.0,
    )
    pool = await create_pool(database_url, max_size=4)
    stop = asyncio.Event()
    app, console = build(settings, pool, stop)
    server = EmbeddedServer(app, "127.0.0.1", 0, port_variable="CONSOLE_PORT")
    server.bind()
    try:
        async with background(console):
            serving = asyncio.create_task(server.serve(stop))
            try:
                yield RunningConsole(
                    f"http://127.0.0.1:{server.bound_port()}", settings, console, pool
                )
            finally:
                stop.set()
                await serving
    finally:
        await pool.close()
