"""Session fixtures: a private, real Kafka broker and PostgreSQL for the whole test run.

Started lazily (only tests that ask for them pay the start-up), on free ports, in a
temporary directory; stopped at the end. Each test gets its own topics and group ids,
the session gets a fresh database with the migrations applied.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from devstack.procs import free_port
from runtime.db import create_pool
from runtime.migrate import migrate_url

MakeTopic = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def kafka(stack_dir: Path) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(stack_dir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    yield broker
    broker.stop(grace_seconds=10)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: KafkaBroker) -> str:
    return kafka.bootstrap_servers


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(stack_dir / "postgres", port=free_port())
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
async def database_url(postgres: PostgresServer) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    await migrate_url(url)
    return url


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def make_topic(kafka_bootstrap: str) -> AsyncIterator[MakeTopic]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()

    async def _make(prefix: str = "t", partitions: int = 3) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        return name

    yield _make
    await admin.close()


@pytest.fixture
async def topic(make_topic: MakeTopic) -> str:
    return await make_topic()


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


# With `pytest -n 2 --dist loadgroup` (scripts/test), these run one after another on one
# worker: each starts a whole pipeline of processes (or a stack of its own), and two at
# once on a 2-core machine would test the machine's patience more than the code.
_HEAVY = (
    "tests/soak/",
    "tests/scale/test_bench_quick.py",
    "tests/system/",
    "tests/demo/",
    "tests/console/test_live.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent.parent
    for item in items:
        relative = item.path.resolve().relative_to(root).as_posix()
        if relative.startswith(_HEAVY):
            item.add_marker(pytest.mark.xdist_group("heavy"))
