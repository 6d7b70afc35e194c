"""Rolling-window unique-recipient counting: the messaging-tier quota and its audit.

Contract (kirim-api.md, "Messaging tiers and quota"): per quota key (a
`phone_number_id`, or a group of numbers) at most `tier` unique recipients
whose *first contact* lies in the last `window` seconds. A recipient already
first-contacted inside the window does not count again and does not restart
its window; once its first contact ages out, the next message counts anew.
A first contact at `t` stops counting at `t + window`.

Pure: time is a parameter; callers pass non-decreasing times.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


class RollingUniques:
    """Recipients first-contacted in the last `window` seconds, and the peak count."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.peak = 0
        # Insertion order is first-contact order, so expiry pops from the front.
        self._first: OrderedDict[str, float] = OrderedDict()

    def expire(self, now: float) -> None:
        horizon = now - self.window
        first = self._first
        while first:
            recipient, at = next(iter(first.items()))
            if at > horizon:
                break
            del first[recipient]

    def count(self, now: float) -> int:
        self.expire(now)
        return len(self._first)

    def __contains__(self, recipient: str) -> bool:
        return recipient in self._first

    def add(self, recipient: str, now: float) -> bool:
        """Record a contact; True when it is a first contact (it counts)."""
        self.expire(now)
        if recipient in self._first:
            return False
        self._first[recipient] = now
        self.peak = max(self.peak, len(self._first))
        return True

    def seconds_until_slot(self, now: float) -> float:
        """Seconds until the oldest counted first contact leaves the window."""
        self.expire(now)
        if not self._first:
            return 0.0
        oldest = next(iter(self._first.values()))
        return max(0.0, oldest + self.window - now)


@dataclass(frozen=True, slots=True)
class Admitted:
    first_contact: bool


@dataclass(frozen=True, slots=True)
class Exceeded:
    retry_after: int


QuotaDecision = Admitted | Exceeded


class TierQuota:
    def __init__(self, window: float) -> None:
        self._window = window
        self._keys: dict[str, RollingUniques] = {}

    @property
    def window(self) -> float:
        return self._window

    @window.setter
    def window(self, seconds: float) -> None:
        self._window = seconds
        for uniques in self._keys.values():
            uniques.window = seconds

    def uniques(self, key: str) -> RollingUniques:
        uniques = self._keys.get(key)
        if uniques is None:
            uniques = self._keys[key] = RollingUniques(self._window)
        return uniques

    def admit(self, key: str, recipient: str, tier: int | None, now: float) -> QuotaDecision:
        """Count `recipient` against `key`'s tier (None: unlimited) or refuse it."""
        uniques = self.uniques(key)
        uniques.expire(now)
        if recipient in uniques:
            return Admitted(first_contact=False)
        if tier is not None and uniques.count(now) >= tier:
            return Exceeded(retry_after=max(1, math.ceil(uniques.seconds_until_slot(now))))
        uniques.add(recipient, now)
        return Admitted(first_contact=True)

    def in_window(self, key: str, now: float) -> int:
        return self.uniques(key).count(now)

    def clear(self) -> None:
        self._keys.clear()
