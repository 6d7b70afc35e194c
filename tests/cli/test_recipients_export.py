"""`broadcast recipients`: every recipient of a campaign, against seeded ledgers.

The end-to-end path (publish -> the real consumer's intake -> this export) is in
tests/cli/test_consent.py; here the ledger is written in SQL so that every status the
read model knows is there, and a 200,000-recipient campaign runs as a child process to
show the export streams.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from cli.errors import NOT_FOUND, OK, USAGE
from cli.recipients_export import CSV_COLUMNS
from runtime.logs import mask_phone
from tests.cli.conftest import Row, new_message_id, new_phone, run_cli, seed
from tests.cli.test_publish_stream import MiB, run_child

OPTED = datetime(2026, 1, 5, 10, tzinfo=UTC)
QUEUED = datetime(2026, 11, 27, 12, 41, 6, tzinfo=UTC)


@pytest.fixture
async def campaign(db_pool: asyncpg.Pool) -> dict[str, Any]:
    """One recipient per situation, with the consent each relied on."""
    read_id, failed_id = new_message_id(), new_message_id()
    rows = {
        "read": Row(new_phone(), "queued", message_id=read_id, seen=("sent", "read")),
        "failed": Row(
            new_phone(),
            "queued",
            message_id=failed_id,
            seen=("sent", "failed"),
            status_error_code="recipient_blocked",
        ),
        "pending": Row(new_phone(), "pending", reason="deferred_quota"),
        "skipped": Row(new_phone(), "skipped", reason="not_opted_in"),
    }
    campaign_id = await seed(db_pool, list(rows.values()))
    sources = {"read": "checkout_form", "failed": "crm:import-2026-11", "pending": None}
    for name, source in sources.items():
        await db_pool.execute(
            "UPDATE ledger SET opted_in_at = $3, opt_in_source = $4,"
            " queued_at = CASE WHEN message_id IS NOT NULL THEN $5::timestamptz END"
            " WHERE campaign_id = $1 AND phone = $2",
            campaign_id,
            rows[name].phone,
            OPTED,
            source,
            QUEUED,
        )
    return {"id": campaign_id, "rows": rows}


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_csv_has_every_recipient_with_its_status_and_consent(
    cli_env: dict[str, str], campaign: dict[str, Any], tmp_path: Path
) -> None:
    rows = campaign["rows"]
    result = await run_cli(
        ["recipients", str(campaign["id"]), "--csv", "-", "--show-phones"], cli_env
    )
    assert result.code == OK, result.err
    assert result.out.splitlines()[0] == ",".join(CSV_COLUMNS)
    exported = csv_rows(result.out)
    assert [r["phone"] for r in exported] == sorted(r.phone for r in rows.values())
    by_phone = {r["phone"]: r for r in exported}
    read = by_phone[rows["read"].phone]
    assert read == {
        "phone": rows["read"].phone,
        "status": "read",  # the read model's, over the ledger's queued
        "ledger_status": "queued",
        "reason": "",
        "message_id": rows["read"].message_id,
        "error_code": "",
        "opted_in_at": OPTED.isoformat(),
        "opt_in_source": "checkout_form",
        "queued_at": QUEUED.isoformat(),
    }
    failed = by_phone[rows["failed"].phone]
    assert (failed["status"], failed["error_code"]) == ("failed", "recipient_blocked")
    assert failed["opt_in_source"] == "crm:import-2026-11"
    pending = by_phone[rows["pending"].phone]
    assert (pending["status"], pending["reason"], pending["opt_in_source"]) == (
        "pending",
        "deferred_quota",
        "",
    )
    assert pending["opted_in_at"] == OPTED.isoformat()
    skipped = by_phone[rows["skipped"].phone]
    assert (skipped["status"], skipped["reason"], skipped["opted_in_at"]) == (
        "skipped",
        "not_opted_in",
        "",
    )

    # The same rows to a file; the command says how many.
    target = tmp_path / "recipients.csv"
    to_file = await run_cli(
        ["recipients", str(campaign["id"]), "--csv", str(target), "--show-phones", "--json"],
        cli_env,
    )
    assert to_file.code == OK, to_file.err
    assert to_file.json() == {
        "campaign_id": str(campaign["id"]),
        "status": None,
        "rows": 4,
        "exported": {"file": str(target), "rows": 4},
    }
    assert csv_rows(target.read_text(encoding="utf-8")) == exported


async def test_phones_are_masked_unless_asked_for(
    cli_env: dict[str, str], campaign: dict[str, Any]
) -> None:
    rows = campaign["rows"]
    phones = sorted(r.phone for r in rows.values())
    masked = await run_cli(["recipients", str(campaign["id"]), "--csv", "-"], cli_env)
    assert [r["phone"] for r in csv_rows(masked.out)] == [mask_phone(p) for p in phones]
    assert not any(p in masked.out for p in phones)

    table = await run_cli(["recipients", str(campaign["id"])], cli_env)
    assert table.code == OK, table.err
    lines = table.out.splitlines()
    assert lines[0].split() == list(CSV_COLUMNS)
    assert len(lines) == 1 + 4 + 1
    assert lines[-1] == f"4 recipient(s) of campaign {campaign['id']}"
    assert not any(p in table.out for p in phones)
    read = next(line for line in lines if rows["read"].message_id in line)
    assert read.split()[:3] == [mask_phone(rows["read"].phone), "read", "queued"]
    assert "checkout_form" in read
    # Columns line up: every cell of a column starts where its header does.
    start = lines[0].index("opt_in_source")
    assert read[start:].startswith("checkout_form")

    full = await run_cli(["recipients", str(campaign["id"]), "--show-phones"], cli_env)
    assert all(p in full.out for p in phones)


async def test_status_filter_and_json_lines(
    cli_env: dict[str, str], campaign: dict[str, Any]
) -> None:
    rows = campaign["rows"]
    result = await run_cli(
        ["recipients", str(campaign["id"]), "--status", "failed", "--json", "--show-phones"],
        cli_env,
    )
    assert result.code == OK, result.err
    lines = [msgspec.json.decode(line) for line in result.out.splitlines()]
    assert len(lines) == 2  # one recipient, then the summary
    assert lines[0]["phone"] == rows["failed"].phone
    assert lines[0]["status"] == "failed"
    assert set(lines[0]) == set(CSV_COLUMNS)
    assert lines[-1] == {
        "campaign_id": str(campaign["id"]),
        "status": "failed",
        "rows": 1,
        "exported": None,
    }
    text = await run_cli(["recipients", str(campaign["id"]), "--status", "delivered"], cli_env)
    assert text.out.splitlines() == [
        "  ".join(CSV_COLUMNS),
        f"0 recipient(s) with status delivered of campaign {campaign['id']}",
    ]


async def test_unknown_campaign_and_bad_usage(
    cli_env: dict[str, str], campaign: dict[str, Any], tmp_path: Path
) -> None:
    missing = uuid.uuid4()
    target = tmp_path / "never.csv"
    result = await run_cli(["recipients", str(missing), "--csv", str(target)], cli_env)
    assert result.code == NOT_FOUND
    assert result.err == f"broadcast: campaign {missing} not found\n"
    assert not target.exists()  # nothing is written for a campaign that is not there
    as_json = await run_cli(["recipients", str(missing), "--json"], cli_env)
    assert as_json.code == NOT_FOUND
    assert as_json.json()["error"]["code"] == "not_found"

    for argv in (
        ["recipients", "not-a-uuid"],
        ["recipients", str(campaign["id"]), "--status", "lost"],
        ["recipients", str(campaign["id"]), "--csv", "-", "--json"],
        ["recipients", str(campaign["id"]), "--csv", str(tmp_path / "no" / "dir.csv")],
    ):
        bad = await run_cli(argv, cli_env)
        assert bad.code == USAGE, argv
        assert bad.err.count("\n") == 1, bad.err


async def seed_many(pool: asyncpg.Pool, count: int) -> uuid.UUID:
    """A campaign of `count` recipients written in one statement, most of them accepted."""
    campaign_id = await seed(pool, [])
    await pool.execute(
        "INSERT INTO ledger (campaign_id, phone, status, chunk_index, message_id, opted_in_at,"
        "                    opt_in_source, queued_at)"
        " SELECT $1, '+62815' || lpad(n::text, 7, '0'),"
        "        CASE WHEN n % 10 = 0 THEN 'pending' ELSE 'queued' END, n / 5000,"
        "        CASE WHEN n % 10 <> 0 THEN 'msg_' || $3::text || n END,"
        "        $4, 'crm:segment-' || (n % 7), now()"
        " FROM generate_series(1, $2::int) AS n",
        campaign_id,
        count,
        campaign_id.hex[:8],
        OPTED,
    )
    return campaign_id


async def test_a_200k_recipient_campaign_streams_in_bounded_memory(
    cli_env: dict[str, str], db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Peak RSS of the export of 200,000 recipients against that of 10: the difference is
    what the rows cost, and must stay far below holding them (~1 KiB a row as records and
    dicts)."""
    big, small = await seed_many(db_pool, 200_000), await seed_many(db_pool, 10)
    env = {"DATABASE_URL": cli_env["DATABASE_URL"]}
    baseline = await asyncio.to_thread(
        run_child, ["recipients", str(small), "--csv", str(tmp_path / "small.csv")], env
    )
    assert baseline.code == OK, baseline.err
    target = tmp_path / "big.csv"
    result = await asyncio.to_thread(
        run_child, ["recipients", str(big), "--csv", str(target), "--show-phones"], env
    )
    assert result.code == OK, result.err
    assert result.out == f"wrote 200,000 row(s) to {target}\n"
    with target.open(encoding="utf-8") as exported:
        assert sum(1 for _ in exported) == 1 + 200_000
    grown = result.max_rss - baseline.max_rss
    print(  # the figures docs/cli.md quotes (pytest -s)
        f"\n200k recipients: {result.seconds:.1f}s, peak RSS {result.max_rss / MiB:.0f} MiB "
        f"(+{grown / MiB:.1f} MiB over 10: {baseline.max_rss / MiB:.0f} MiB)"
    )
    assert grown < 24 * MiB
