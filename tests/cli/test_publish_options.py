"""`broadcast publish --priority / --quiet-hours / --quality-guard`: the flags are checked
with the schema's rules, every chunk's event carries the options (so the chunks agree on
the campaign's header), intake stores them, and the preview shows them."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from cli.campaign_options import options_line, quality_guard_flag, quality_guard_text
from cli.chunks import Campaign
from cli.errors import OK, USAGE, UsageError
from consumer.intake.header import header_of
from devstack.procs import free_port
from schemas.requests import (
    BroadcastRequested,
    Chunk,
    QualityGuard,
    QuietHours,
    Recipient,
    Sender,
    decode_request_event,
    encode_request_event,
)
from tests.cli.conftest import SENDER, intake_until_idle, new_phone, run_cli
from tests.cli.test_publish import OPTED, TEMPLATE, write_csv
from tests.intake.builders import template
from tests.topics import read_all

OFFLINE_PLAN = ["--tier", "TIER_1K", "--write-per-minute", "60", "--timeout", "3"]


def _offline(cli_env: dict[str, str]) -> dict[str, str]:
    return {
        **cli_env,
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        "KIRIM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
    }


@pytest.mark.parametrize(
    ("raw", "guard"),
    [
        (None, None),
        ("off", QualityGuard(enabled=False)),
        (" OFF ", QualityGuard(enabled=False)),
        ("on", QualityGuard()),
        ("min_sends=200", QualityGuard(min_sends=200)),
        (
            "window_seconds=1800, min_sends=50,max_failure_rate=0.05,pause_at_quality=red",
            QualityGuard(
                window_seconds=1800, min_sends=50, max_failure_rate=0.05, pause_at_quality="RED"
            ),
        ),
        ("max_failure_rate=1", QualityGuard(max_failure_rate=1.0)),
        ("window_seconds=604800", QualityGuard(window_seconds=604_800)),
    ],
)
def test_good_quality_guards_survive_the_event_round_trip(
    raw: str | None, guard: QualityGuard | None
) -> None:
    parsed = quality_guard_flag(raw)
    assert parsed == guard
    campaign = Campaign(uuid.uuid4(), Sender(auto=True), template(), quality_guard=parsed)
    event = campaign.event([Recipient(phone="+628123000000")], Chunk())
    decoded = decode_request_event(encode_request_event(event))
    assert isinstance(decoded, BroadcastRequested)
    assert decoded.quality_guard == guard


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "--quality-guard '': expected off, on, or KEY=VALUE"),
        ("min_sends", "--quality-guard 'min_sends': expected off, on, or KEY=VALUE"),
        ("min_sends=", "--quality-guard 'min_sends=': expected"),
        ("off,min_sends=5", "--quality-guard 'off,min_sends=5': expected off, on, or KEY"),
        ("enabled=false", "--quality-guard: unknown key 'enabled'"),
        ("min_sends=1,min_sends=2", "--quality-guard: min_sends given twice"),
        ("min_sends=1.5", "--quality-guard min_sends=1.5: expected an integer"),
        ("max_failure_rate=lots", "--quality-guard max_failure_rate=lots: expected a number"),
        ("min_sends=0", "--quality-guard min_sends=0: expected int >= 1"),
        ("min_sends=5,window_seconds=30", "--quality-guard window_seconds=30: expected int >= 60"),
        ("window_seconds=604801", "--quality-guard window_seconds=604801: expected int <= 604800"),
        ("max_failure_rate=0", "--quality-guard max_failure_rate=0: expected float > 0.0"),
        ("max_failure_rate=1.5", "--quality-guard max_failure_rate=1.5: expected float <= 1.0"),
        ("max_failure_rate=nan", "--quality-guard max_failure_rate=nan: expected float > 0.0"),
        (
            "pause_at_quality=BLUE",
            "--quality-guard pause_at_quality=BLUE: expected GREEN, YELLOW or RED",
        ),
    ],
)
def test_bad_quality_guards_name_the_flag(raw: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        quality_guard_flag(raw)
    assert refused.value.message.startswith(message), refused.value.message


@pytest.mark.parametrize(
    ("guard", "text"),
    [
        (None, "quality guard: the dispatcher's defaults"),
        (QualityGuard(enabled=False), "quality guard off"),
        (QualityGuard(), "quality guard on (the dispatcher's thresholds)"),
        (
            QualityGuard(max_failure_rate=0.05, window_seconds=1800),
            "quality guard on: window 30m, engagement failures over 5% (the rest: the "
            "dispatcher's)",
        ),
        (
            QualityGuard(
                window_seconds=3600, min_sends=1000, max_failure_rate=0.1, pause_at_quality="RED"
            ),
            "quality guard on: window 1h, at least 1,000 sends, engagement failures over 10%, "
            "pause at RED or below",
        ),
    ],
)
def test_the_preview_says_what_the_guard_does(guard: QualityGuard | None, text: str) -> None:
    assert quality_guard_text(guard) == text


def test_the_options_line() -> None:
    assert options_line("bulk", None, None) == (
        "options     priority bulk; no quiet hours; quality guard: the dispatcher's defaults"
    )
    hours = QuietHours(start="21:00", end="08:00", time_zone="Asia/Jakarta")
    assert options_line("transactional", hours, QualityGuard(enabled=False)) == (
        "options     priority transactional (sent before bulk); quiet hours 21:00-08:00 local, "
        "Asia/Jakarta if unknown; quality guard off"
    )


def test_every_chunk_event_carries_the_options() -> None:
    guard = QualityGuard(min_sends=20)
    campaign = Campaign(
        uuid.uuid4(), Sender(auto=True), template(), priority="transactional", quality_guard=guard
    )
    event = campaign.event([], Chunk(index=1, count=2))
    assert (event.priority, event.quality_guard) == ("transactional", guard)
    plain = Campaign(campaign.campaign_id, campaign.sender, campaign.template)
    # The envelope the chunk budget is measured with includes them.
    assert campaign.envelope_bytes(Chunk()) > plain.envelope_bytes(Chunk())


async def test_bad_option_flags_are_one_line_usage_errors(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A")])
    argv = ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run", *OFFLINE_PLAN]
    for bad, flag in (
        (["--priority", "urgent"], "--priority"),
        (["--priority"], "--priority"),
        (["--quality-guard", "min_sends=0"], "--quality-guard"),
        (["--quality-guard", "pause_at_quality=ORANGE"], "--quality-guard"),
        (["--quality-guard", "sometimes"], "--quality-guard"),
        (["--quiet-hours", "21:00-21:00"], "--quiet-hours"),
        (["--quiet-hours", "22-07"], "--quiet-hours"),
        (["--quiet-hours", "21:00-08:00", "--quiet-hours-zone", "Nowhere/Land"], "--quiet-hours"),
    ):
        result = await run_cli([*argv, *bad], _offline(cli_env))
        assert result.code == USAGE, (bad, result.err)
        assert result.err.count("\n") == 1, (bad, result.err)
        assert flag in result.err, (bad, result.err)
        json = await run_cli([*argv, *bad, "--json"], _offline(cli_env))
        assert json.json()["error"]["code"] == "usage"


async def test_the_dry_run_preview_shows_the_options(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A"), (new_phone(), OPTED, "B")])
    argv = ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run", *OFFLINE_PLAN]
    options = ["--priority", "transactional", "--quiet-hours", "21:00-08:00"]
    options += ["--quiet-hours-zone", "Asia/Jakarta"]
    options += ["--quality-guard", "max_failure_rate=0.05,pause_at_quality=RED"]
    text = await run_cli([*argv, *options], _offline(cli_env))
    assert text.code == OK, text.err
    assert (
        "options     priority transactional (sent before bulk); quiet hours 21:00-08:00 local, "
        "Asia/Jakarta if unknown; quality guard on: engagement failures over 5%, pause at RED "
        "or below (the rest: the dispatcher's)"
    ) in text.out.splitlines()
    report = (await run_cli([*argv, *options, "--json"], _offline(cli_env))).json()
    assert report["options"] == {
        "priority": "transactional",
        "quiet_hours": {"start": "21:00", "end": "08:00", "time_zone": "Asia/Jakarta"},
        "quality_guard": {
            "enabled": True,
            "window_seconds": None,
            "min_sends": None,
            "max_failure_rate": 0.05,
            "pause_at_quality": "RED",
        },
    }

    plain = await run_cli([*argv, "--json"], _offline(cli_env))
    assert plain.json()["options"] == {
        "priority": "bulk",
        "quiet_hours": None,
        "quality_guard": None,
    }
    off = await run_cli([*argv, "--quality-guard", "off"], _offline(cli_env))
    assert "options     priority bulk; no quiet hours; quality guard off" in off.out


async def test_published_chunks_carry_the_options_and_intake_stores_them(
    cli_env: dict[str, str], database_url: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rows = [(new_phone(), OPTED, f"n{i}") for i in range(5)]
    csv = write_csv(tmp_path / "r.csv", rows)
    campaign = uuid.uuid4()
    argv = ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--chunk-size", "2"]
    argv += ["--campaign-id", str(campaign), "--priority", "transactional"]
    argv += ["--quiet-hours", "21:30-07:15", "--quiet-hours-zone", "Asia/Jakarta"]
    argv += ["--quality-guard", "window_seconds=900,min_sends=30"]
    result = await run_cli(argv, cli_env)
    assert result.code == OK, result.err

    records = await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"])
    events = [decode_request_event(r.value) for r in records]
    assert len(events) == 3
    hours = QuietHours(start="21:30", end="07:15", time_zone="Asia/Jakarta")
    guard = QualityGuard(window_seconds=900, min_sends=30)
    for event in events:
        assert isinstance(event, BroadcastRequested)
        assert (event.priority, event.quiet_hours, event.quality_guard) == (
            "transactional",
            hours,
            guard,
        )
    # All chunks agree on the header intake fingerprints.
    assert len({header_of(e).fingerprint for e in events if isinstance(e, BroadcastRequested)}) == 1

    await intake_until_idle(cli_env, database_url)
    stored = await db_pool.fetchrow(
        "SELECT priority, quiet_hours::text AS quiet, quality_guard::text AS guard, "
        "(SELECT count(*) FROM ledger WHERE campaign_id = $1) AS recipients "
        "FROM campaigns WHERE campaign_id = $1",
        campaign,
    )
    assert stored is not None
    assert stored["priority"] == "transactional"
    assert stored["recipients"] == 5
    assert msgspec.json.decode(stored["quiet"]) == {
        "start": "21:30",
        "end": "07:15",
        "time_zone": "Asia/Jakarta",
    }
    # As the event says it (defaults omitted): enabled is the default.
    assert msgspec.json.decode(stored["guard"]) == {"window_seconds": 900, "min_sends": 30}
