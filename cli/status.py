"""`broadcast status <campaign> [--watch]`: the progress table and the campaign overview.

Reads the public views `campaign_overview`, `campaign_progress` and
`campaign_recipient_status` (for the reasons behind pending and skipped rows), and
when the recipients waiting out their quiet hours may go (`quiet_openings`), and for a
campaign the template-health breaker paused, what it judged (`quality_trip`).
`--watch` refreshes every `--interval` seconds until the campaign is finished
(terminal in the view and every chunk received) or Ctrl-C. On a terminal it
redraws one block in place; otherwise (a pipe, a CI log) it prints one line
per refresh and the full table at the end. A campaign that intake has not
stored yet is waited for up to the timeout before `--watch` gives up (exit 3).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from cli import output
from cli.database import Q, campaign_overview, connect, parse_campaign_id
from cli.errors import NotFound, UsageError
from cli.output import Console, bar, duration, number
from cli.progress import RateTracker, Snapshot
from cli.settings import CliSettings

STATUSES: Final = ("pending", "queued", "sent", "delivered", "read", "failed", "skipped")
_BAR_WIDTH: Final = 30
_ROW_BAR_WIDTH: Final = 20
# ESC [ n F: cursor to the start of the line n lines up; ESC [ J: clear to the end.
_REDRAW: Final = "\x1b[{}F\x1b[J"
QUALITY_GUARD: Final = "quality_guard"


@dataclass(frozen=True, slots=True)
class CampaignStatus:
    overview: dict[str, Any]
    progress: list[tuple[str, int, float]]
    reasons: list[tuple[str, str, int]]
    # (when their quiet hours end, Unix seconds; how many) for pending `quiet_hours` rows.
    quiet: list[tuple[float, int]] = field(default_factory=list)
    # The breaker's trip (quality_trips) while the campaign is paused by it.
    trip: dict[str, Any] | None = None

    def quiet_waits(self, now: float) -> list[tuple[float, int]]:
        """(seconds from `now` until they may go, how many): `RateTracker.eta`'s `quiet`."""
        return [(at - now, count) for at, count in self.quiet]

    @property
    def snapshot(self) -> Snapshot:
        o = self.overview
        return Snapshot(
            recipients=o["recipients"],
            in_progress=o["in_progress"],
            chunks_received=o["chunks_received"],
            chunk_count=o["chunk_count"],
            terminal=o["terminal"],
            pending=next((count for name, count, _ in self.progress if name == "pending"), 0),
        )


async def fetch_status(connection: asyncpg.Connection, campaign_id: uuid.UUID) -> CampaignStatus:
    """The campaign's overview, progress and reasons; `NotFound` for an unknown campaign."""
    overview = dict(await campaign_overview(connection, campaign_id))
    progress = [
        (r["status"], r["count"], float(r["pct"]))
        for r in await connection.fetch(Q["campaign_progress"], campaign_id)
    ]
    reasons = [
        (r["status"], r["reason"], r["count"])
        for r in await connection.fetch(Q["campaign_reasons"], campaign_id)
    ]
    quiet = [
        (r["opens_at"].timestamp(), r["count"])
        for r in await connection.fetch(Q["quiet_openings"], campaign_id)
    ]
    trip = None
    if overview["state"] == "paused" and overview["state_reason"] == QUALITY_GUARD:
        found = await connection.fetchrow(Q["quality_trip"], campaign_id)
        trip = dict(found) if found is not None else None
    return CampaignStatus(overview, progress, reasons, quiet, trip)


async def status(settings: CliSettings, campaign_id: uuid.UUID) -> CampaignStatus:
    async with connect(settings) as connection:
        return await fetch_status(connection, campaign_id)


