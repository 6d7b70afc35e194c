"""`broadcast failed` and `broadcast retry`: failures by code, and re-queueing them.

`failed <campaign>` buckets the recipients the read model shows as `failed` by
error code, each marked:

- `retryable`: a transient cause (`consumer.dispatch.policy.RETRYABLE_CODES`:
  rate limits, upstream errors, exhausted retries...): `retry` re-queues it;
- `permanent`: retrying sends the same thing to the same answer (not on
  WhatsApp, blocked, a template parameter mismatch...);
- `unknown` (`consumer.dispatch.policy.IN_DOUBT_CODES`: `outcome_unknown`, a send
  that may have landed whose idempotency key has expired; `api_anomaly`, an answer
  that could not be taken at its word; `dispatch_error`, an error of our own while
  sending): it MAY HAVE BEEN SENT; `retry --include-unknown` re-sends it.

`retry <campaign>` re-queues failed recipients whose code is retryable (or is in
`--codes`) in one UPDATE (cli/sql/queries.sql `requeue_failed`): back to
`pending` with attempts, backoff, errors and claims cleared. A recipient the API
never accepted (no message id: a 5xx, a 429, retries exhausted) keeps its
idempotency key: Kirim does not store 5xx/429 answers, so the same key is safe
and a send that did land is replayed, not repeated. A recipient whose message
was accepted and then failed (a message id is known) gets the next key
generation: the old key would only replay the old, failed acceptance. Then
`NOTIFY campaign_state` wakes a running dispatcher.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import asyncpg

from cli import output
from cli.database import Q, campaign_overview, connect, parse_campaign_id
from cli.errors import Failed, UsageError
from cli.output import Console, number
from cli.settings import CliSettings
from consumer.dispatch.policy import IN_DOUBT_CODES, RETRYABLE_CODES

UNKNOWN_OUTCOME: Final = "outcome_unknown"
CSV_COLUMNS: Final = ("phone", "status", "error_code", "error_message", "message_id", "updated_at")
Kind = Literal["retryable", "permanent", "unknown"]
_KIND_TEXT: Final[dict[Kind, str]] = {
    "retryable": "retryable",
    "permanent": "permanent",
    "unknown": "unknown: may have been sent (retry --include-unknown)",
}


def failure_kind(code: str) -> Kind:
    """Whether an operator's retry of this code is safe and useful (module docstring)."""
    if code in IN_DOUBT_CODES:
        return "unknown"
    return "retryable" if code in RETRYABLE_CODES else "permanent"


def retry_codes(codes: Sequence[str], include_unknown: bool) -> frozenset[str]:
    """The codes `retry` targets: `codes`, or every retryable one, plus the unknown outcome
    only when asked for explicitly."""
    selected = set(codes) if codes else set(RETRYABLE_CODES)
    in_doubt = sorted(selected & IN_DOUBT_CODES)
    if in_doubt and not include_unknown:
        raise UsageError(
            f"{', '.join(in_doubt)} may have been sent: retrying it needs --include-unknown"
        )
    if include_unknown:
        selected |= IN_DOUBT_CODES
    return frozenset(selected)


@dataclass(frozen=True, slots=True)
class Bucket:
    code: str
    count: int

    @property
    def kind(self) -> Kind:
        return failure_kind(self.code)


@dataclass(frozen=True, slots=True)
class Requeued:
    code: str
    count: int
    # Of those, how many go out under a new key generation (accepted, then failed).
    new_key: int


@dataclass(frozen=True, slots=True)
class RetryResult:
    campaign_id: uuid.UUID
    state: str
    requeued: list[Requeued]
    still_failed: list[Bucket]

    @property
    def total(self) -> int:
        return sum(r.count for r in self.requeued)


async def _buckets(connection: asyncpg.Connection, campaign_id: uuid.UUID) -> list[Bucket]:
    rows = await connection.fetch(Q["failure_buckets"], campaign_id)
    return [Bucket(r["error_code"], r["count"]) for r in rows]


async def failure_buckets(settings: CliSettings, campaign_id: uuid.UUID) -> list[Bucket]:
    """The campaign's failures by code; `NotFound` for an unknown campaign."""
    async with connect(settings) as connection:
        await campaign_overview(connection, campaign_id)
        return await _buckets(connection, campaign_id)


async def export_failed(settings: CliSettings, campaign_id: uuid.UUID, stream: TextIO) -> int:
    """Write the failed rows as CSV (`CSV_COLUMNS`) to `stream`; returns the row count."""
    writer = csv.writer(stream, lineterminator="\n")
    written = 0
    async with connect(settings) as connection:
        await campaign_overview(connection, campaign_id)
        writer.writerow(CSV_COLUMNS)
        async with connection.transaction():
            async for row in connection.cursor(Q["failed_rows"], campaign_id, prefetch=2_000):
                writer.writerow(_csv_value(row[column]) for column in CSV_COLUMNS)
                written += 1
    return written


