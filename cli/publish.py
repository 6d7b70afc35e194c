"""`broadcast publish`: an audience + a template -> preview, fit plan, request events.

The audience is a CSV or JSONL file, stdin (`-`), or a PostgreSQL query
(`--from-query`), read once and streaming: memory is one chunk, whatever the
size. Pass one (cli/scan.py) validates every row (malformed rows abort with
their line or row numbers, exit 2, nothing published), counts what intake will
do with each recipient (intake's own rules, `consumer.intake.expand`, and the
suppression list when PostgreSQL is reachable) and cuts the chunks into a
temporary spool; then the fit plan from the sender's tier (`GET /v1/accounts`,
or `--tier`) and the write rate (`GET /v1/me`, or `--write-per-minute`); then,
unless `--dry-run`, pass two publishes the spooled chunks keyed by the campaign
id, now that `chunk.count` is known. Ineligible recipients are published too:
intake records each one as skipped with its reason. The cut is deterministic, so
an interrupted publish is finished by running it again with the same
`--campaign-id`: intake treats the repeated chunks as redeliveries. The campaign
options (`--priority`, `--quiet-hours`, `--quality-guard`) go into every chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec

from cli.audience import STDIN, FileSource, QuerySource, Reading, Source
from cli.campaign_options import quality_guard_flag
from cli.chunks import (
    BYTES_LIMIT,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CHUNK_SIZE,
    Budget,
    Campaign,
    decode_body,
    encode_chunk,
)
from cli.errors import Unavailable, UsageError
from cli.meter import Meter
from cli.output import PROGRAM, Console, number
from cli.plan import FitPlan, fit_plan
from cli.preview import preview_lines, to_json
from cli.producer import Delivery, PublishUnavailable, Record, publish_stream
from cli.quiet_plan import quiet_hours_flag, quiet_plan
from cli.recipients import Format, detect_format
from cli.scan import Cut, Scan, scan
from cli.sender import SenderFacts, sender_facts
from cli.settings import CliSettings
from cli.spool import Spool
from cli.templates import load_template, template_variables
from consumer.dispatch.tiers import parse_tier
from schemas.requests import (
    PRIORITIES,
    Chunk,
    OptInSource,
    Priority,
    QualityGuard,
    QuietHours,
    Sender,
)
from schemas.template import Template

# Malformed rows listed in the one-line error (up to scan.MAX_BAD_ROWS_KEPT in --json).
_SHOWN_BAD_ROWS: Final = 5


@dataclass(frozen=True, slots=True)
class PublishRequest:
    # A file, or "-" for stdin; None when `query` is the source.
    recipients: Path | str | None
    format: Format
    template: Template
    sender: Sender
    campaign_id: uuid.UUID
    send_at: datetime | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    dry_run: bool = False
    # Offline overrides of what the API would say.
    tier: int | None = None
    write_per_minute: int | None = None
    query: QuerySource | None = None
    # `--opt-in-source`: the consent's source for every row that names none.
    opt_in_source: str | None = None
    # `--quiet-hours` (and `--quiet-hours-zone`).
    quiet_hours: QuietHours | None = None
    # `--priority`, `--quality-guard` (cli/campaign_options.py).
    priority: Priority = "bulk"
    quality_guard: QualityGuard | None = None

    @property
    def source(self) -> Source:
        if self.query is not None:
            return self.query
        return FileSource(str(self.recipients), self.format)

    @property
    def campaign(self) -> Campaign:
        return Campaign(
            self.campaign_id,
            self.sender,
            self.template,
            self.send_at,
            quiet_hours=self.quiet_hours,
            priority=self.priority,
            quality_guard=self.quality_guard,
        )


@dataclass(slots=True)
class Prepared:
    """Everything known before publishing: the preview, the fit plan and the chunks.

    Unless this is a dry run, the chunks wait in `spool` for `send` (which closes it).
    """

    request: PublishRequest
    rows: int
    counts: dict[str, int]
    suppressions_checked: bool
    # Recipients whose event says where their opt-in came from.
    with_opt_in_source: int
    sender: SenderFacts
    fit: FitPlan
    chunks: list[Cut]
    spool: Spool | None = None
    warnings: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


async def prepare(
    settings: CliSettings,
    request: PublishRequest,
    now: datetime,
    *,
    progress: TextIO | None = None,
) -> Prepared:
    """Read, validate, preview and plan; `UsageError` on malformed input (nothing published).

    The source is read once, streaming (cli/scan.py); `progress` (stderr) gets a meter.
    """
    source = request.source
    budget = Budget(request.chunk_size, request.chunk_bytes)
    warnings: list[str] = []
    if isinstance(source, QuerySource) and not source.ordered:
        warnings.append(
            "the query has no ORDER BY: a re-run may cut different chunks (dead-lettered "
            "as chunk_conflict); order by a unique key to make re-publishing safe"
        )
    spool = None if request.dry_run else Spool()
    meter = Meter(progress or io.StringIO(), "read", f"{source.unit}s")
    try:
        result = await scan(
            settings,
            Reading(source, request.opt_in_source),
            request.campaign,
            budget,
            now,
            spool=spool,
            meter=meter,
            warnings=warnings,
        )
        _refuse(result, source.label, source.unit)
    except BaseException:
        meter.abandon()
        if spool is not None:
            spool.close()
        raise
    missing = sorted(template_variables(request.template) - result.variables)
    if missing:
        warnings.append(
            f"the template uses {', '.join(missing)}, which the "
            f"{'query' if isinstance(source, QuerySource) else 'file'} never provides: "
            "those recipients are skipped as missing_variable"
        )
    counts = result.counts
    sender = await sender_facts(
        settings,
        request.sender,
        tier=request.tier,
        write_per_minute=request.write_per_minute,
        warnings=warnings,
    )
    quiet = None
    if request.quiet_hours is not None:
        start = max(now, request.send_at) if request.send_at is not None else now
        quiet = quiet_plan(result.zones, request.quiet_hours, start.timestamp())
    fit = fit_plan(
        counts["eligible"],
        tier=sender.tier,
        write_per_minute=sender.write_per_minute,
        window_seconds=settings.quota_window_seconds,
        quiet=quiet,
    )
    if counts["eligible"] == 0:
        warnings.append("no recipient is eligible: the campaign will only record skips")
    return Prepared(
        request=request,
        rows=result.rows,
        counts=counts,
        suppressions_checked=result.suppressions_checked,
        with_opt_in_source=result.with_opt_in_source,
        sender=sender,
        fit=fit,
        chunks=result.cuts,
        spool=spool,
        warnings=warnings,
    )


async def send(
    settings: CliSettings, prepared: Prepared, *, progress: TextIO | None = None
) -> list[Delivery]:
    """Publish the spooled chunks in order, keyed by the campaign id; closes the spool."""
    spool, request = prepared.spool, prepared.request
    if spool is None:
        raise UsageError("a dry run has nothing to publish")
    key = str(request.campaign_id).encode()
    campaign, cuts, count = request.campaign, prepared.chunks, len(prepared.chunks)
    meter = Meter(progress or io.StringIO(), "publish", "chunks")
    acknowledged = [0, 0]  # chunks, recipients

    async def records() -> Any:
        for cut, body in zip(cuts, spool, strict=True):
            chunk = Chunk(index=cut.index, count=count)
            _event, value = encode_chunk(campaign, decode_body(body), chunk)
            if len(value) != cut.bytes:
                # The plan promised both budgets; never publish past it.
                raise RuntimeError(f"chunk {cut.index} is {len(value)} bytes, planned {cut.bytes}")
            yield Record(key, value)

    def delivered(_delivery: Delivery) -> None:
        acknowledged[1] += cuts[acknowledged[0]].recipients
        acknowledged[0] += 1
        meter.update(acknowledged[0], total=count, detail=f"{number(acknowledged[1])} recipients")

    finish = (
        f"publish again with --campaign-id {request.campaign_id} to finish "
        "(repeated chunks are harmless)"
    )
    try:
        deliveries = await publish_stream(settings, records(), total=count, on_delivery=delivered)
    except PublishUnavailable as error:
        meter.abandon()
        raise Unavailable(
            f"{error.message}; {finish}", **error.details, campaign_id=str(request.campaign_id)
        ) from error
    except asyncio.CancelledError:
        meter.abandon()
        (progress or io.StringIO()).write(
            f"{PROGRAM}: interrupted after {acknowledged[0]} of {count} chunks; {finish}\n"
        )
        raise
    finally:
        spool.close()
    meter.finish(acknowledged[0], total=count, detail=f"{number(acknowledged[1])} recipients")
    return deliveries


def _refuse(result: Scan, label: str, unit: str) -> None:
    """`UsageError` for malformed rows (nothing is published) or for no recipients."""
    bad = result.bad_rows
    if not bad:
        if not result.cuts:
            raise UsageError(f"{label}: no recipients")
        return
    total = result.bad_total
    shown = "; ".join(f"{unit} {row.line}: {row.reason}" for row in bad[:_SHOWN_BAD_ROWS])
    more = f"; and {total - _SHOWN_BAD_ROWS} more" if total > _SHOWN_BAD_ROWS else ""
    plural = "row" if total == 1 else "rows"
    raise UsageError(
        f"{label}: {total} malformed {plural}, nothing published: {shown}{more}",
        bad_rows=[{unit: row.line, "reason": row.reason} for row in bad],
        bad_rows_total=total,
    )


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "publish",
        parents=[common],
        help="preview, plan and publish a broadcast from a CSV/JSONL file or a query",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "recipients", nargs="?", help="CSV or JSONL file of recipients, or - for stdin"
    )
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: from the suffix")
    parser.add_argument(
        "--from-query",
        metavar="SQL",
        help="read the recipients from this PostgreSQL query (columns as in a CSV)",
    )
    parser.add_argument(
        "--from-database", metavar="URL", help="where --from-query runs (default DATABASE_URL)"
    )
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
        "--quiet-hours",
        metavar="HH:MM-HH:MM",
        help="not in these hours of each recipient's local time (e.g. 21:00-08:00); the "
        "zone comes from the number, see docs/dispatch.md",
    )
    parser.add_argument(
        "--quiet-hours-zone",
        metavar="ZONE",
        help="the IANA zone for numbers whose zone is unknown (default UTC)",
    )
    parser.add_argument(
        "--priority",
        choices=PRIORITIES,
        default="bulk",
        help="transactional is sent before bulk on a shared number and budget (default bulk)",
    )
    parser.add_argument(
        "--quality-guard",
        metavar="off|on|KEY=VALUE,...",
        help="when the campaign pauses itself to protect the sender (default: the "
        "dispatcher's); keys window_seconds, min_sends, max_failure_rate, pause_at_quality, "
        "e.g. max_failure_rate=0.05,min_sends=200",
    )
    parser.add_argument(
        "--opt-in-source",
        metavar="TEXT",
        help="where the consent came from (1-200 chars, e.g. crm:import-2026-11), for every "
        "row without an opt_in_source column/field value; kept in the ledger",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"most recipients per event (default {DEFAULT_CHUNK_SIZE:,})",
    )
    parser.add_argument(
        "--chunk-bytes",
        type=int,
        default=DEFAULT_CHUNK_BYTES,
        help=f"most bytes per event (default {DEFAULT_CHUNK_BYTES:,}, at most {BYTES_LIMIT:,})",
    )
    parser.add_argument("--dry-run", action="store_true", help="preview and plan only")
    parser.add_argument("--tier", help="the sender's tier when the API is not reachable")
    parser.add_argument(
        "--write-per-minute", type=int, help="the write rate when the API is not reachable"
    )
    parser.set_defaults(handler=_handle)


def request_from(args: argparse.Namespace, database_url: str) -> PublishRequest:
    """The publish request the parsed flags describe; `UsageError` for bad values.

    `database_url` is where `--from-query` runs without `--from-database`.
    """
    recipients, query = _source_flags(args, database_url)
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
    opt_in_source = _opt_in_source(args.opt_in_source)
    if args.write_per_minute is not None and args.write_per_minute < 1:
        raise UsageError("--write-per-minute must be at least 1")
    budget = Budget(args.chunk_size, args.chunk_bytes)  # refuses bad values up front
    fmt: Format = "csv"
    if recipients == STDIN:
        fmt = detect_format(Path("-.csv"), args.format)
    elif recipients is not None:
        fmt = detect_format(Path(recipients), args.format)
    return PublishRequest(
        recipients=recipients,
        format=fmt,
        template=template,
        sender=sender,
        campaign_id=campaign_id,
        send_at=_send_at(args.send_at),
        chunk_size=budget.recipients,
        chunk_bytes=budget.bytes,
        dry_run=args.dry_run,
        tier=tier,
        write_per_minute=args.write_per_minute,
        query=query,
        opt_in_source=opt_in_source,
        quiet_hours=quiet_hours_flag(args.quiet_hours, args.quiet_hours_zone),
        priority=args.priority,
        quality_guard=quality_guard_flag(args.quality_guard),
    )


def _opt_in_source(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    try:
        # The schema's own limits, so the flag can never make an event intake refuses.
        return msgspec.convert(text, OptInSource)
    except msgspec.ValidationError:
        raise UsageError(f"--opt-in-source must be 1 to 200 characters, got {len(text)}") from None


def _source_flags(
    args: argparse.Namespace, database_url: str
) -> tuple[str | None, QuerySource | None]:
    if args.recipients is not None and args.from_query is not None:
        raise UsageError("give a recipients file or --from-query, not both")
    if args.recipients is None and args.from_query is None:
        raise UsageError("give a recipients file (- for stdin) or --from-query")
    if args.from_query is None:
        if args.from_database is not None:
            raise UsageError("--from-database goes with --from-query")
        return args.recipients, None
    if args.format is not None:
        raise UsageError("--format is for recipients files, not --from-query")
    if not args.from_query.strip():
        raise UsageError("--from-query is empty")
    return None, QuerySource(args.from_query, args.from_database or database_url)


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
    request = request_from(args, settings.database_url)
    prepared = await prepare(settings, request, datetime.now(UTC), progress=console.err)
    try:
        for warning in prepared.warnings:
            console.warn(warning)
        console.lines(preview_lines(settings, prepared))
        deliveries = (
            None if request.dry_run else await send(settings, prepared, progress=console.err)
        )
    finally:
        prepared.close()
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
