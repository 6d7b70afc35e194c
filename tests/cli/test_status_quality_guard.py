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
