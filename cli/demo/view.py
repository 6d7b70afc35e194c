"""What the demo shows: the live progress until the campaigns finish, then the report."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import httpx

from cli import failures
from cli.database import connect
from cli.demo.campaign import Campaign
from cli.demo.children import Child, check_alive, save_metrics
from cli.demo.config import DemoOptions
from cli.demo.infrastructure import Infrastructure
from cli.demo.paths import shown
from cli.errors import Failed, NotFound
from cli.output import Console, duration, number
from cli.settings import CliSettings, redact_url
from cli.status import fetch_status, status_lines

_REDRAW: Final = "\x1b[{}F\x1b[J"


async def watch(
    settings: CliSettings,
    console: Console,
    campaigns: Sequence[Campaign],
    children: Sequence[Child],
    options: DemoOptions,
) -> None:
    """Refresh until every campaign is finished; `Failed` if a child dies or time runs out."""
    started = time.monotonic()
    drawn = 0
    # Not on a terminal: one line per campaign every few seconds.
    every = options.interval if console.is_tty else max(options.interval, 3.0)
    async with connect(settings) as connection:
        while True:
            check_alive(children)
            now = time.monotonic()
            # Not on a terminal, a finished campaign's line is printed once.
            visible = [c for c in campaigns if c.finished_at is None or console.is_tty]
            for campaign in campaigns:
                if campaign.finished_at is None:
                    with contextlib.suppress(NotFound):
                        campaign.last = await fetch_status(connection, campaign.campaign_id)
                        campaign.tracker.add(now, campaign.last.snapshot.done)
                        if campaign.last.snapshot.finished:
                            campaign.finished_at = now
            if console.is_tty:
                block = [f"live progress, {duration(now - started)} (Ctrl-C stops the demo)"]
                for campaign in campaigns:
                    block += ["", *campaign.live_lines(console.unicode)]
                # A wrapped line would throw the redraw off: clip to the width.
                width = shutil.get_terminal_size().columns - 1
                block = [line[:width] for line in block]
                if drawn:
                    console.out.write(_REDRAW.format(drawn))
                console.lines(block)
                drawn = len(block)
            else:
                console.lines([campaign.log_line(now - started) for campaign in visible])
            if all(campaign.finished_at is not None for campaign in campaigns):
                return
            if now - started > options.max_seconds:
                raise Failed(
                    f"the campaigns are not finished after {duration(options.max_seconds)}: "
                    f"see the logs in {shown(options.log_dir)}"
                )
            await asyncio.sleep(every)


async def summary(
    settings: CliSettings,
    console: Console,
    campaigns: Sequence[Campaign],
    *,
    children: Sequence[Child],
    ports: Mapping[str, int],
    options: DemoOptions,
    infrastructure: Infrastructure,
) -> None:
    """The final report: each campaign's tables and failures, the sandbox's audit, where to look.

    Also saves the last scrape of every service's metrics into the log directory.
    """
    for campaign in campaigns:
        assert campaign.last is not None
        took = (campaign.finished_at or 0.0) - campaign.published_at
        console.line("")
        console.line(f"== {campaign.label}: finished {duration(took)} after publishing")
        console.lines(status_lines(campaign.last, eta=0.0, unicode=console.unicode))
        buckets = await failures.failure_buckets(settings, campaign.campaign_id)
        console.line("")
        if buckets:
            console.line("failures by code (broadcast failed):")
            console.lines(["  " + line for line in failures.bucket_lines(buckets)])
        else:
            console.line("no failures")
    console.line("")
    console.line("== what the Kirim sandbox saw (GET /_sandbox/audit)")
    console.lines(await audit_lines(ports["sandbox"], campaigns, options.window_seconds))
    await save_metrics(children, options.log_dir)
    console.line("")
    console.line("== where to look")
    console.lines(where_lines(ports, options.log_dir, infrastructure, campaigns[0]))


async def audit_lines(
    sandbox_port: int, campaigns: Sequence[Campaign], window_seconds: int
) -> list[str]:
    """Sends per recipient, and each number's most unique recipients in one window."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        answer = await http.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/audit")
    data: dict[str, Any] = answer.json().get("data", {})
    totals = data.get("totals", {})
    repeats = totals.get("duplicate_accepts", 0)
    upstream = totals.get("failed", {}).get("whatsapp_upstream_error", 0)
    lines = [
        f"  accepted sends {number(totals.get('accepted_sends', 0))} to "
        f"{number(totals.get('distinct_recipients', 0))} recipients: "
        + (
            f"{number(repeats)} sent again after their accepted message failed "
            f"(whatsapp_upstream_error: {number(upstream)})"
            if repeats
            else "one each"
        ),
        f"  answered 429 {number(totals.get('rate_limited', 0))}, "
        f"5xx {number(totals.get('server_errors_injected', 0))}: each retried with its key",
    ]
    for campaign in campaigns:
        seen = data.get("numbers", {}).get(campaign.sender, {})
        tier = seen.get("tier")
        lines.append(
            f"  {campaign.sender}: tier {number(tier) if tier else 'unlimited'}, at most "
            f"{number(seen.get('max_window_recipients', 0))} unique recipients in any "
            f"{window_seconds}s window"
        )
    return lines


def where_lines(
    ports: Mapping[str, int], log_dir: Path, infrastructure: Infrastructure, first: Campaign
) -> list[str]:
    """Metrics, logs, the database, and a command to run on `first` afterwards."""
    logs, database_url = shown(log_dir), infrastructure.database_url
    fresh = " (fresh for this run; the next demo drops it)" if infrastructure.fresh_database else ""
    return [
        f"  metrics     consumer http://127.0.0.1:{ports['consumer']}/metrics, "
        f"webhook bridge http://127.0.0.1:{ports['webhook_bridge']}/metrics,",
        f"              projector http://127.0.0.1:{ports['projector']}/metrics, "
        f"sandbox http://127.0.0.1:{ports['sandbox']}/metrics",
        "              (up with --keep-running; the last scrape of each: "
        f"{logs}/<service>.metrics.txt)",
        f"  logs        {logs}/<service>.log",
        f"  database    {redact_url(database_url)}{fresh}",
        # The dev stack's URL has no password; one given on the command line may.
        f"  afterwards  DATABASE_URL={database_url if fresh else '...'} "
        f".venv/bin/broadcast failed {first.campaign_id}",
    ]
