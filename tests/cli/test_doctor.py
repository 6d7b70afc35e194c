"""`broadcast doctor` against the real services: all passing, then everything failing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from cli.errors import FAILED, OK
from devstack.postgres import PostgresServer
from tests.cli.conftest import run_cli

GOOD_SECRETS = "whsec_test_current_0123456789,whsec_test_previous_9876543210"


async def test_doctor_passes_on_a_healthy_setup(cli_env: dict[str, str]) -> None:
    result = await run_cli(["doctor"], {**cli_env, "KIRIM_WEBHOOK_SECRETS": GOOD_SECRETS})
    assert result.code == OK, result.out
    lines = result.out.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["ok", "kafka"],
        ["ok", "topics"],
        ["ok", "postgres"],
        ["ok", "api-key"],
        ["ok", "webhook-secrets"],
        ["ok", "clock"],
    ]
    assert "migrations current" in lines[2]
    assert lines[-1].startswith("doctor: 6 ok, 0 warning(s), 0 failed, 0 skipped")

    report = (await run_cli(["doctor", "--json"], cli_env)).json()
    assert report["healthy"] is True
    # The built-in sandbox secret passes with a warning.
    assert {c["name"]: c["outcome"] for c in report["checks"]}["webhook-secrets"] == "warn"


@pytest.fixture
async def empty_database(postgres: PostgresServer) -> AsyncIterator[str]:
    name = f"cli_empty_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    yield postgres.url(name)
    await asyncio.to_thread(postgres.drop_database, name)


async def test_doctor_fails_each_check_with_a_reason(
    cli_env: dict[str, str], dead_bootstrap: str, empty_database: str
) -> None:
    env = {
        **cli_env,
        "KAFKA_BOOTSTRAP_SERVERS": dead_bootstrap,
        "DATABASE_URL": empty_database,
        "KIRIM_API_KEY": "kdv_live_notthekeynotthekeynotthe",
        "KIRIM_WEBHOOK_SECRETS": "whsec_short,plain_secret_0123456789",
        "REQUESTS_TOPIC": f"missing-{uuid.uuid4().hex[:6]}",
    }
    started = time.monotonic()
    result = await run_cli(["doctor", "--timeout", "3", "--json"], env)
    assert time.monotonic() - started < 15
    assert result.code == FAILED
    checks = {c["name"]: (c["outcome"], c["detail"]) for c in result.json()["checks"]}
    assert checks["kafka"][0] == "fail"
    assert dead_bootstrap in checks["kafka"][1]
    assert checks["topics"] == ("skip", "Kafka unreachable")
    assert checks["postgres"][0] == "fail"
    assert "no migrations applied" in checks["postgres"][1]
    assert checks["api-key"][0] == "fail"
    assert "401 (invalid_api_key)" in checks["api-key"][1]
    assert checks["webhook-secrets"][0] == "fail"
    assert checks["clock"][0] == "ok"  # a 401 still carries the API's Date

    text = await run_cli(["doctor", "--timeout", "3"], env)
    assert text.out.splitlines()[-1].startswith("doctor: 1 ok, 0 warning(s), 4 failed, 1 skipped")


async def test_doctor_names_missing_topics(cli_env: dict[str, str]) -> None:
    missing = f"missing-{uuid.uuid4().hex[:6]}"
    result = await run_cli(["doctor", "--json"], {**cli_env, "STATUS_TOPIC": missing})
    assert result.code == FAILED
    topics = {c["name"]: c for c in result.json()["checks"]}["topics"]
    assert topics["outcome"] == "fail"
    assert missing in topics["detail"]
