"""`broadcast senders list|resume`: the sender numbers the dispatcher knows.

The dispatcher stops a number on answers only an operator can fix
(`phone_number_forbidden`, `resource_not_found`, `payment_required`...) and keeps
its recipients pending. After fixing the cause, `senders resume` sets it active
again (clearing the reason); the dispatcher picks it up at its next ownership
round, within seconds. Stops that lift by themselves (a disconnected account,
a rejected key) are resumed by the dispatcher.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Final

from cli import output
from cli.database import Q, connect
from cli.errors import NotFound, UsageError
from cli.output import Console
from cli.settings import CliSettings

_PHONE_NUMBER_ID: Final = re.compile(r"[0-9]{6,20}")


async def list_senders(settings: CliSettings) -> list[dict[str, Any]]:
    async with connect(settings) as connection:
        return [dict(r) for r in await connection.fetch(Q["senders_list"])]


async def resume_sender(settings: CliSettings, phone_number_id: str) -> dict[str, Any]:
    """Set a stopped sender active; returns its previous state and whether it changed."""
    if not _PHONE_NUMBER_ID.fullmatch(phone_number_id):
        raise UsageError(f"{phone_number_id!r} is not a phone_number_id (6-20 digits)")
    async with connect(settings) as connection:
        row = await connection.fetchrow(Q["sender_resume"], phone_number_id)
    if row is None:
        raise NotFound(f"sender {phone_number_id} not found", phone_number_id=phone_number_id)
    return dict(row)


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "senders",
        help="sender numbers: list, resume a stopped one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="{list,resume}")
    listing = actions.add_parser("list", parents=[common], help="every sender with its state")
    listing.set_defaults(handler=_handle_list)
    resume = actions.add_parser("resume", parents=[common], help="set a stopped sender active")
    resume.add_argument("phone_number_id")
    resume.set_defaults(handler=_handle_resume)


async def _handle_list(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    senders = await list_senders(settings)
    rows = [
        (
            s["phone_number_id"],
            s["state"],
            s["state_reason"],
            s["tier"],
            s["quota_hold_until"],
            s["updated_at"],
        )
        for s in senders
    ]
    headers = ["phone_number_id", "state", "reason", "tier", "quota hold until", "updated"]
    console.lines(output.table(headers, rows) if rows else ["no senders recorded yet"])
    console.emit({"senders": senders})
    return 0


async def _handle_resume(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    result = await resume_sender(settings, args.phone_number_id)
    if result["resumed"]:
        console.line(
            f"sender {result['phone_number_id']} is active again "
            f"(was stopped: {result['state_reason'] or 'no reason'})"
        )
    else:
        console.line(f"sender {result['phone_number_id']} was already active")
    console.emit(
        {
            "phone_number_id": result["phone_number_id"],
            "resumed": result["resumed"],
            "previous_state": result["state"],
            "previous_reason": result["state_reason"],
        }
    )
    return 0
