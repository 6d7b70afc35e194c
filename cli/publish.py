"""`broadcast publish`: recipients file + template -> preview, fit plan, request events.

Steps: read and validate the file (malformed rows abort with their line numbers,
exit 2); preview what intake will do with each recipient, using intake's own
rules (`consumer.intake.expand`) and the suppression list when PostgreSQL is
reachable; plan the fit from the sender's tier (`GET /v1/accounts`, or `--tier`)
and the write rate (`GET /v1/me`, or `--write-per-minute`); split into chunks;
then, unless `--dry-run`, publish them keyed by the campaign id. Ineligible
recipients are published too: intake records each one as skipped with its reason.
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from cli.chunks import DEFAULT_CHUNK_SIZE, EncodedChunk, build_chunks
from cli.database import Q, connect
from cli.errors import Unavailable, UsageError
from cli.output import Console
from cli.plan import FitPlan, fit_plan
from cli.preview import preview_lines, to_json
from cli.producer import Delivery, PublishUnavailable, Record, publish
from cli.recipients import Audience, Format, detect_format, read_audience
from cli.sender import SenderFacts, sender_facts
from cli.settings import CliSettings
from cli.templates import load_template, template_variables
from consumer.dispatch.tiers import parse_tier
from consumer.intake.expand import OUTCOMES, expand, normalize_recipients
from schemas.requests import BroadcastRequested, Sender
from schemas.template import Template

# Malformed rows listed in the one-line error (all of them in --json).
_SHOWN_BAD_ROWS: Final = 5


@dataclass(frozen=True, slots=True)
class PublishRequest:
    recipients: Path
    format: Format
    template: Template
    sender: Sender
    campaign_id: uuid.UUID
    send_at: datetime | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    dry_run: bool = False
    # Offline overrides of what the API would say.
    tier: int | None = None
    write_per_minute: int | None = None


@dataclass(slots=True)
class Prepared:
    """Everything known before publishing: the preview, the fit plan and the chunks."""

    request: PublishRequest
    rows: int
    counts: dict[str, int]
    suppressions_checked: bool
    sender: SenderFacts
    fit: FitPlan
    chunks: list[EncodedChunk]
    warnings: list[str] = field(default_factory=list)


async def prepare(settings: CliSettings, request: PublishRequest, now: datetime) -> Prepared:
    """Read, validate, preview and plan; `UsageError` on malformed input (nothing published)."""
    audience = read_audience(request.recipients, request.format)
    _refuse_bad_rows(audience, request.recipients)
    if not audience.recipients:
        raise UsageError(f"{request.recipients}: no recipients")
    warnings: list[str] = []
    missing = sorted(template_variables(request.template) - audience.variables)
    if missing:
        warnings.append(
            f"the template uses {', '.join(missing)}, which the file never provides: "
            "those recipients are skipped as missing_variable"
        )
    chunks = build_chunks(
        campaign_id=request.campaign_id,
        sender=request.sender,
        template=request.template,
        recipients=audience.recipients,
        send_at=request.send_at,
        chunk_size=request.chunk_size,
    )
    phones = normalize_recipients(audience.recipients)
    suppressed, checked = await _suppressed(settings, request.campaign_id, phones, warnings)
    # One event holding the whole audience: expand() then applies intake's rules across
    # chunks too (the first occurrence of a phone wins, as the lowest chunk index does).
    whole = BroadcastRequested(
        campaign_id=request.campaign_id,
        sender=request.sender,
        template=request.template,
        recipients=audience.recipients,
    )
    expansion = expand(whole, suppressed=suppressed, now=now, phones=phones)
    counts: dict[str, int] = {outcome: expansion.counts[outcome] for outcome in OUTCOMES}
    sender = await sender_facts(
        settings,
        request.sender,
        tier=request.tier,
        write_per_minute=request.write_per_minute,
        warnings=warnings,
    )
    fit = fit_plan(
        counts["eligible"],
        tier=sender.tier,
        write_per_minute=sender.write_per_minute,
        window_seconds=settings.quota_window_seconds,
    )
    if counts["eligible"] == 0:
        warnings.append("no recipient is eligible: the campaign will only record skips")
    return Prepared(
        request=request,
        rows=audience.rows,
        counts=counts,
        suppressions_checked=checked,
        sender=sender,
        fit=fit,
        chunks=chunks,
        warnings=warnings,
    )


async def send(settings: CliSettings, prepared: Prepared) -> list[Delivery]:
    """Publish the prepared chunks, keyed by the campaign id."""
    key = str(prepared.request.campaign_id).encode()
    records = [Record(key, chunk.value) for chunk in prepared.chunks]
    try:
        return await publish(settings, records)
    except PublishUnavailable as error:
        raise Unavailable(
            f"{error.message}; publish again with --campaign-id "
            f"{prepared.request.campaign_id} to finish (repeated chunks are harmless)",
            **error.details,
            campaign_id=str(prepared.request.campaign_id),
        ) from error


def _refuse_bad_rows(audience: Audience, path: Path) -> None:
    bad = audience.bad_rows
    if not bad:
        return
    shown = "; ".join(f"line {row.line}: {row.reason}" for row in bad[:_SHOWN_BAD_ROWS])
    more = f"; and {len(bad) - _SHOWN_BAD_ROWS} more" if len(bad) > _SHOWN_BAD_ROWS else ""
    plural = "row" if len(bad) == 1 else "rows"
    raise UsageError(
        f"{path}: {len(bad)} malformed {plural}, nothing published: {shown}{more}",
        bad_rows=[{"line": row.line, "reason": row.reason} for row in bad],
    )


async def _suppressed(
    settings: CliSettings,
    campaign_id: uuid.UUID,
    phones: list[str | None],
    warnings: list[str],
) -> tuple[set[str], bool]:
    """The suppressed phones of the audience, and whether the list could be read at all."""
    wanted = sorted({phone for phone in phones if phone is not None})
    try:
        async with connect(settings) as connection:
            rows = await connection.fetch(Q["suppressed_phones"], wanted)
            existing = await connection.fetchrow(Q["campaign_overview"], campaign_id)
    except Unavailable as error:
        warnings.append(f"suppressions not checked: {error.message}")
        return set(), False
    if existing is not None:
        warnings.append(
            f"campaign {campaign_id} already exists (state {existing['state']}, "
            f"{existing['chunks_received']}/{existing['chunk_count']} chunks): the same "
            "chunks again change nothing, different ones are dead-lettered"
        )
    return {row["phone"] for row in rows}, True


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "publish",
        parents=[common],
        help="preview, plan and publish a broadcast from a CSV or JSONL file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipients", type=Path, help="CSV or JSONL file of recipients")
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: from the suffix")
    parser.add_argument("--template", dest="template_name", help="template name")
    parser.add_argument("--language", help="template language code, e.g. id_ID")
    parser.add_argument(
        "--body-param",
        action="append",
        default=[],
        metavar="TEXT",
        help="a body parameter, in order; {{column}} is the recipient's variable (repeatable)",
    )
    parser.add_argument("--template-file", type=Path, help="JSON: name, language, components")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--sender", metavar="PHONE_NUMBER_ID", help="the sending number")
    who.add_argument(
        "--auto-sender", action="store_true", help="the connected number with the highest tier"
    )
    parser.add_argument("--campaign-id", help="default: a new UUID (printed)")
    parser.add_argument("--send-at", help="RFC 3339 time with a zone: send no earlier")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"recipients per event (default {DEFAULT_CHUNK_SIZE:,}; events stay under 768 KiB)",
    )
    parser.add_argument("--dry-run", action="store_true", help="preview and plan only")
    parser.add_argument("--tier", help="the sender's tier when the API is not reachable")
    parser.add_argument(
        "--write-per-minute", type=int, help="the write rate when the API is not reachable"
    )
    parser.set_defaults(handler=_handle)


def request_from(args: argparse.Namespace) -> PublishRequest:
    """The publish request the parsed flags describe; `UsageError` for bad values."""
    template = load_template(
        name=args.template_name,
        language=args.language,
        body_params=args.body_param,
        file=args.template_file,
    )
    try:
        # convert() checks the id's pattern, which building the Struct does not.
        sender = msgspec.convert(
            {"auto": True} if args.auto_sender else {"phone_number_id": args.sender}, Sender
        )
    except msgspec.ValidationError:
        raise UsageError(
            f"--sender {args.sender!r} is not a phone_number_id (6-20 digits)"
        ) from None
    campaign_id = uuid.uuid4()
    if args.campaign_id is not None:
        try:
            campaign_id = uuid.UUID(args.campaign_id)
        except ValueError:
            raise UsageError(f"--campaign-id {args.campaign_id!r} is not a UUID") from None
    tier = None
    if args.tier is not None:
        tier = parse_tier(args.tier)
        if tier is None:
            raise UsageError(f"--tier {args.tier!r}: expected 250, 1000, TIER_10K, unlimited...")
    if args.write_per_minute is not None and args.write_per_minute < 1:
        raise UsageError("--write-per-minute must be at least 1")
    return PublishRequest(
        recipients=args.recipients,
        format=detect_format(args.recipients, args.format),
        template=template,
        sender=sender,
        campaign_id=campaign_id,
        send_at=_send_at(args.send_at),
        chunk_size=args.chunk_size,
        dry_run=args.dry_run,
        tier=tier,
        write_per_minute=args.write_per_minute,
    )


def _send_at(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise UsageError(f"--send-at {raw!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise UsageError(f"--send-at {raw!r} needs a timezone (e.g. Z or +07:00)")
    return value


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    request = request_from(args)
    prepared = await prepare(settings, request, datetime.now(UTC))
    for warning in prepared.warnings:
        console.warn(warning)
    console.lines(preview_lines(settings, prepared))
    deliveries = None if request.dry_run else await send(settings, prepared)
    if deliveries is None:
        console.line("dry run: nothing published")
    else:
        offsets = [d.offset for d in deliveries]
        partitions = sorted({d.partition for d in deliveries})
        console.line(
            f"published {len(deliveries)} chunk(s) to {settings.requests_topic} "
            f"partition {', '.join(map(str, partitions))}, offsets {min(offsets)}-{max(offsets)}"
        )
        console.line(f"watch it: broadcast status {request.campaign_id} --watch")
    console.emit(to_json(settings, prepared, deliveries))
    return 0
