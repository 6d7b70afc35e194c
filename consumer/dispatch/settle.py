"""Settling what the ledger cannot know by itself, by asking the API (pure decisions).

Two questions, each answered from values only:

- A message reported `failed` that the policy would send again: on multi-device
  accounts a `delivered` may follow the `failed`. So the re-send waits a grace
  period after the failure, then the message's current status is read
  (`GET /v1/{number}/messages/{id}`): `delivered` or `read` means it arrived after
  all and is not sent twice.
- A send whose answer was lost and whose idempotency key has expired: re-sending
  with the same key would no longer be replayed. If exactly one message to that
  recipient from that sender, unknown to the ledger, was reported since the send,
  and the API confirms it, that message is the send's. Otherwise only an operator
  can decide (`outcome_unknown`).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class Recheck(Enum):
    WAIT = "wait"  # too young, or the API's view is not final: look again later
    RESEND = "resend"  # still failed (or unknown to the API): carry out the policy
    DELIVERED = "delivered"  # arrived after all: not sent again


def recheck_due(failed_at: float | None, now: float, grace_seconds: float) -> bool:
    """Whether a failure is old enough to ask the API about."""
    return failed_at is None or now - failed_at >= grace_seconds


def after_recheck(api_status: str | None) -> Recheck:
    """What the message's current status (None: the API does not know the id) decides."""
    if api_status in {"delivered", "read"}:
        return Recheck.DELIVERED
    if api_status is None or api_status == "failed":
        return Recheck.RESEND
    return Recheck.WAIT


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A pending row whose send may have landed and whose key has expired."""

    campaign_id: uuid.UUID
    phone: str
    phone_number_id: str
    uncertain_since: float


@dataclass(frozen=True, slots=True)
class Sighting:
    """A reported message the ledger does not hold: (sender, recipient, id, first seen)."""

    phone_number_id: str
    recipient_id: str
    message_id: str
    first_seen_at: float


def recipient_id(phone: str) -> str:
    """Webhooks name the recipient without the `+`."""
    return phone.removeprefix("+")


def candidates(
    rows: Sequence[InDoubt], sightings: Iterable[Sighting], slack_seconds: float = 300.0
) -> dict[tuple[uuid.UUID, str], str]:
    """(campaign, phone) -> the one message that can only be that row's send.

    A sighting counts for a row when it is of the same sender and recipient and was
    first seen no earlier than the send (less `slack_seconds` of clock skew). A row
    gets a message only when it is the only in-doubt row of that sender and
    recipient, exactly one sighting fits it, and no other row is given that message;
    anything ambiguous stays undecided.
    """
    rows_by_pair: dict[tuple[str, str], list[InDoubt]] = defaultdict(list)
    for row in rows:
        rows_by_pair[(row.phone_number_id, recipient_id(row.phone))].append(row)
    seen_by_pair: dict[tuple[str, str], list[Sighting]] = defaultdict(list)
    for sighting in sightings:
        seen_by_pair[(sighting.phone_number_id, sighting.recipient_id)].append(sighting)
    found: dict[tuple[uuid.UUID, str], str] = {}
    for pair, pair_rows in rows_by_pair.items():
        if len(pair_rows) != 1:
            continue
        (row,) = pair_rows
        fitting = {
            s.message_id
            for s in seen_by_pair.get(pair, [])
            if s.first_seen_at >= row.uncertain_since - slack_seconds
        }
        if len(fitting) == 1:
            found[(row.campaign_id, row.phone)] = fitting.pop()
    # A message reported for two recipients is nobody's for sure.
    claims = Counter(found.values())
    return {key: message_id for key, message_id in found.items() if claims[message_id] == 1}


def settle_before(
    uncertain_since: float | None, ttl_seconds: float, margin_seconds: float
) -> float | None:
    """The latest moment a send that may have landed should be repeated with its key,
    so that the API still replays it (None: the row is not in doubt)."""
    if uncertain_since is None:
        return None
    return uncertain_since + max(0.0, ttl_seconds - margin_seconds)
