"""`broadcast status` of a campaign the template-health breaker paused: the reason shows."""

from __future__ import annotations

import asyncpg

from cli.errors import OK
from tests.cli.conftest import Row, new_message_id, new_phone, run_cli, seed


async def test_a_campaign_paused_by_its_guard_says_so(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    campaign = await seed(
        db_pool,
        [
            Row(new_phone()),
            Row(new_phone()),
            Row(new_phone(), "queued", message_id=new_message_id(), seen=("sent", "delivered")),
        ],
        state="paused",
        state_reason="quality_guard",
    )
    result = await run_cli(["status", str(campaign)], cli_env)
    assert result.code == OK
    assert "state     paused (quality_guard)" in result.out
    # Nothing is lost: the unsent wait, as paused.
    assert "  pending: paused 2" in result.out
    report = (await run_cli(["status", str(campaign), "--json"], cli_env)).json()
    assert (report["state"], report["state_reason"]) == ("paused", "quality_guard")


async def test_the_trip_figures_show_with_the_pause(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    campaign = await seed(
        db_pool, [Row(new_phone()), Row(new_phone())], state="paused", state_reason="quality_guard"
    )
    await db_pool.execute(
        "INSERT INTO quality_trips (campaign_id, tripped_at, rule, window_seconds, sends,"
        " health_failures, max_failure_rate)"
        " VALUES ($1, '2026-12-03T10:00:00Z', 'failure_rate', 3600, 200, 30, 0.1)",
        campaign,
    )
    result = await run_cli(["status", str(campaign)], cli_env)
    assert result.code == OK
    assert (
        "  quality guard: paused at 2026-12-03 10:00:00Z: 30 engagement failures of 200 sends"
        " (15.0%) in 1h, over the 10.0% allowed; resume when it is safe"
    ) in result.out
    trip = (await run_cli(["status", str(campaign), "--json"], cli_env)).json()["quality_trip"]
    assert (trip["rule"], trip["sends"], trip["health_failures"]) == ("failure_rate", 200, 30)

    # Resumed, the campaign no longer shows the trip (its figures stay in quality_trips).
    await db_pool.execute(
        "UPDATE campaigns SET state = 'active', state_reason = NULL WHERE campaign_id = $1",
        campaign,
    )
    assert "quality guard:" not in (await run_cli(["status", str(campaign)], cli_env)).out
