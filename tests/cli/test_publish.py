"""`broadcast publish` against real Kafka, PostgreSQL, the sandbox and intake itself."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import asyncpg

from cli.errors import OK, UNAVAILABLE, USAGE
from devstack.procs import free_port
from sandbox.config import Account, RateLimits, RuntimeConfig
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from schemas.requests import BroadcastRequested, decode_request_event
from tests.cli.conftest import SENDER, intake_until_idle, new_phone, run_cli
from tests.topics import read_all

TEMPLATE = ["--template", "promo_flash_sale", "--language", "id_ID", "--body-param", "{{name}}"]
OPTED = "2026-01-05T10:00:00Z"


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("phone,opted_in_at,name\n" + "".join(f"{p},{o},{n}\n" for p, o, n in rows))
    return path


async def test_dry_run_previews_and_publishes_nothing(
    cli_env: dict[str, str], db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    suppressed, good, no_name = new_phone(), new_phone(), new_phone()
    await db_pool.execute(
        "INSERT INTO suppressions (phone, reason, source) VALUES ($1, 'opted_out', 'test')",
        suppressed,
    )
    csv = write_csv(
        tmp_path / "r.csv",
        [
            (good, OPTED, "Budi"),
            (good, OPTED, "Budi"),  # duplicate
            ("0812-not-e164", OPTED, "X"),  # invalid phone
            (new_phone(), "", "Sari"),  # not opted in
            (suppressed, OPTED, "Tono"),
            (no_name, OPTED, ""),  # missing variable
        ],
    )
    result = await run_cli(
        ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run", "--json"], cli_env
    )
    assert result.code == OK, result.err
    report = result.json()
    assert report["preview"] == {
        "eligible": 1,
        "duplicate": 1,
        "invalid_phone": 1,
        "not_opted_in": 1,
        "suppressed": 1,
        "missing_variable": 1,
        "suppressions_checked": True,
    }
    assert report["published"] is None
    assert report["sender"]["tier"] == 1_000  # the sandbox's default account
    assert report["fit"]["windows"] == 1
    assert report["fit"]["write_per_minute"] == 600
    assert await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"]) == []

    text = await run_cli(["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run"], cli_env)
    assert "dry run: nothing published" in text.out
    assert "suppressed            1" in text.out


async def test_publish_chunks_by_campaign_and_intake_agrees_with_the_preview(
    cli_env: dict[str, str], database_url: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rows = [(new_phone(), OPTED, f"n{i}") for i in range(23)]
    rows += [rows[0], ("+1", OPTED, "short"), (new_phone(), "", "late")]
    csv = write_csv(tmp_path / "r.csv", rows)
    campaign = uuid.uuid4()
    result = await run_cli(
        [
            "publish",
            str(csv),
            *TEMPLATE,
            "--sender",
            SENDER,
            "--chunk-size",
            "10",
            "--campaign-id",
            str(campaign),
            "--json",
        ],
        cli_env,
    )
    assert result.code == OK, result.err
    report = result.json()
    assert report["campaign_id"] == str(campaign)
    assert [c["recipients"] for c in report["chunks"]] == [10, 10, 6]

    records = await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"])
    assert len(records) == 3
    assert {r.key for r in records} == {str(campaign).encode()}
    assert len({r.partition for r in records}) == 1
    events = [decode_request_event(r.value) for r in records]
    assert all(isinstance(e, BroadcastRequested) for e in events)
    chunks = [(e.chunk.index, e.chunk.count) for e in events if isinstance(e, BroadcastRequested)]
    assert chunks == [(0, 3), (1, 3), (2, 3)]
    published = [r.phone for e in events if isinstance(e, BroadcastRequested) for r in e.recipients]
    assert published == [p for p, _, _ in rows]
    deliveries = report["published"]["deliveries"]
    assert [d["offset"] for d in deliveries] == [r.offset for r in records]

    await intake_until_idle(cli_env, database_url)
    stored = await db_pool.fetch(
        "SELECT coalesce(reason, 'eligible') AS outcome, count(*) AS n FROM ledger "
        "WHERE campaign_id = $1 GROUP BY 1",
        campaign,
    )
    preview = {k: v for k, v in report["preview"].items() if k != "suppressions_checked" and v}
    preview.pop("duplicate")  # a duplicate has no ledger row of its own
    assert {r["outcome"]: r["n"] for r in stored} == preview

    status = await run_cli(["status", str(campaign), "--json"], cli_env)
    assert status.json()["chunks"] == {"received": 3, "expected": 3}


async def test_a_malformed_row_aborts_with_its_line_number(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "phone,opted_in_at,name\n"
        f"{new_phone()},{OPTED},A\n"
        f"{new_phone()},last tuesday,B\n"
        f"{new_phone()},{OPTED}\n"
    )
    result = await run_cli(["publish", str(csv), *TEMPLATE, "--sender", SENDER], cli_env)
    assert result.code == USAGE
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"broadcast: {csv}: 2 malformed rows, nothing published: line 3: ")
    assert "line 4: 2 fields where the header has 3" in lines[0]
    assert await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"]) == []

    as_json = await run_cli(["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--json"], cli_env)
    assert [r["line"] for r in as_json.json()["error"]["bad_rows"]] == [3, 4]


async def test_bad_flags_are_usage_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A")])
    cases = [
        [*TEMPLATE, "--sender", "12ab"],
        [*TEMPLATE, "--sender", SENDER, "--campaign-id", "nope"],
        [*TEMPLATE, "--sender", SENDER, "--send-at", "2026-01-05T10:00:00"],
        [*TEMPLATE, "--sender", SENDER, "--tier", "lots"],
        [*TEMPLATE],  # neither --sender nor --auto-sender
        ["--sender", SENDER],  # no template
    ]
    for flags in cases:
        result = await run_cli(["publish", str(csv), *flags], cli_env)
        assert result.code == USAGE, flags
        assert result.err.count("\n") == 1
        assert result.err.startswith("broadcast: ")
    missing = await run_cli(
        ["publish", str(tmp_path / "none.csv"), *TEMPLATE, "--auto-sender"], cli_env
    )
    assert (missing.code, "cannot read" in missing.err) == (USAGE, True)


async def test_kafka_down_is_reported_in_bounded_time(
    cli_env: dict[str, str], dead_bootstrap: str, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A")])
    campaign = str(uuid.uuid4())
    started = time.monotonic()
    result = await run_cli(
        [
            "publish",
            str(csv),
            *TEMPLATE,
            "--sender",
            SENDER,
            "--campaign-id",
            campaign,
            "--bootstrap-servers",
            dead_bootstrap,
            "--timeout",
            "3",
        ],
        cli_env,
    )
    assert result.code == UNAVAILABLE
    assert time.monotonic() - started < 15
    # The preview is shown first; the error is one line and says how to finish.
    assert "eligible" in result.out
    [error] = result.err.strip().splitlines()
    assert error.startswith(f"broadcast: Kafka unavailable at {dead_bootstrap}")
    assert f"--campaign-id {campaign}" in error


async def test_offline_preview_without_postgres_or_the_api(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A") for _ in range(3)])
    offline = {
        **cli_env,
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        "KIRIM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
    }
    result = await run_cli(
        ["publish", str(csv), *TEMPLATE, "--sender", SENDER, "--dry-run", "--timeout", "3"], offline
    )
    assert result.code == OK
    assert "suppressions not checked: PostgreSQL unreachable" in result.err
    assert "Kirim API not usable" in result.err
    assert "fit plan    unknown" in result.out

    planned = await run_cli(
        [
            "publish",
            str(csv),
            *TEMPLATE,
            "--sender",
            SENDER,
            "--dry-run",
            "--json",
            "--tier",
            "TIER_250",
            "--write-per-minute",
            "60",
            "--timeout",
            "3",
        ],
        offline,
    )
    fit = planned.json()["fit"]
    assert (fit["tier"], fit["windows"], fit["eta_seconds"]) == (250, 1, 3.0)


async def test_auto_sender_and_a_low_tier_plan_several_windows(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = RuntimeConfig(
        accounts={
            "111111111111": Account(messaging_tier=250),
            "222222222222": Account(messaging_tier=1000, status="disconnected"),
        },
        rate_limits=RateLimits(write_per_minute=60),
    )
    csv = write_csv(tmp_path / "r.csv", [(new_phone(), OPTED, "A") for _ in range(600)])
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        env = {**cli_env, "KIRIM_BASE_URL": sandbox.api_url}
        auto = await run_cli(
            ["publish", str(csv), *TEMPLATE, "--auto-sender", "--dry-run", "--json"], env
        )
        fixed = await run_cli(
            ["publish", str(csv), *TEMPLATE, "--sender", "222222222222", "--dry-run"], env
        )
        unknown = await run_cli(
            ["publish", str(csv), *TEMPLATE, "--sender", "333333333333", "--dry-run"], env
        )
    report = auto.json()
    assert report["sender"] == {
        "phone_number_id": "111111111111",
        "auto": True,
        "status": "connected",
        "tier": 250,
        "tier_source": "api",
    }
    assert report["fit"]["windows"] == 3
    assert report["fit"]["eta_seconds"] == 2 * 86_400 + 100  # the last 100 at 1/s
    assert (
        "3 quota window(s)"
        in (
            await run_cli(
                [
                    "publish",
                    str(csv),
                    *TEMPLATE,
                    "--sender",
                    "111111111111",
                    "--dry-run",
                    "--tier",
                    "250",
                    "--write-per-minute",
                    "60",
                ],
                cli_env,
            )
        ).out
    )
    assert "is disconnected: intake will pause the campaign" in fixed.err
    assert "not an account of this API key" in unknown.err
