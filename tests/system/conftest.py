"""A sandbox, topics and a log directory per system test."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from sandbox.config import RuntimeConfig
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.conftest import MakeTopic
from tests.system.harness import System

SystemFactory = Callable[[RuntimeConfig, list[str]], AbstractAsyncContextManager[System]]


def new_sender() -> str:
    return str(random.randint(10**14, 10**15 - 1))


@pytest.fixture
def system(
    make_topic: MakeTopic, kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> SystemFactory:
    @asynccontextmanager
    async def _system(config: RuntimeConfig, senders: list[str]) -> AsyncIterator[System]:
        requests = await make_topic("requests", partitions=3)
        dlq = await make_topic("requests-dlq", partitions=1)
        async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
            yield System(
                sandbox=sandbox,
                database_url=database_url,
                bootstrap=kafka_bootstrap,
                requests_topic=requests,
                dlq_topic=dlq,
                senders=senders,
                log_dir=tmp_path,
            )

    return _system
