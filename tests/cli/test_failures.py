"""`broadcast failed` and `broadcast retry` against seeded ledgers in the real database."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cli.errors import FAILED, NOT_FOUND, OK, USAGE
from tests.cli.conftest import Row, new_message_id, new_phone, run_cli, seed


@pytest.fixture
async def failures(db_pool: asyncpg.Pool) -> dict[str, Any]:
    """A campaign with one recipient per failure situation, by name."""
    ids = {name: new_message_id() for name in ("accepted", "permanent", "overridden", "queued")}
    rows = {
        # The API never accepted it (a 5xx): same key on retry.
        "never_accepted": Row(new_phone(), "failed", error_code="internal_error", attempts=12),
        # Accepted, then failed by webhook: next key generation on retry.
        "accepted": Row(
            new_phone(),
            "failed",
            message_id=ids["accepted"],
            error_code="whatsapp_upstream_error",
            error_message="upstream",
            generation=1,
            seen=("failed",),
            status_error_code="whatsapp_upstream_error",
        ),
        "unknown": Row(new_phone(), "failed", error_code="outcome_unknown"),
        "permanent": Row(
            new_phone(),
            "failed",
            message_id=ids["permanent"],
            error_code="recipient_not_on_whatsapp",
            seen=("sent", "failed"),
            status_error_code="recipient_not_on_whatsapp",
        ),
        # A delivery after the failure (multi-device): not failed in the read model.
        "overridden": Row(
            new_phone(),
            "failed",
            message_id=ids["overridden"],
            error_code="recipient_blocked",
            seen=("failed", "delivered"),
            status_error_code="recipient_blocked",
        ),
        # Failed by webhook, not yet reconciled by the dispatcher: it is the dispatcher's.
        "queued": Row(
            new_phone(),
            "queued",
            message_id=ids["queued"],
            seen=("failed",),
            status_error_code="pair_rate_limited",
        ),
    }
    campaign = await seed(db_pool, list(rows.values()))
    return {"campaign": campaign, "rows": rows}


async def ledger(pool: asyncpg.Pool, campaign: uuid.UUID, phone: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM ledger WHERE campaign_id = $1 AND phone = $2", campaign, phone
    )
    assert row is not None
    return row


async def test_failed_buckets_by_code_and_kind(
    cli_env: dict[str, str], failures: dict[str, Any]
) -> None:
    campaign = failures["campaign"]
    result = await run_cli(["failed", str(campaign), "--json"], cli_env)
    assert result.code == OK
    report = result.json()
    assert sorted((b["code"], b["count"], b["kind"]) for b in report["buckets"]) == [
        ("internal_error", 1, "retryable"),
        ("outcome_unknown", 1, "unknown"),
        ("pair_rate_limited", 1, "retryable"),
        ("recipient_not_on_whatsapp", 1, "permanent"),
        ("whatsapp_upstream_error", 1, "retryable"),
    ]
    assert report["total"] == 5
    text = (await run_cli(["failed", str(campaign)], cli_env)).out
    assert "outcome_unknown" in text
    assert "unknown: may have been sent" in text
    assert text.splitlines()[-1].split() == ["total", "5"]


async def test_failed_exports_csv_to_a_file_and_to_stdout(
    cli_env: dict[str, str], failures: dict[str, Any], tmp_path: Path
) -> None:
    campaign, rows = failures["campaign"], failures["rows"]
    target = tmp_path / "failed.csv"
    result = await run_cli(["failed", str(campaign), "--csv", str(target)], cli_env)
    assert result.code == OK
    assert "wrote 5 row(s)" in result.out
    exported = list(csv.DictReader(target.open(encoding="utf-8")))
    assert list(exported[0]) == [
        "phone",
        "status",
        "error_code",
        "error_message",
        "message_id",
        "updated_at",
    ]
    by_phone = {r["phone"]: r for r in exported}
    assert by_phone[rows["accepted"].phone]["message_id"] == rows["accepted"].message_id
    assert by_phone[rows["unknown"].phone]["message_id"] == ""
    assert rows["overridden"].phone not in by_phone

    stdout = await run_cli(["failed", str(campaign), "--csv", "-"], cli_env)
    assert list(csv.DictReader(io.StringIO(stdout.out))) == exported
    both = await run_cli(["failed", str(campaign), "--csv", "-", "--json"], cli_env)
    assert both.code == USAGE


async def test_retry_requeues_retryable_failures_with_the_right_key(
    cli_env: dict[str, str], failures: dict[str, Any], db_pool: asyncpg.Pool, database_url: str
) -> None:
    campaign, rows = failures["campaign"], failures["rows"]
    listener = await asyncpg.connect(database_url)
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(
        "campaign_state", lambda _c, _p, _ch, payload: notified.put_nowait(payload)
    )
    try:
        result = await run_cli(["retry", str(campaign), "--json"], cli_env)
        assert result.code == OK, result.err
        assert await asyncio.wait_for(notified.get(), 5) == str(campaign)
    finally:
        await listener.close()
    report = result.json()
    assert report["requeued"] == [
        {"code": "internal_error", "count": 1, "new_key": 0},
        {"code": "whatsapp_upstream_error", "count": 1, "new_key": 1},
    ]
    assert sorted(b["code"] for b in report["still_failed"]) == [
        "outcome_unknown",
        "pair_rate_limited",
        "recipient_not_on_whatsapp",
    ]

    never = await ledger(db_pool, campaign, rows["never_accepted"].phone)
    accepted = await ledger(db_pool, campaign, rows["accepted"].phone)
    for row in (never, accepted):
        assert row["status"] == "pending"
        assert row["attempts"] == 0
        assert (row["reason"], row["error_code"], row["error_message"]) == (None, None, None)
        assert (row["next_attempt_at"], row["uncertain_since"], row["claim_token"]) == (
            None,
            None,
            None,
        )
        assert row["message_id"] is None
    assert never["generation"] == 0  # same idempotency key
    assert accepted["generation"] == 2  # the next key generation
    for name in ("unknown", "permanent", "overridden"):
        assert (await ledger(db_pool, campaign, rows[name].phone))["status"] == "failed"
    assert (await ledger(db_pool, campaign, rows["queued"].phone))["status"] == "queued"

    again = await run_cli(["retry", str(campaign)], cli_env)
    assert again.code == OK
    assert "re-queued 0 recipient(s)" in again.out


async def test_outcome_unknown_needs_the_flag_and_a_warning(
    cli_env: dict[str, str], failures: dict[str, Any], db_pool: asyncpg.Pool
) -> None:
    campaign, rows = failures["campaign"], failures["rows"]
    refused = await run_cli(["retry", str(campaign), "--codes", "outcome_unknown"], cli_env)
    assert refused.code == USAGE
    assert "--include-unknown" in refused.err
    assert (await ledger(db_pool, campaign, rows["unknown"].phone))["status"] == "failed"

    result = await run_cli(
        ["retry", str(campaign), "--codes", "outcome_unknown", "--include-unknown"], cli_env
    )
    assert result.code == OK
    assert "warning: --include-unknown re-sends 1 recipient(s)" in result.err
    assert "may get the message twice" in result.err
    row = await ledger(db_pool, campaign, rows["unknown"].phone)
    assert (row["status"], row["generation"]) == ("pending", 0)
    # Only the codes asked for: the retryable ones stay failed this time.
    assert (await ledger(db_pool, campaign, rows["never_accepted"].phone))["status"] == "failed"


async def test_retry_of_explicit_permanent_codes(
    cli_env: dict[str, str], failures: dict[str, Any], db_pool: asyncpg.Pool
) -> None:
    campaign, rows = failures["campaign"], failures["rows"]
    result = await run_cli(
        ["retry", str(campaign), "--codes", "recipient_not_on_whatsapp,recipient_blocked"],
        cli_env,
    )
    assert result.code == OK
    assert "re-queued 1 recipient(s)" in result.out
    row = await ledger(db_pool, campaign, rows["permanent"].phone)
    assert (row["status"], row["generation"], row["message_id"]) == ("pending", 1, None)
    # The delivered-after-failed recipient got the message: never re-sent.
    assert (await ledger(db_pool, campaign, rows["overridden"].phone))["status"] == "failed"


async def test_retry_refuses_a_cancelled_campaign_and_notes_a_paused_one(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    failed = Row(new_phone(), "failed", error_code="internal_error")
    cancelled = await seed(db_pool, [failed], state="cancelled")
    result = await run_cli(["retry", str(cancelled)], cli_env)
    assert (result.code, result.err) == (
        FAILED,
        f"broadcast: campaign {cancelled} is cancelled: nothing re-queued\n",
    )
    paused = await seed(
        db_pool, [Row(new_phone(), "failed", error_code="internal_error")], state="paused"
    )
    noted = await run_cli(["retry", str(paused)], cli_env)
    assert noted.code == OK
    assert "is paused: the re-queued recipients go out once it is active again" in noted.err


async def test_unknown_campaign(cli_env: dict[str, str]) -> None:
    campaign = str(uuid.uuid4())
    for argv in (["failed", campaign], ["retry", campaign], ["failed", campaign, "--csv", "-"]):
        result = await run_cli(argv, cli_env)
        assert result.code == NOT_FOUND, argv
        assert result.err == f"broadcast: campaign {campaign} not found\n"