def _csv_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


async def retry(
    settings: CliSettings, campaign_id: uuid.UUID, codes: frozenset[str]
) -> RetryResult:
    """Re-queue the campaign's failed recipients with one of `codes` (module docstring)."""
    async with connect(settings) as connection:
        overview = await campaign_overview(connection, campaign_id)
        if overview["state"] == "cancelled":
            raise Failed(f"campaign {campaign_id} is cancelled: nothing re-queued")
        async with connection.transaction():
            rows = await connection.fetch(Q["requeue_failed"], campaign_id, sorted(codes))
            if rows:
                await connection.execute(Q["notify_campaign_state"], str(campaign_id))
        requeued = [Requeued(r["error_code"], r["requeued"], r["new_key"]) for r in rows]
        still = await _buckets(connection, campaign_id)
    return RetryResult(campaign_id, overview["state"], requeued, still)


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    failed = commands.add_parser(
        "failed",
        parents=[common],
        help="a campaign's failures by error code, retryable or permanent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    failed.add_argument("campaign", help="campaign id (UUID)")
    failed.add_argument(
        "--csv",
        metavar="FILE",
        help=f"export the failed rows ({', '.join(CSV_COLUMNS)}); - for stdout",
    )
    failed.set_defaults(handler=_handle_failed)

    again = commands.add_parser(
        "retry",
        parents=[common],
        help="re-queue a campaign's retryable failures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    again.add_argument("campaign", help="campaign id (UUID)")
    again.add_argument(
        "--codes", help="comma-separated error codes to retry (default: every retryable code)"
    )
    again.add_argument(
        "--include-unknown",
        action="store_true",
        help="also re-send failures that may have been sent ("
        + ", ".join(sorted(IN_DOUBT_CODES))
        + "): those recipients may get the message twice",
    )
    again.set_defaults(handler=_handle_retry)


def bucket_lines(buckets: Iterable[Bucket]) -> list[str]:
    items = list(buckets)
    rows: list[tuple[object, ...]] = [(b.code, b.count, _KIND_TEXT[b.kind]) for b in items]
    rows.append(("total", sum(b.count for b in items), ""))
    return output.table(["code", "count", "kind"], rows)


def _bucket_json(buckets: Iterable[Bucket]) -> list[dict[str, Any]]:
    return [{"code": b.code, "count": b.count, "kind": b.kind} for b in buckets]


async def _handle_failed(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    campaign_id = parse_campaign_id(args.campaign)
    if args.csv == "-":
        if console.json:
            raise UsageError("--csv - and --json both write to stdout: pick one")
        await export_failed(settings, campaign_id, console.out)
        return 0
    buckets = await failure_buckets(settings, campaign_id)
    if buckets:
        console.lines(bucket_lines(buckets))
    else:
        console.line(f"campaign {campaign_id} has no failed recipients")
    exported = None
    if args.csv is not None:
        path = Path(args.csv)
        try:
            stream = await asyncio.to_thread(path.open, "w", encoding="utf-8", newline="")
        except OSError as error:
            raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
        try:
            exported = await export_failed(settings, campaign_id, stream)
        finally:
            stream.close()
        console.line(f"wrote {number(exported)} row(s) to {path}")
    console.emit(
        {
            "campaign_id": str(campaign_id),
            "buckets": _bucket_json(buckets),
            "total": sum(b.count for b in buckets),
            "exported": None if exported is None else {"file": args.csv, "rows": exported},
        }
    )
    return 0


async def _handle_retry(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    campaign_id = parse_campaign_id(args.campaign)
    wanted = [c.strip() for c in (args.codes or "").split(",") if c.strip()]
    codes = retry_codes(wanted, args.include_unknown)
    result = await retry(settings, campaign_id, codes)
    unknown = sum(r.count for r in result.requeued if r.code in IN_DOUBT_CODES)
    if unknown:
        console.warn(
            f"--include-unknown re-sends {number(unknown)} recipient(s) whose earlier send "
            "may have landed: they may get the message twice"
        )
    console.line(f"re-queued {number(result.total)} recipient(s) of campaign {campaign_id}")
    if result.requeued:
        rows = [(r.code, r.count, r.new_key) for r in result.requeued]
        console.lines(output.table(["code", "requeued", "new key"], rows, indent=2))
    if result.state != "active" and result.total:
        console.note(
            f"campaign {campaign_id} is {result.state}: the re-queued recipients go out "
            "once it is active again"
        )
    if result.still_failed:
        console.line("still failed:")
        console.lines(["  " + line for line in bucket_lines(result.still_failed)])
    console.emit(
        {
            "campaign_id": str(campaign_id),
            "state": result.state,
            "codes": sorted(codes),
            "requeued": [
                {"code": r.code, "count": r.count, "new_key": r.new_key} for r in result.requeued
            ],
            "total": result.total,
            "still_failed": _bucket_json(result.still_failed),
        }
    )
    return 0
