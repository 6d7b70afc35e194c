"""Priority lanes: transactional sends go first, bulk takes the rest and keeps a share.

A campaign's `priority` puts its recipients in a lane. Every sender worker runs one
claim-and-send loop per lane, so a transactional campaign that arrives while a big
bulk batch is being paced out is claimed at once, not after that batch. The lanes
meet where a send waits for something both need: the organisation's write tokens
(`gate.PacerGate`, shared by every number's worker) and the number's in-flight
slots (`slots.Slots`). There `TurnQueue` decides who goes next: a waiting
transactional send, except that bulk, while it waits too, is given at least
`bulk_min_share` of the turns (`LaneTurns`); a turn nobody transactional wants goes
to bulk. A bulk claim plans its quota behind the transactional recipients due on
the same number (`plan_behind`), so they take the unique-recipient room first.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final, Generic, Literal, TypeAlias, TypeVar

from consumer.dispatch.quota import QuotaPlan, QuotaSnapshot, plan_quota

Lane: TypeAlias = Literal["transactional", "bulk"]
TRANSACTIONAL: Final = "transactional"
BULK: Final = "bulk"
LANES: Final[tuple[Lane, ...]] = (TRANSACTIONAL, BULK)
# Above an even split bulk would come first, which is not what a minimum share means.
MAX_BULK_SHARE: Final = 0.5
# Shares are counted in millionths so that 20 turns of 0.05 make exactly one.
_WHOLE: Final = 1_000_000

W = TypeVar("W")


def lane_of(priority: str) -> Lane:
    """The lane of a campaign's `priority` (anything but transactional is bulk)."""
    return TRANSACTIONAL if priority == TRANSACTIONAL else BULK


def check_share(bulk_min_share: float) -> float:
    if not 0.0 <= bulk_min_share <= MAX_BULK_SHARE:
        raise ValueError(f"bulk_min_share must be within 0..{MAX_BULK_SHARE}: {bulk_min_share}")
    return bulk_min_share


class LaneTurns:
    """Whose turn it is when one token (or slot) frees and someone waits for it.

    Only turns both lanes wait for are shared: each adds `bulk_min_share` to bulk's
    credit, and bulk takes the turn once the credit makes a whole one. So in any run
    of k contested turns bulk gets floor(k * share) or one more, and never two in a
    row while transactional waits. A lane that waits alone takes the turn and the
    credit stays as it is: bulk saves nothing up while it has no work (no burst
    later), and transactional leftovers simply go to bulk.
    """

    def __init__(self, bulk_min_share: float) -> None:
        self._share = round(check_share(bulk_min_share) * _WHOLE)
        self._credit = 0

    def choose(self, transactional_waits: bool, bulk_waits: bool) -> Lane | None:
        if transactional_waits and bulk_waits:
            self._credit += self._share
            if self._credit >= _WHOLE:
                self._credit -= _WHOLE
                return BULK
            return TRANSACTIONAL
        if transactional_waits:
            return TRANSACTIONAL
        if bulk_waits:
            return BULK
        return None


class TurnQueue(Generic[W]):
    """Waiters of both lanes, first come first served within a lane, lanes by `LaneTurns`."""

    def __init__(self, bulk_min_share: float) -> None:
        self._turns = LaneTurns(bulk_min_share)
        self._waiting: dict[Lane, deque[W]] = {lane: deque() for lane in LANES}

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())

    def waiting(self, lane: Lane) -> int:
        return len(self._waiting[lane])

    def push(self, lane: Lane, waiter: W) -> None:
        self._waiting[lane].append(waiter)

    def remove(self, waiter: W) -> bool:
        """Withdraw a waiter that gave up; False when it was not waiting (already served)."""
        for waiting in self._waiting.values():
            if waiter in waiting:
                waiting.remove(waiter)
                return True
        return False

    def pop(self) -> W | None:
        """The waiter whose turn it is, or None when nobody waits."""
        lane = self._turns.choose(bool(self._waiting[TRANSACTIONAL]), bool(self._waiting[BULK]))
        return self._waiting[lane].popleft() if lane is not None else None


def plan_behind(
    ahead: Sequence[str],
    phones: Sequence[str],
    snapshot: QuotaSnapshot,
    now: float,
    *,
    window_seconds: float,
    margin_seconds: float = 0.0,
) -> QuotaPlan:
    """Plan `phones` (a bulk batch) as if the `ahead` phones (transactional recipients
    due on the same budget, claimed by their own lane) were planned first: the room
    they would take is left to them. Only `phones` are sent or deferred; a phone in
    both sends once and counts once."""
    if not ahead:
        return plan_quota(phones, snapshot, now, window_seconds, margin_seconds)
    together = plan_quota([*ahead, *phones], snapshot, now, window_seconds, margin_seconds)
    fits = set(together.send)
    send = tuple(phone for phone in phones if phone in fits)
    defer = tuple(phone for phone in phones if phone not in fits)
    new = {phone for phone in send if phone not in snapshot.in_window}
    return QuotaPlan(
        send=send,
        defer=defer,
        retry_at=together.retry_at if defer else None,
        new_contacts=len(new),
    )
