"""The rolling-window unique-recipient budget of a sender: who may be contacted now.

A recipient counts once per window however often it is messaged; a recipient whose
latest contact is still inside the window costs nothing to message again. The
planner decides before any call to the API, so `quota_exceeded` is never how the
limit is found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    """The budget as the database saw it, for the phones of one batch.

    `used` counts distinct recipients contacted within the window; `in_window` holds
    the batch's phones among them; `oldest_contact_at` is the earliest latest-contact
    still inside the window (the next slot to free up).
    """

    limit: int
    used: int
    in_window: frozenset[str]
    oldest_contact_at: float | None
    hold_until: float = 0.0


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
        frees_at = (
            snapshot.oldest_contact_at + window_seconds + margin_seconds
            if snapshot.oldest_contact_at is not None
            else now
        )
        retry_at = max(frees_at, snapshot.hold_until, now)
    return QuotaPlan(
        send=tuple(send),
        defer=tuple(defer),
        retry_at=retry_at,
        new_contacts=used - snapshot.used,
    )


def window_start(now: float, window_seconds: float, margin_seconds: float = 0.0) -> float:
    """Contacts at or after this instant still count against the budget."""
    return now - window_seconds - margin_seconds
