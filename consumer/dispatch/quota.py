"""The rolling-window unique-recipient budget of a sender: who may be contacted now.

A recipient counts once per window however often it is messaged; a recipient whose
latest contact is still inside the window costs nothing to message again. The
planner decides before any call to the API, so `quota_exceeded` is never how the
limit is found.

The limit is the tier in force when the batch is planned: it may have risen or
fallen since the last plan (tier changes mid-campaign). After a fall the window
may already hold more recipients than the new limit; nothing new fits until
enough of them age out (`freeing_offset`), and the rest is deferred, never failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    """The budget as the database saw it, for the phones of one batch.

    `used` counts distinct recipients contacted within the window; `in_window` holds
    the batch's phones among them; `oldest_contact_at` is the earliest latest-contact
    still inside the window (the next slot to free up). `freeing_contact_at`, when
    `used` exceeds `limit` (the tier fell), is the latest-contact at `freeing_offset`
    in age order: the one whose ageing out brings `used` below `limit`; None means
    `oldest_contact_at`.
    """

    limit: int
    used: int
    in_window: frozenset[str]
    oldest_contact_at: float | None
    hold_until: float = 0.0
    freeing_contact_at: float | None = None


@dataclass(frozen=True, slots=True)
class QuotaPlan:
    send: tuple[str, ...]
    defer: tuple[str, ...]
    # When the deferred recipients should be looked at again.
    retry_at: float | None
    new_contacts: int


def plan_quota(
    phones: Sequence[str],
    snapshot: QuotaSnapshot,
    now: float,
    window_seconds: float,
    margin_seconds: float = 0.0,
) -> QuotaPlan:
    """Split a batch into sends and deferrals, in order, without exceeding the limit.

    `margin_seconds` keeps a contact counted a little past its window: our record is
    made just before the send, the API's just after it.
    """
    used = snapshot.used
    contacted = set(snapshot.in_window)
    held = now < snapshot.hold_until
    send: list[str] = []
    defer: list[str] = []
    for phone in phones:
        if phone in contacted:
            send.append(phone)
        elif not held and used < snapshot.limit:
            contacted.add(phone)
            used += 1
            send.append(phone)
        else:
            defer.append(phone)
    retry_at = None
    if defer:
        basis = (
            snapshot.freeing_contact_at
            if snapshot.freeing_contact_at is not None
            else snapshot.oldest_contact_at
        )
        frees_at = basis + window_seconds + margin_seconds if basis is not None else now
        retry_at = max(frees_at, snapshot.hold_until, now)
    return QuotaPlan(
        send=tuple(send),
        defer=tuple(defer),
        retry_at=retry_at,
        new_contacts=used - snapshot.used,
    )


def freeing_offset(used: int, limit: int) -> int:
    """Which contact, oldest first (0-based), must age out before a new one fits:
    the oldest while the window is at most full, later ones after a tier fell
    below `used` (from 100k to 1k with 5k contacted: the 4,001st oldest)."""
    return max(0, used - limit)


def number_budget_key(phone_number_id: str) -> str:
    """The quota budget of a number that shares it with no other (DISPATCH_BUDGET_GROUPS)."""
    return f"number:{phone_number_id}"


def window_start(now: float, window_seconds: float, margin_seconds: float = 0.0) -> float:
    """Contacts at or after this instant still count against the budget."""
    return now - window_seconds - margin_seconds
