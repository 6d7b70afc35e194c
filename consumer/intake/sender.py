"""Which number sends a campaign, decided from the Kirim accounts list (pure).

- An explicit `phone_number_id` must be a known account whose status is
  `connected`; otherwise the campaign is paused with `sender_unknown` or
  `sender_disconnected` (its recipients are not failed).
- `auto` is resolved once per campaign: the `connected` account with the highest
  messaging tier (unlimited > 100k > 10k > 2k > 1k > 250 > unknown), then the
  best quality rating (GREEN > YELLOW > RED > none), then the smallest
  `phone_number_id`, so the choice is deterministic. None connected: paused with
  `no_connected_sender`. Once resolved, the campaign keeps its number: a later
  check (on resume) only verifies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from consumer.intake.header import AUTO_SENDER
from consumer.kirim.resources import Account

_QUALITY_RANK: Final = {"GREEN": 3, "YELLOW": 2, "RED": 1}

# The dispatcher's type: both read the accounts list with one parser (kirim.resources).
SenderAccount = Account


@dataclass(frozen=True, slots=True)
class SenderDecision:
    phone_number_id: str | None
    problem: str | None


def choose_auto_sender(accounts: Sequence[SenderAccount]) -> str | None:
    connected = [account for account in accounts if account.connected]
    if not connected:
        return None
    best = min(
        connected,
        key=lambda a: (
            -(a.tier if a.tier is not None else 0),
            -_QUALITY_RANK.get((a.quality_rating or "").upper(), 0),
            a.phone_number_id,
        ),
    )
    return best.phone_number_id


def decide_sender(
    sender_spec: str, resolved: str | None, accounts: Sequence[SenderAccount]
) -> SenderDecision:
    """The number to store on the campaign and, when it cannot send, why."""
    if sender_spec == AUTO_SENDER and resolved is None:
        chosen = choose_auto_sender(accounts)
        return SenderDecision(chosen, None if chosen else "no_connected_sender")
    target = resolved if sender_spec == AUTO_SENDER else sender_spec
    account = next((a for a in accounts if a.phone_number_id == target), None)
    if account is None:
        return SenderDecision(target, "sender_unknown")
    if not account.connected:
        return SenderDecision(target, "sender_disconnected")
    return SenderDecision(target, None)
