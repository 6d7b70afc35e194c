"""How `publish` shows what it is about to do: the preview as text lines and as JSON.

JSON keys (stable): `campaign_id`, `dry_run`, `recipients` {file, query, format, rows},
`preview` {eligible, invalid_phone, duplicate, suppressed, not_opted_in,
missing_variable, suppressions_checked}, `opt_in_source` {recipients, default} (how many
recipients name where their consent came from; `--opt-in-source`), `sender`
{phone_number_id, auto, status, tier, tier_source}, `options` {priority, quiet_hours,
quality_guard} (what every chunk's event carries, cli/campaign_options.py), `fit`
{eligible, tier, window_seconds, windows, concurrency, write_per_minute, rate_source,
send_seconds, eta_seconds, quiet}, `send_at`, `chunk_budget` {recipients, bytes},
`chunks` [{index, recipients, bytes}], `published` (null for a dry run, else {topic,
key, deliveries [{partition, offset}]}), `warnings`. `fit.quiet` is null without
`--quiet-hours`, else {start, end, time_zone, quiet_now, openings [{at, recipients,
zones}], groups [{zones, recipients, opens_at}]} (times in UTC, `YYYY-MM-DD HH:MMZ`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from cli import output
from cli.campaign_options import options_json, options_line
from cli.output import duration, number
from cli.plan import FitPlan
from cli.producer import Delivery
from cli.quiet_plan import QuietPlan
from cli.settings import CliSettings

if TYPE_CHECKING:
    from cli.publish import Prepared

_TIER_SOURCES: Final = {"api": "from GET /v1/accounts", "flag": "from --tier"}
_LABELS: Final = {
    "eligible": "eligible",
    "invalid_phone": "invalid phone",
    "not_opted_in": "not opted in",
    "suppressed": "suppressed",
    "duplicate": "duplicate",
    "missing_variable": "missing variable",
}


def preview_lines(settings: CliSettings, prepared: Prepared) -> list[str]:
    request, fit, sender = prepared.request, prepared.fit, prepared.sender
    lines = [
        f"campaign    {request.campaign_id}",
        f"recipients  {_source_text(prepared)}",
    ]
    rows = [(_LABELS[outcome], count) for outcome, count in prepared.counts.items()]
    lines.extend(output.table(["outcome", "count"], rows, indent=2)[1:])
    if not prepared.suppressions_checked:
        lines.append("  (suppressions not checked: PostgreSQL unreachable)")
    lines.append(_consent_text(prepared))
    tier = "tier unknown" if sender.tier is None else _tier_text(fit)
    where = _TIER_SOURCES.get(sender.tier_source or "", "")
    status = f"{sender.status}, " if sender.status else ""
    chosen = " (auto)" if sender.auto else ""
    lines.append(
        f"sender      {sender.phone_number_id or '?'}{chosen}: {status}{tier} {where}".rstrip()
    )
    if fit.windows is None:
        lines.append("fit plan    unknown without the sender's tier (--tier)")
    else:
        lines.append(
            f"fit plan    {number(fit.eligible)} eligible in {fit.windows} quota window(s) "
            f"of {duration(fit.window_seconds)}, {fit.concurrency} in flight"
        )
    if fit.write_per_minute is None:
        rate = "write rate unknown (--write-per-minute)"
    else:
        origin = "GET /v1/me" if sender.rate_source == "api" else "--write-per-minute"
        rate = f"write rate {number(fit.write_per_minute)}/min ({origin})"
    lines.append(f"            {rate}; ETA {duration(fit.eta_seconds)}")
    if request.send_at is not None:
        lines.append(f"            starts no earlier than {request.send_at.isoformat()}")
    if fit.quiet is not None:
        lines.extend(_quiet_lines(fit.quiet, fit.eligible))
    lines.append(options_line(request.priority, request.quiet_hours, request.quality_guard))
    largest = max(chunk.bytes for chunk in prepared.chunks)
    lines.append(
        f"chunks      {len(prepared.chunks)} event(s) for {settings.requests_topic}, "
        f"largest {number(largest)} bytes (at most {number(request.chunk_size)} recipients, "
        f"{number(request.chunk_bytes)} bytes)"
    )
    return lines


def _consent_text(prepared: Prepared) -> str:
    named = prepared.with_opt_in_source
    total = sum(chunk.recipients for chunk in prepared.chunks)
    default = prepared.request.opt_in_source
    fill = f" (--opt-in-source {default} where a row names none)" if default else ""
    return f"consent     {number(named)} of {number(total)} name their opt-in source{fill}"


_SHOWN_OPENINGS: Final = 4


def _utc(at: float) -> str:
    return f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M}Z"


def _quiet_lines(plan: QuietPlan, eligible: int) -> list[str]:
    """Who is inside their quiet hours at the start, and when each group's hours end."""
    hours = plan.hours
    lines = [
        f"quiet hours {hours.start}-{hours.end} local to each number "
        f"({hours.time_zone or 'UTC'} if unknown): "
        f"{number(plan.quiet_now)} of {number(eligible)} inside them at the start"
    ]
    openings = plan.openings
    for opening in openings[:_SHOWN_OPENINGS]:
        more = len(opening.zones) - 2
        zones = ", ".join(opening.zones[:2]) + (f" and {more} more" if more > 0 else "")
        lines.append(
            f"            {number(opening.recipients)} from {_utc(opening.at)} "
            f"({duration(opening.at - plan.start)} on; {zones})"
        )
    if len(openings) > _SHOWN_OPENINGS:
        rest = sum(o.recipients for o in openings[_SHOWN_OPENINGS:])
        lines.append(f"            and {number(rest)} later (--json lists every group)")
    return lines


