"""`broadcast projector rebuild`: replay the status topic into a fresh projection.

Delegates to `projector.rebuild.rebuild` (its docstring has the procedure: the
live projector may keep running; the swap happens in one transaction). Exit 1
when another rebuild holds the lock, 4 when Kafka or PostgreSQL is unreachable.
"""

from __future__ import annotations

import argparse
from typing import Any

from cli.database import CONNECT_ERRORS, connect, describe
from cli.errors import Failed, Unavailable
from cli.output import Console, duration, number
from cli.producer import KAFKA_ERRORS
from cli.settings import CliSettings
from projector.rebuild import RebuildError, rebuild
from projector.settings import ProjectorSettings


async def rebuild_projection(settings: CliSettings) -> dict[str, Any]:
    """Run the rebuild; returns its report as a dict."""
    projector_settings = ProjectorSettings(
        bootstrap_servers=settings.bootstrap_servers,
        database_url=settings.database_url,
        topic=settings.status_topic,
    )
    # Fail fast (within the timeout) on a dead database; a dead broker fails the
    # consumer's start. The replay itself is not bounded: it reads the whole topic.
    async with connect(settings):
        pass
    try:
        report = await rebuild(projector_settings)
    except RebuildError as error:
        raise Failed(f"projector rebuild: {error}") from error
    except (*KAFKA_ERRORS, *CONNECT_ERRORS) as error:
        raise Unavailable(f"projector rebuild: {describe(error)}") from error
    return {
        "events": report.events,
        "invalid": report.invalid,
        "ignored": report.ignored,
        "rows": report.rows,
        "seconds": round(report.seconds, 3),
    }


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "projector",
        help="the status projection: rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="{rebuild}")
    rebuild = actions.add_parser(
        "rebuild", parents=[common], help="replay the status topic into a fresh projection"
    )
    rebuild.set_defaults(handler=_handle)


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    report = await rebuild_projection(settings)
    console.line(
        f"rebuilt message_statuses from {settings.status_topic}: {number(report['events'])} "
        f"events folded into {number(report['rows'])} rows in {duration(report['seconds'])} "
        f"({number(report['invalid'])} invalid, {number(report['ignored'])} ignored)"
    )
    console.emit(report)
    return 0
