"""`broadcast pause|resume|cancel`: the control events on the real requests topic."""

from __future__ import annotations

import time
import uuid

import asyncpg

from cli.errors import OK, UNAVAILABLE, USAGE
from schemas.requests import (
    BroadcastCancelled,
    BroadcastPaused,
    BroadcastResumed,
    decode_request_event,
)
from tests.cli.conftest import Row, new_phone, run_cli, seed
from tests.topics import read_all


async def test_control_events_are_published_keyed_by_campaign(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    campaign = await seed(db_pool, [Row(new_phone())])
    paused = await run_cli(["pause", str(campaign), "--reason", "budget review"], cli_env)
    assert paused.code == OK, paused.err
    assert paused.out.startswith(
        f"published broadcast.paused for campaign {campaign} (reason: budget review) to "
        f"{cli_env['REQUESTS_TOPIC']} partition "
    )
    assert "the campaign was active" in paused.out
    resumed = await run_cli(["resume", str(campaign), "--json"], cli_env)
    assert resumed.json()["event"] == "broadcast.resumed"
    assert resumed.json()["state_before"] == "active"
    cancelled = await run_cli(
        ["cancel", str(campaign), "--reason", "wrong audience", "--requested-by", "ops"], cli_env
    )
    assert cancelled.code == OK

    records = await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"])
    assert [r.key for r in records] == [str(campaign).encode()] * 3
    events = [decode_request_event(r.value) for r in records]
    assert [type(e) for e in events] == [BroadcastPaused, BroadcastResumed, BroadcastCancelled]
    first, _second, third = events
    assert isinstance(first, BroadcastPaused)
    assert isinstance(third, BroadcastCancelled)
    assert (first.reason, first.requested_by) == ("budget review", "broadcast-cli:tester")
    assert (third.reason, third.requested_by) == ("wrong audience", "ops")
    assert {e.campaign_id for e in events} == {campaign}


async def test_a_campaign_not_stored_yet_is_noted_not_refused(cli_env: dict[str, str]) -> None:
    campaign = uuid.uuid4()
    result = await run_cli(["cancel", str(campaign), "--json"], cli_env)
    assert result.code == OK
    assert result.json()["campaign_known"] is False
    assert "not in the ledger yet" in result.err


async def test_kafka_down(cli_env: dict[str, str], dead_bootstrap: str) -> None:
    started = time.monotonic()
    result = await run_cli(
        ["pause", str(uuid.uuid4()), "--bootstrap-servers", dead_bootstrap, "--timeout", "3"],
        cli_env,
    )
    assert result.code == UNAVAILABLE
    assert time.monotonic() - started < 15
    [line] = result.err.splitlines()
    assert line.startswith(f"broadcast: Kafka unavailable at {dead_bootstrap}")


async def test_bad_arguments(cli_env: dict[str, str]) -> None:
    assert (await run_cli(["pause", "campaign-7"], cli_env)).code == USAGE
    too_long = await run_cli(["pause", str(uuid.uuid4()), "--reason", "x" * 1001], cli_env)
    assert too_long.code == USAGE
