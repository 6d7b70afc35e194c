"""Each sender's use of its quota window, counted in the background like the campaigns.

The campaign page and the senders page show how many unique recipients a budget
contacted in the rolling window (`quota_contacts`). Counting that reads one index entry
per recipient: for the sender of a campaign of a million, about a million entries, a
few hundred milliseconds on every view (bench/console.py measured it). So, as for the
campaign counts (console/snapshots.py), a page never waits for it: it reads the latest
figure (None before the first; the page says "counting") and marks the budget watched,
and one background task recounts the watched budgets when due, on the snapshots'
policy (`console.snapshots.due`: every `interval`, or five times as long as the count
took, whichever is longer), and stops counting a budget nobody looked at for
`WATCH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from console.snapshots import WATCH_SECONDS, due
from runtime.db import TRANSIENT_ERRORS
from runtime.logs import get_logger

log = get_logger(__name__)

# budget key, now (epoch seconds) -> unique recipients contacted in the window up to now
Count = Callable[[str, float], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Gauge:
    used: int
    taken_at: float  # time.time() when the count started
    took: float  # seconds the count took


class QuotaGauges:
    def __init__(
        self,
        count: Count,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._count = count
        self._interval = interval
        self._clock = clock
        self._latest: dict[str, Gauge] = {}
        self._watched: dict[str, float] = {}
        self._wake = asyncio.Event()

    def get(self, budget_key: str) -> Gauge | None:
        """The latest count (None before the first); marks the budget watched."""
        first = budget_key not in self._watched
        self._watched[budget_key] = self._clock()
        if first or budget_key not in self._latest:
            self._wake.set()
        return self._latest.get(budget_key)

    async def run(self, stop: asyncio.Event) -> None:
        """Recount due budgets, oldest first, one at a time, until `stop`."""
        while not stop.is_set():
            now = self._clock()
            for key, watched_at in list(self._watched.items()):
                if now - watched_at > WATCH_SECONDS:
                    del self._watched[key]  # its figure stays for the next look
            waiting = sorted(
                (self._latest[k].taken_at if k in self._latest else 0.0, k)
                for k, watched_at in self._watched.items()
                if due(self._latest.get(k), watched_at, now, self._interval)
            )
            for _, key in waiting:
                if stop.is_set():
                    return
                await self._refresh(key)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(1.0, self._interval / 2))

    async def _refresh(self, budget_key: str) -> None:
        taken_at, started = self._clock(), time.monotonic()
        try:
            used = await self._count(budget_key, taken_at)
        except TRANSIENT_ERRORS as error:
            log.warning("console_quota_count_failed", budget=budget_key, error=repr(error))
            return
        self._latest[budget_key] = Gauge(used, taken_at, time.monotonic() - started)