def _quiet_json(plan: QuietPlan) -> dict[str, Any]:
    return {
        "start": plan.hours.start,
        "end": plan.hours.end,
        "time_zone": plan.hours.time_zone,
        "quiet_now": plan.quiet_now,
        "openings": [
            {"at": _utc(o.at), "recipients": o.recipients, "zones": list(o.zones)}
            for o in plan.openings
        ],
        "groups": [
            {
                "zones": list(g.zones),
                "recipients": g.recipients,
                "opens_at": None if g.opens_at is None else _utc(g.opens_at),
            }
            for g in plan.groups
        ],
    }


def _source_text(prepared: Prepared) -> str:
    source = prepared.request.source
    return f"{source.label} ({source.format}, {number(prepared.rows)} rows)"


def _tier_text(fit: FitPlan) -> str:
    if fit.unlimited:
        return "unlimited tier"
    return f"tier {number(fit.tier or 0)}"


def to_json(
    settings: CliSettings, prepared: Prepared, deliveries: list[Delivery] | None
) -> dict[str, Any]:
    request, fit, sender = prepared.request, prepared.fit, prepared.sender
    published = None
    if deliveries is not None:
        published = {
            "topic": settings.requests_topic,
            "key": str(request.campaign_id),
            "deliveries": [{"partition": d.partition, "offset": d.offset} for d in deliveries],
        }
    return {
        "campaign_id": str(request.campaign_id),
        "dry_run": request.dry_run,
        "recipients": {
            "file": None if request.recipients is None else str(request.recipients),
            "query": None if request.query is None else request.query.sql,
            "format": request.source.format,
            "rows": prepared.rows,
        },
        "preview": {**prepared.counts, "suppressions_checked": prepared.suppressions_checked},
        "opt_in_source": {
            "recipients": prepared.with_opt_in_source,
            "default": request.opt_in_source,
        },
        "sender": {
            "phone_number_id": sender.phone_number_id,
            "auto": sender.auto,
            "status": sender.status,
            "tier": sender.tier,
            "tier_source": sender.tier_source,
        },
        "options": options_json(request.priority, request.quiet_hours, request.quality_guard),
        "fit": {
            "eligible": fit.eligible,
            "tier": fit.tier,
            "window_seconds": fit.window_seconds,
            "windows": fit.windows,
            "concurrency": fit.concurrency,
            "write_per_minute": fit.write_per_minute,
            "rate_source": sender.rate_source,
            "send_seconds": fit.send_seconds,
            "eta_seconds": fit.eta_seconds,
            "quiet": None if fit.quiet is None else _quiet_json(fit.quiet),
        },
        "send_at": request.send_at,
        "chunk_budget": {"recipients": request.chunk_size, "bytes": request.chunk_bytes},
        "chunks": [
            {"index": c.index, "recipients": c.recipients, "bytes": c.bytes}
            for c in prepared.chunks
        ],
        "published": published,
        "warnings": prepared.warnings,
    }
