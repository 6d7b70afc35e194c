"""`broadcast publish --quiet-hours`: the request carries them, the preview and fit plan
say who is inside them and when they open (offline: no PostgreSQL, no API)."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cli.chunks import Campaign
from cli.errors import OK, USAGE
from devstack.procs import free_port
from schemas.requests import Chunk, QuietHours, Sender
from tests.cli.conftest import SENDER, new_phone, run_cli
from tests.cli.test_publish import OPTED, TEMPLATE, write_csv
from tests.intake.builders import template


def _offline(cli_env: dict[str, str]) -> dict[str, str]:
    return {
        **cli_env,
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        "KIRIM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
    }


def _berlin() -> str:
    return f"+49151{random.randrange(10**8):08d}"


async def test_the_preview_says_who_is_quiet_and_when_they_open(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Quiet in Jakarta from an hour ago to two hours on; Berlin is 5-6 hours behind.
    local = datetime.now(ZoneInfo("Asia/Jakarta")).replace(second=0, microsecond=0)
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    quiet = f"{start:%H:%M}-{end:%H:%M}"
    rows = [(new_phone(), OPTED, "A") for _ in range(30)]
    rows += [(_berlin(), OPTED, "B") for _ in range(10)]
    csv = write_csv(tmp_path / "r.csv", rows)
    argv = ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run"]
    argv += ["--tier", "TIER_1K", "--write-per-minute", "60", "--timeout", "3"]
    before = time.time()
    result = await run_cli([*argv, "--quiet-hours", quiet, "--json"], _offline(cli_env))
    assert result.code == OK, result.err
    fit = result.json()["fit"]
    assert fit["quiet"]["quiet_now"] == 30
    assert fit["quiet"]["openings"] == [
        {
            "at": f"{end.astimezone(UTC):%Y-%m-%d %H:%M}Z",
            "recipients": 30,
            "zones": ["Asia/Jakarta"],
        }
    ]
    groups = {(tuple(g["zones"]), g["recipients"], g["opens_at"]) for g in fit["quiet"]["groups"]}
    assert groups == {
        (("Asia/Jakarta",), 30, fit["quiet"]["openings"][0]["at"]),
        (("Europe/Berlin",), 10, None),
    }
    # Berlin's ten go first; Jakarta's thirty, a second each, once its night ends.
    opens_in = end.timestamp() - before
    assert opens_in + 30 - 5 <= fit["eta_seconds"] <= opens_in + 30 + 5
    text = await run_cli([*argv, "--quiet-hours", quiet], _offline(cli_env))
    assert text.code == OK, text.err
    assert "30 of 40 inside them at the start" in text.out
    assert f"30 from {end.astimezone(UTC):%Y-%m-%d %H:%M}Z" in text.out

    plain = await run_cli([*argv, "--json"], _offline(cli_env))
    assert plain.json()["fit"]["quiet"] is None
    assert plain.json()["fit"]["eta_seconds"] == 40.0


async def test_bad_quiet_hours_are_usage_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A")])
    argv = ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run"]
    for bad in (
        ["--quiet-hours", "21:00"],
        ["--quiet-hours", "21:00-21:00"],
        ["--quiet-hours", "9pm-8am"],
        ["--quiet-hours", "21:00-08:00", "--quiet-hours-zone", "Mars/Olympus"],
        ["--quiet-hours-zone", "Asia/Jakarta"],
    ):
        result = await run_cli([*argv, *bad], cli_env)
        assert result.code == USAGE, (bad, result.err)
        assert "quiet-hours" in result.err


def test_every_chunk_event_carries_the_quiet_hours() -> None:
    hours = QuietHours(start="21:00", end="08:00", time_zone="Asia/Jakarta")
    campaign = Campaign(uuid.uuid4(), Sender(auto=True), template(), quiet_hours=hours)
    event = campaign.event([], Chunk(index=0, count=1))
    assert event.quiet_hours == hours
    plain = Campaign(campaign.campaign_id, campaign.sender, campaign.template)
    # The envelope the chunk budget is measured with includes them.
    assert campaign.envelope_bytes(Chunk(index=0, count=1)) > plain.envelope_bytes(
        Chunk(index=0, count=1)
    )
