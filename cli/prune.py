"""`broadcast prune [--dry-run] [--older-than DAYS]`: finished campaigns leave the hot tables.

A campaign is pruned once it has been terminal (nothing pending, queued or sent, as
`campaign_overview` says; or cancelled) for longer than the retention
(`RETENTION_DAYS`, default 30; `--older-than` overrides it), counted from its last
change: its own row, a recipient's row or a status event. Its ledger rows and their
`message_statuses` rows go in batches of `--batch-size` (default 5,000), each batch
one short statement of its own, so sends of other campaigns never wait on it
(docs/design.md "Retention" has the measurement). Each pruned message id is kept as
a tombstone (`pruned_messages`), written with the batch that deletes its rows: a
`projector rebuild` drops those ids from the replayed topic, and each prune also
deletes statuses that arrived for them since (a late receipt) and status records set
aside under their key (`status_rejects`). Then the campaign row, its chunks and early
control events go, and `pruned_campaigns` records it.

`quota_contacts` rows older than the quota window (`QUOTA_WINDOW_SECONDS`) plus an
hour no longer count for any sender's budget and are deleted in batches too; nothing
inside the window is touched.

`--dry-run` changes nothing and prints what would go. Exit 1 when another prune is
running, 4 when PostgreSQL is unreachable. An interrupted prune is resumed by the
next one (a half-pruned campaign is still terminal and old).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from cli import output
from cli.database import Q, connect
from cli.errors import Failed, UsageError
from cli.output import Console, duration, number
from cli.settings import CliSettings
from consumer.intake.store import campaign_lock_keys

DEFAULT_BATCH_SIZE: Final = 5_000
MAX_BATCH_SIZE: Final = 50_000
# Kept beyond the quota window: the dispatcher's clock is not the database's.
QUOTA_MARGIN: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Campaigns terminal before `campaigns`, quota contacts older than `quota`, go."""

    now: datetime
    campaigns: datetime
    quota: datetime


