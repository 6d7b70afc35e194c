"""Each sender's use of its quota window, counted in the background like the campaigns.

The campaign page and the senders page show how many unique recipients a budget
contacted in the rolling window (`quota_contacts`). Counting that reads one index entry
per recipient: for the sender of a campaign of a million, about a million entries, a
few hundred milliseconds on every view (bench/console.py measured it). So, as for the
campaign counts (console/snapshots.py), a page never waits for it: it reads the latest
figure (None before the first; the page says "counting") and marks the budget watched,
and the same background cache as the snapshots' (`console.snapshots.Watched`)
recounts the watched budgets when due: every `interval`, or five times as long as the
count took, whichever is longer, and never a budget nobody looked at for a minute.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from console.snapshots import Watched

# budget key, now (epoch seconds) -> unique recipients contacted in the window up to now
Count = Callable[[str, float], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Gauge:
    used: int
    taken_at: float  # time.time() when the count started
    took: float  # seconds the count took


class QuotaGauges(Watched[str, Gauge]):
    def __init__(
        self, count: Count, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        async def take(budget_key: str, taken_at: float) -> Gauge:
            started = time.monotonic()
            used = await count(budget_key, taken_at)
            return Gauge(used, taken_at, time.monotonic() - started)

        super().__init__(take, interval, clock, what="quota")
