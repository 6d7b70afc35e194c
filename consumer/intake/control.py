"""Pause, resume and cancel: a campaign's state as a pure function of its commands.

States (campaigns.state): `active`, `paused`, `cancelled`, and `stopped` (set by
the dispatcher when a campaign cannot go on, e.g. its template was disabled).

- `pause`: active -> paused (reason: the event's `reason`, else `requested`);
  a paused, stopped or cancelled campaign is left as it is.
- `resume`: paused or stopped -> active, after the sender is checked again: if
  it is still unknown or not connected the campaign stays paused with that
  reason. Resuming an active campaign changes nothing.
- `cancel`: anything -> cancelled. Cancel is final: a later pause or resume
  changes nothing. Unsent recipients (`pending`) become `skipped`/`cancelled`,
  and so do eligible rows of chunks that arrive afterwards.

Replaying the same commands in the same order gives the same state, so a
redelivered control event is harmless. A control event for a campaign whose
first chunk has not arrived is remembered and folded, in arrival order, into the
campaign's initial state when that chunk arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from schemas.requests import BroadcastCancelled, BroadcastPaused, BroadcastResumed

Command = Literal["pause", "resume", "cancel"]
ControlEvent = BroadcastPaused | BroadcastResumed | BroadcastCancelled

REQUESTED: Final = "requested"
# Why a campaign is paused because of its sender (see consumer/accounts.py).
SENDER_PROBLEMS: Final = frozenset({"sender_unknown", "sender_disconnected", "no_connected_sender"})
_RESUMABLE: Final = frozenset({"paused", "stopped"})


@dataclass(frozen=True, slots=True)
class CampaignState:
    state: str
    reason: str | None

    @property
    def cancelled(self) -> bool:
        return self.state == "cancelled"


ACTIVE: Final = CampaignState("active", None)


def command_of(event: ControlEvent) -> Command:
    if isinstance(event, BroadcastPaused):
        return "pause"
    if isinstance(event, BroadcastResumed):
        return "resume"
    return "cancel"


def storable_reason(reason: str | None) -> str | None:
    """The event's free-text reason as the state_reason column can hold it (no NUL)."""
    return None if reason is None else reason.replace("\x00", "\ufffd")


def initial_state(sender_problem: str | None) -> CampaignState:
    """A new campaign: active, or paused when its sender cannot send."""
    return ACTIVE if sender_problem is None else CampaignState("paused", sender_problem)


def needs_sender_check(current: CampaignState, command: Command) -> bool:
    """True when applying `command` would re-activate the campaign."""
    return command == "resume" and current.state in _RESUMABLE


def apply(
    current: CampaignState, command: Command, *, reason: str | None, sender_problem: str | None
) -> CampaignState:
    """The state after `command`; `sender_problem` is the sender check's answer now."""
    if current.cancelled:
        return current
    if command == "cancel":
        return CampaignState("cancelled", storable_reason(reason) or REQUESTED)
    if command == "pause":
        if current.state == "active":
            return CampaignState("paused", storable_reason(reason) or REQUESTED)
        return current
    if current.state in _RESUMABLE:
        return initial_state(sender_problem)
    return current


def fold(
    start: CampaignState,
    commands: Iterable[tuple[Command, str | None]],
    *,
    sender_problem: str | None,
) -> CampaignState:
    """Apply remembered commands in arrival order (a new campaign's early controls)."""
    state = start
    for command, reason in commands:
        state = apply(state, command, reason=reason, sender_problem=sender_problem)
    return state
