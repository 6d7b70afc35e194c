"""An in-process webhook bridge on a free loopback port, producing to a fresh topic."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devstack.procs import free_port
from tests.bridge.kirim import OLD_SECRET, SECRET
from tests.conftest import MakeTopic
from webhook_bridge.service import run
from webhook_bridge.settings import BridgeSettings


@dataclasses.dataclass(frozen=True)
class RunningBridge:
    settings: BridgeSettings

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.settings.path


@contextlib.asynccontextmanager
async def running_bridge(settings: BridgeSettings) -> AsyncIterator[RunningBridge]:
    """Run `webhook_bridge.service.run` until the block ends; wait until /readyz says ok."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    bridge = RunningBridge(settings)
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while True:
                if task.done():
                    await task
                    raise RuntimeError("the bridge stopped before it served")
                try:
                    async with session.get(bridge.base_url + "/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        yield bridge
    finally:
        stop.set()
        await task


def bridge_settings(bootstrap: str, topic: str, **overrides: object) -> BridgeSettings:
    base = BridgeSettings(
        bootstrap_servers=bootstrap,
        secrets=(SECRET, OLD_SECRET),
        port=free_port(),
        topic=topic,
        max_body_bytes=16 * 1024,
        produce_timeout_seconds=2.0,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def bridge(kafka_bootstrap: str, make_topic: MakeTopic) -> AsyncIterator[RunningBridge]:
    topic = await make_topic("status")
    async with running_bridge(bridge_settings(kafka_bootstrap, topic)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session