def cutoffs(now: datetime, older_than_days: int, quota_window_seconds: int) -> Cutoffs:
    if older_than_days < 0:
        raise UsageError(f"--older-than must be >= 0 days, got {older_than_days}")
    return Cutoffs(
        now=now,
        campaigns=now - timedelta(days=older_than_days),
        quota=now - timedelta(seconds=quota_window_seconds) - QUOTA_MARGIN,
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    campaign_id: uuid.UUID
    state: str
    phone_number_id: str | None
    recipients: int
    statuses: int
    terminal_at: datetime | None


@dataclass(slots=True)
class PruneReport:
    dry_run: bool
    older_than_days: int
    cutoffs: Cutoffs
    campaigns: list[Candidate]
    ledger_rows: int = 0
    status_rows: int = 0
    quota_contacts: int = 0
    # Statuses folded for pruned messages since they were pruned; status records set aside.
    late_statuses: int = 0
    rejects: int = 0
    # Campaigns with a recipient pending again (a retry raced the prune): left in place.
    kept: list[uuid.UUID] = field(default_factory=list)
    bytes_estimate: int | None = None
    seconds: float = 0.0


def _candidate(row: asyncpg.Record) -> Candidate:
    return Candidate(
        campaign_id=row["campaign_id"],
        state=row["state"],
        phone_number_id=row["phone_number_id"],
        recipients=row["recipients"],
        statuses=row["statuses"],
        terminal_at=row["terminal_at"],
    )


async def _bytes_estimate(connection: asyncpg.Connection, ledger: int, statuses: int) -> int | None:
    per_ledger: float | None = await connection.fetchval(Q["row_bytes"], "ledger")
    per_status: float | None = await connection.fetchval(Q["row_bytes"], "message_statuses")
    if per_ledger is None or (statuses and per_status is None):
        return None
    return round(ledger * per_ledger + statuses * (per_status or 0))


async def prune_campaign(
    connection: asyncpg.Connection, candidate: Candidate, batch_size: int, report: PruneReport
) -> None:
    async with connection.transaction():
        # Intake's lock on the campaign: a chunk redelivered now either lands before this
        # record (and its rows are pruned with the rest) or sees it and is dead-lettered.
        await connection.execute(Q["lock_campaign"], *campaign_lock_keys(candidate.campaign_id))
        await connection.execute(
            Q["prune_campaign_start"],
            candidate.campaign_id,
            candidate.phone_number_id,
            candidate.state,
            candidate.recipients,
            candidate.terminal_at,
        )
    last_phone = ""
    while True:
        row = await connection.fetchrow(
            Q["prune_ledger_batch"], candidate.campaign_id, last_phone, batch_size
        )
        assert row is not None  # an aggregate: always one row
        if row["last_phone"] is None:
            break
        last_phone = row["last_phone"]
        report.ledger_rows += row["ledger_rows"]
        report.status_rows += row["status_rows"]
    if not await connection.fetchval(Q["prune_campaign_finish"], candidate.campaign_id):
        report.kept.append(candidate.campaign_id)


async def _sweep_late_statuses(connection: asyncpg.Connection, batch_size: int) -> int:
    deleted, last_id = 0, ""
    while True:
        row = await connection.fetchrow(Q["prune_sweep_statuses"], last_id, batch_size)
        assert row is not None
        if row["last_id"] is None:
            return deleted
        last_id, deleted = row["last_id"], deleted + row["deleted"]


def _count(status: str) -> int:
    """`DELETE 42` -> 42."""
    return int(status.rsplit(" ", 1)[-1])


async def _prune_quota(
    connection: asyncpg.Connection, before: datetime, batch_size: int, *, dry_run: bool
) -> int:
    total = 0
    for key in [r["budget_key"] for r in await connection.fetch(Q["quota_budget_keys"])]:
        if dry_run:
            total += await connection.fetchval(Q["quota_prunable"], key, before)
            continue
        while deleted := _count(
            await connection.execute(Q["prune_quota_batch"], key, before, batch_size)
        ):
            total += deleted
    return total


async def prune(
    settings: CliSettings,
    *,
    older_than_days: int | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> PruneReport:
    """Prune (or, with `dry_run`, list) what is past retention; see the module docstring."""
    days = settings.retention_days if older_than_days is None else older_than_days
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise UsageError(f"--batch-size must be 1..{MAX_BATCH_SIZE:,}, got {batch_size}")
    started = time.monotonic()
    async with connect(settings) as connection:
        # The database's clock: the one every updated_at was written with.
        limits = cutoffs(
            await connection.fetchval("SELECT now()"), days, settings.quota_window_seconds
        )
        if not dry_run and not await connection.fetchval(Q["try_prune_lock"]):
            raise Failed("another prune is running")
        try:
            candidates = [
                _candidate(r)
                for r in await connection.fetch(Q["prune_candidates"], limits.campaigns)
            ]
            report = PruneReport(dry_run, days, limits, candidates)
            planned_ledger = sum(c.recipients for c in candidates)
            planned_statuses = sum(c.statuses for c in candidates)
            report.bytes_estimate = await _bytes_estimate(
                connection, planned_ledger, planned_statuses
            )
            if dry_run:
                report.ledger_rows, report.status_rows = planned_ledger, planned_statuses
            else:
                for candidate in candidates:
                    await prune_campaign(connection, candidate, batch_size, report)
                report.late_statuses = await _sweep_late_statuses(connection, batch_size)
                report.rejects = _count(await connection.execute(Q["prune_sweep_rejects"]))
            report.quota_contacts = await _prune_quota(
                connection, limits.quota, batch_size, dry_run=dry_run
            )
        finally:
            if not dry_run:
                await connection.fetchval(Q["release_prune_lock"])
    report.seconds = time.monotonic() - started
    return report


# --- output ---------------------------------------------------------------------------


def size(value: int | None) -> str:
    """`3_250_000` -> `3.1 MiB`; None (not known) -> `unknown`."""
    if value is None:
        return "unknown"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S%z")


def report_lines(report: PruneReport) -> list[str]:
    verb = "would prune" if report.dry_run else "pruned"
    lines = [
        f"{verb} {number(len(report.campaigns))} campaign(s) terminal for more than "
        f"{report.older_than_days} day(s) (before {_moment(report.cutoffs.campaigns)})"
    ]
    if report.campaigns:
        rows: list[Sequence[object]] = [
            (str(c.campaign_id), c.state, _moment(c.terminal_at), c.recipients, c.statuses)
            for c in report.campaigns
        ]
        rows.append(("total", "", "", report.ledger_rows, report.status_rows))
        lines.extend(
            output.table(
                ["campaign", "state", "last change", "recipients", "statuses"], rows, indent=2
            )
        )
    lines.append(
        f"{'ledger rows':<15} {number(report.ledger_rows)}, message_statuses rows "
        f"{number(report.status_rows)}, about {size(report.bytes_estimate)}"
    )
    lines.append(
        f"{'quota_contacts':<15} {number(report.quota_contacts)} row(s) older than "
        f"{_moment(report.cutoffs.quota)} (the quota window plus 1h)"
    )
    if report.dry_run:
        lines.append("dry run: nothing deleted")
        return lines
    lines.append(
        f"{'swept':<15} {number(report.late_statuses)} late status row(s) of pruned "
        f"messages, {number(report.rejects)} status_rejects row(s)"
    )
    lines.extend(
        f"kept {campaign_id}: a recipient is pending again (retried?)"
        for campaign_id in report.kept
    )
    lines.append(f"done in {duration(report.seconds)}")
    return lines


def to_json(report: PruneReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "older_than_days": report.older_than_days,
        "cutoff": report.cutoffs.campaigns,
        "quota_cutoff": report.cutoffs.quota,
        "campaigns": [
            {
                "campaign_id": str(c.campaign_id),
                "state": c.state,
                "sender": c.phone_number_id,
                "terminal_at": c.terminal_at,
                "recipients": c.recipients,
                "statuses": c.statuses,
            }
            for c in report.campaigns
        ],
        "ledger_rows": report.ledger_rows,
        "status_rows": report.status_rows,
        "bytes_estimate": report.bytes_estimate,
        "quota_contacts": report.quota_contacts,
        "late_statuses": report.late_statuses,
        "rejects": report.rejects,
        "kept": [str(campaign_id) for campaign_id in report.kept],
        "seconds": round(report.seconds, 3),
    }


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "prune",
        parents=[common],
        help="delete campaigns finished longer ago than the retention, and old quota contacts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dry-run", action="store_true", help="change nothing; list what goes")
    parser.add_argument(
        "--older-than",
        type=int,
        metavar="DAYS",
        help="days a campaign has been terminal (default RETENTION_DAYS, 30)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per delete statement (default {DEFAULT_BATCH_SIZE:,})",
    )
    parser.set_defaults(handler=_handle)


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    report = await prune(
        settings,
        older_than_days=args.older_than,
        dry_run=args.dry_run,
        batch_size=args.batch_size,
    )
    console.lines(report_lines(report))
    console.emit(to_json(report))
    return 0
