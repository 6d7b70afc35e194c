"""`broadcast suppression list|add|remove`: the phones no campaign may message.

Phones are normalised to E.164 with intake's own rules (`consumer.intake.phone`),
so what is added is what intake compares against; a number that is not a valid
international number is refused (exit 2). Operator entries have source
`operator`; the dispatcher and the projector add their own (`recipient_blocked`,
`recipient_not_on_whatsapp`). The list applies to recipients expanded after the
change: rows already in the ledger keep their status.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from cli import output
from cli.database import Q, connect
from cli.errors import NotFound, UsageError
from cli.output import Console, number
from cli.settings import CliSettings
from consumer.intake.phone import normalize_phone

DEFAULT_LIMIT: Final = 100
DEFAULT_REASON: Final = "operator_request"
COLUMNS: Final = ("phone", "reason", "source", "created_at")


@dataclass(frozen=True, slots=True)
class Suppression:
    phone: str
    reason: str
    source: str
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Suppression:
        return cls(row["phone"], row["reason"], row["source"], row["created_at"])

    def as_json(self) -> dict[str, Any]:
        return {
            "phone": self.phone,
            "reason": self.reason,
            "source": self.source,
            "created_at": self.created_at,
        }


def e164(raw: str) -> str:
    """`raw` in E.164, or `UsageError`."""
    phone = normalize_phone(raw)
    if phone is None:
        raise UsageError(f"{raw!r} is not a valid international phone number (E.164, with +)")
    return phone


async def list_suppressions(settings: CliSettings, limit: int) -> tuple[list[Suppression], int]:
    """The newest `limit` entries and the size of the whole list."""
    async with connect(settings) as connection:
        rows = await connection.fetch(Q["suppression_list"], limit)
        total: int = await connection.fetchval(Q["suppression_count"])
    return [Suppression.of(r) for r in rows], total


async def add_suppression(settings: CliSettings, raw: str, reason: str) -> tuple[Suppression, bool]:
    """Add a phone; returns the entry and whether it is new (False: it was already there)."""
    phone = e164(raw)
    async with connect(settings) as connection:
        row = await connection.fetchrow(Q["suppression_add"], phone, reason)
        if row is not None:
            return Suppression.of(row), True
        existing = await connection.fetchrow(Q["suppression_get"], phone)
    # Someone removed it between the two statements.
    if existing is None:
        raise NotFound(f"{phone} was removed while being added; try again", phone=phone)
    return Suppression.of(existing), False


async def remove_suppression(settings: CliSettings, raw: str) -> Suppression:
    """Remove a phone; `NotFound` when it is not on the list."""
    phone = e164(raw)
    async with connect(settings) as connection:
        row = await connection.fetchrow(Q["suppression_remove"], phone)
    if row is None:
        raise NotFound(f"{phone} is not on the suppression list", phone=phone)
    return Suppression.of(row)


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "suppression",
        help="the suppression list: list, add, remove",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="{list,add,remove}")
    listing = actions.add_parser("list", parents=[common], help="the newest entries")
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="default 100")
    listing.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    listing.set_defaults(handler=_handle_list)
    add = actions.add_parser("add", parents=[common], help="suppress a phone (E.164)")
    add.add_argument("phone")
    add.add_argument("--reason", default=DEFAULT_REASON, help=f"default {DEFAULT_REASON}")
    add.set_defaults(handler=_handle_add)
    remove = actions.add_parser("remove", parents=[common], help="allow a phone again")
    remove.add_argument("phone")
    remove.set_defaults(handler=_handle_remove)


async def _handle_list(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    entries, total = await list_suppressions(settings, args.limit)
    if args.csv and not console.json:
        writer = csv.writer(console.out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for e in entries:
            writer.writerow([e.phone, e.reason, e.source, e.created_at.isoformat()])
    else:
        rows = [(e.phone, e.reason, e.source, e.created_at) for e in entries]
        console.lines(output.table(list(COLUMNS), rows))
        console.line(f"{number(len(entries))} of {number(total)} shown (newest first)")
    console.emit({"total": total, "entries": [e.as_json() for e in entries]})
    return 0


async def _handle_add(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    entry, added = await add_suppression(settings, args.phone, args.reason)
    if added:
        console.line(f"suppressed {entry.phone} (reason {entry.reason}, source {entry.source})")
    else:
        console.line(
            f"{entry.phone} was already suppressed (reason {entry.reason}, source "
            f"{entry.source}, since {entry.created_at:%Y-%m-%d %H:%M:%S%z})"
        )
    console.emit({"added": added, "entry": entry.as_json()})
    return 0


async def _handle_remove(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    entry = await remove_suppression(settings, args.phone)
    console.line(f"removed {entry.phone} (was reason {entry.reason}, source {entry.source})")
    console.emit({"removed": entry.as_json()})
    return 0
