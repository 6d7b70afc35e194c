"""`broadcast pause|resume|cancel <campaign>`: publish a control event.

The event (`broadcast.paused`, `broadcast.resumed`, `broadcast.cancelled`) goes
to `broadcast.requests` keyed by the campaign id, behind the campaign's own
chunks: this is the public contract, so intake applies it in order with them.
The CLI never changes the campaign row itself. A control event for a campaign
intake has not stored yet is kept by intake and applied when its first chunk
arrives; when PostgreSQL is reachable the command says so.
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass
from typing import Any, Final

from cli.database import Q, connect, parse_campaign_id
from cli.errors import Unavailable, UsageError
from cli.output import Console
from cli.producer import Delivery, Record, publish
from cli.settings import CliSettings
from schemas.requests import (
    BroadcastCancelled,
    BroadcastPaused,
    BroadcastResumed,
    encode_request_event,
    event_type,
)

ControlEvent = BroadcastPaused | BroadcastResumed | BroadcastCancelled
_EVENTS: Final[dict[str, type[ControlEvent]]] = {
    "pause": BroadcastPaused,
    "resume": BroadcastResumed,
    "cancel": BroadcastCancelled,
}
_MAX_REASON: Final = 1000


@dataclass(frozen=True, slots=True)
class ControlResult:
    event: ControlEvent
    delivery: Delivery
    # The campaign's state in PostgreSQL before the event; None when unknown or not checked.
    state: str | None
    known: bool | None


async def control(
    settings: CliSettings,
    command: str,
    campaign_id: uuid.UUID,
    *,
    reason: str | None = None,
    requested_by: str | None = None,
) -> ControlResult:
    """Publish one control event; `Unavailable` when Kafka does not acknowledge it in time."""
    if reason is not None and len(reason) > _MAX_REASON:
        raise UsageError(f"--reason is over {_MAX_REASON} characters")
    event = _EVENTS[command](campaign_id=campaign_id, reason=reason, requested_by=requested_by)
    value = encode_request_event(event)
    known, state = await _campaign_state(settings, campaign_id)
    [delivery] = await publish(settings, [Record(event.campaign_key.encode(), value)])
    return ControlResult(event, delivery, state, known)


async def _campaign_state(
    settings: CliSettings, campaign_id: uuid.UUID
) -> tuple[bool | None, str | None]:
    try:
        async with connect(settings) as connection:
            row = await connection.fetchrow(Q["campaign_overview"], campaign_id)
    except Unavailable:
        return None, None
    return (False, None) if row is None else (True, row["state"])


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    helps = {
        "pause": "stop sending a campaign until it is resumed (nothing is lost)",
        "resume": "continue a paused campaign",
        "cancel": "stop a campaign for good: unsent recipients are skipped as cancelled",
    }
    for command, text in helps.items():
        parser = commands.add_parser(
            command,
            parents=[common],
            help=text,
            description=f"{text}.\n\n{__doc__}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("campaign", help="campaign id (UUID)")
        parser.add_argument("--reason", help="why, recorded on the campaign")
        parser.add_argument("--requested-by", help="who asks (default: $USER via the CLI)")
        parser.set_defaults(handler=_handle, control=command)


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    campaign_id = parse_campaign_id(args.campaign)
    result = await control(
        settings,
        args.control,
        campaign_id,
        reason=args.reason,
        requested_by=args.requested_by or f"broadcast-cli:{settings.operator}",
    )
    name = event_type(result.event)
    reason = f" (reason: {args.reason})" if args.reason else ""
    console.line(
        f"published {name} for campaign {campaign_id}{reason} to {settings.requests_topic} "
        f"partition {result.delivery.partition} offset {result.delivery.offset}"
    )
    if result.known is False:
        console.note(
            f"campaign {campaign_id} is not in the ledger yet: intake keeps the event and "
            "applies it when the campaign's first chunk arrives"
        )
    elif result.known:
        console.line(f"the campaign was {result.state}; intake applies the event within seconds")
    console.emit(
        {
            "campaign_id": str(campaign_id),
            "event": name,
            "reason": args.reason,
            "requested_by": result.event.requested_by,
            "topic": settings.requests_topic,
            "partition": result.delivery.partition,
            "offset": result.delivery.offset,
            "campaign_known": result.known,
            "state_before": result.state,
        }
    )
    return 0