async def watch(
    settings: CliSettings,
    console: Console,
    campaign_id: uuid.UUID,
    interval: float,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> CampaignStatus:
    """Refresh until the campaign is finished; returns its final status."""
    tracker = RateTracker()
    painter = _Painter(console)
    async with connect(settings) as connection:
        current = await _first(connection, console, campaign_id, settings.timeout_seconds, clock)
        while True:
            snapshot = current.snapshot
            tracker.add(clock(), snapshot.done, snapshot.pending)
            quiet = current.quiet_waits(time.time())
            painter.show(current, tracker.eta(snapshot.in_progress, snapshot.pending, quiet))
            if snapshot.finished:
                painter.finish(current)
                return current
            await asyncio.sleep(interval)
            current = await fetch_status(connection, campaign_id)


async def _first(
    connection: asyncpg.Connection,
    console: Console,
    campaign_id: uuid.UUID,
    wait_seconds: float,
    clock: Callable[[], float],
) -> CampaignStatus:
    deadline = clock() + wait_seconds
    told = False
    while True:
        try:
            return await fetch_status(connection, campaign_id)
        except NotFound:
            if clock() >= deadline:
                raise NotFound(
                    f"campaign {campaign_id} not found (waited {duration(wait_seconds)})",
                    campaign_id=str(campaign_id),
                ) from None
            if not told:
                console.note(f"waiting for campaign {campaign_id} to appear")
                told = True
            await asyncio.sleep(min(1.0, wait_seconds))


class _Painter:
    """Draws each refresh: a redrawn block on a TTY, one line otherwise, JSON with --json."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.drawn = 0

    def show(self, current: CampaignStatus, eta: float | None) -> None:
        console = self.console
        if console.json:
            console.emit(to_json(current, eta=eta))
            return
        if console.is_tty:
            block = status_lines(current, eta=eta, unicode=console.unicode)
            if self.drawn:
                console.out.write(_REDRAW.format(self.drawn))
            console.lines(block)
            # Rows on screen, counting lines the terminal wrapped.
            width = max(shutil.get_terminal_size().columns, 1)
            self.drawn = sum(max(1, math.ceil(len(line) / width)) for line in block)
        else:
            console.line(summary_line(current, eta, datetime.now().astimezone()))

    def finish(self, current: CampaignStatus) -> None:
        if not self.console.json and not self.console.is_tty:
            self.console.lines(status_lines(current, eta=0.0, unicode=self.console.unicode))


def _state(overview: dict[str, Any]) -> str:
    reason = overview["state_reason"]
    return f"{overview['state']} ({reason})" if reason else str(overview["state"])


def status_lines(
    current: CampaignStatus, *, eta: float | None, unicode: bool, show_eta: bool = True
) -> list[str]:
    """The full status block: overview, overall progress bar, table and reasons."""
    o, snap = current.overview, current.snapshot
    eta_text = ("done" if snap.finished else duration(eta)) if show_eta else ""
    lines = [
        f"campaign  {o['campaign_id']}",
        f"state     {_state(o)}   sender {o['phone_number_id'] or '-'}   "
        f"template {o['template_name']}",
        f"chunks    {o['chunks_received']}/{o['chunk_count']} received   "
        f"recipients {number(snap.recipients)}   in progress {number(snap.in_progress)}   "
        f"finished {'yes' if snap.finished else 'no'}",
        f"progress  [{bar(snap.fraction, _BAR_WIDTH, unicode=unicode)}] "
        f"{snap.fraction * 100:5.1f}%  {number(snap.done)} done"
        + (f"  ETA {eta_text}" if show_eta else ""),
        "",
    ]
    rows = [
        (name, count, f"{pct:.2f}%", bar(pct / 100, _ROW_BAR_WIDTH, unicode=unicode))
        for name, count, pct in current.progress
    ]
    lines.extend(output.table(["status", "count", "pct", ""], rows, indent=2))
    by_status: dict[str, list[str]] = {}
    for name, reason, count in current.reasons:
        by_status.setdefault(name, []).append(f"{reason} {number(count)}")
    lines.extend(f"  {name}: {', '.join(parts)}" for name, parts in by_status.items())
    if current.quiet:
        lines.append(f"  quiet hours end: {_openings(current.quiet)}")
    if current.trip is not None:
        lines.append(f"  quality guard: {trip_text(current.trip)}; resume when it is safe")
    return lines


def trip_text(trip: dict[str, Any]) -> str:
    """What the breaker judged when it paused the campaign (docs/dispatch.md)."""
    at = f"{trip['tripped_at'].astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    if trip["rule"] == "quality_rating":
        return (
            f"paused at {at}: the number's quality rating fell from "
            f"{trip['quality_before'] or 'unknown'} to {trip['quality_after'] or 'unknown'}"
        )
    sends, failures = trip["sends"], trip["health_failures"]
    share = failures / sends if sends else 0.0
    return (
        f"paused at {at}: {number(failures)} engagement failures of {number(sends)} sends "
        f"({share:.1%}) in {duration(float(trip['window_seconds']))}, "
        f"over the {trip['max_failure_rate']:.1%} allowed"
    )


def _openings(quiet: list[tuple[float, int]], shown: int = 3) -> str:
    """`1,000 at 2026-01-16 01:00Z, 200 at 02:00Z` (the date only when it changes)."""
    parts, day = [], None
    for at, count in quiet[:shown]:
        moment = datetime.fromtimestamp(at, UTC)
        when = f"{moment:%H:%M}Z" if moment.date() == day else f"{moment:%Y-%m-%d %H:%M}Z"
        day = moment.date()
        parts.append(f"{number(count)} at {when}")
    if len(quiet) > shown:
        parts.append(f"{number(sum(count for _, count in quiet[shown:]))} later")
    return ", ".join(parts)


def summary_line(current: CampaignStatus, eta: float | None, now: datetime) -> str:
    """One line per refresh for logs: time, state, completion, counts by status, ETA."""
    o, snap = current.overview, current.snapshot
    pending_reasons = ", ".join(
        f"{reason} {number(count)}" for name, reason, count in current.reasons if name == "pending"
    )
    counts = " ".join(
        f"{name} {number(count)}"
        + (f" ({pending_reasons})" if name == "pending" and pending_reasons else "")
        for name, count, _ in current.progress
    )
    return (
        f"{now:%H:%M:%S} {o['campaign_id']} {_state(o)} "
        f"{snap.fraction * 100:.1f}% done {number(snap.done)}/{number(snap.recipients)} "
        f"chunks {o['chunks_received']}/{o['chunk_count']} | {counts} | "
        f"ETA {'done' if snap.finished else duration(eta)}"
    )


def to_json(current: CampaignStatus, *, eta: float | None = None) -> dict[str, Any]:
    o, snap = current.overview, current.snapshot
    return {
        "campaign_id": str(o["campaign_id"]),
        "state": o["state"],
        "state_reason": o["state_reason"],
        "sender": o["phone_number_id"],
        "template": o["template_name"],
        "chunks": {"received": o["chunks_received"], "expected": o["chunk_count"]},
        "recipients": snap.recipients,
        "in_progress": snap.in_progress,
        "done": snap.done,
        "terminal": snap.terminal,
        "finished": snap.finished,
        "progress": [{"status": s, "count": c, "pct": p} for s, c, p in current.progress],
        "reasons": [{"status": s, "reason": r, "count": c} for s, r, c in current.reasons],
        "quiet": [
            {"opens_at": datetime.fromtimestamp(at, UTC).isoformat(), "count": count}
            for at, count in current.quiet
        ],
        "quality_trip": None
        if current.trip is None
        else {**current.trip, "tripped_at": current.trip["tripped_at"].isoformat()},
        "eta_seconds": 0.0 if snap.finished else eta,
        "created_at": o["created_at"],
        "updated_at": o["updated_at"],
    }


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "status",
        parents=[common],
        help="a campaign's progress table; --watch until it is finished",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("campaign", help="campaign id (UUID)")
    parser.add_argument("--watch", action="store_true", help="refresh until finished or Ctrl-C")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"
    )
    parser.set_defaults(handler=_handle)


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    campaign_id = parse_campaign_id(args.campaign)
    if args.interval <= 0:
        raise UsageError("--interval must be > 0 seconds")
    if args.watch:
        await watch(settings, console, campaign_id, args.interval)
        return 0
    current = await status(settings, campaign_id)
    console.lines(status_lines(current, eta=None, unicode=console.unicode, show_eta=False))
    console.emit(to_json(current))
    return 0
