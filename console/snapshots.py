"""The latest figures of each campaign someone is looking at, refreshed in the background.

A page never waits for a count. Counting a campaign reads each of its recipients once
(index-backed, but a million rows is about a second of database work), so pages are
rendered from the latest snapshot, and a background task keeps the snapshots of the
campaigns being watched fresh:

- a campaign is *watched* for `WATCH_SECONDS` after a page or a live stream asked for it;
- a watched snapshot is due again `interval` seconds after it was taken, or five times
  as long as it took to take, whichever is longer: a big campaign is recounted less
  often, so watching it never costs the database more than a fifth of one core;
- nothing is counted for a campaign nobody watches.

`due` and `refresh_after` are the pure policy; `Snapshots` is the cache and its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from console.store import ThroughputBucket
from console.tally import Tally
from runtime.db import TRANSIENT_ERRORS
from runtime.logs import get_logger

log = get_logger(__name__)

WATCH_SECONDS: Final = 60.0
COST_FACTOR: Final = 5.0
THROUGHPUT_BUCKETS: Final = 60


@dataclass(frozen=True, slots=True)
class Snapshot:
    tally: Tally
    throughput: tuple[ThroughputBucket, ...]
    taken_at: float  # time.time() when the count started
    took: float  # seconds the count took


class Taken(Protocol):
    """What the refresh policy reads of a count (a `Snapshot`, a quota `Gauge`)."""

    @property
    def taken_at(self) -> float: ...
    @property
    def took(self) -> float: ...


def refresh_after(snapshot: Taken, interval: float) -> float:
    """Seconds after `taken_at` when a watched snapshot is due again."""
    return max(interval, COST_FACTOR * snapshot.took)


def due(snapshot: Taken | None, watched_at: float, now: float, interval: float) -> bool:
    if now - watched_at > WATCH_SECONDS:
        return False
    if snapshot is None:
        return True
    return now - snapshot.taken_at >= refresh_after(snapshot, interval)


Count = Callable[[uuid.UUID], Awaitable[tuple[Tally, list[ThroughputBucket]]]]


class Snapshots:
    def __init__(
        self, count: Count, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._count = count
        self._interval = interval
        self._clock = clock
        self._latest: dict[uuid.UUID, Snapshot] = {}
        self._watched: dict[uuid.UUID, float] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()

    def get(self, campaign_id: uuid.UUID) -> Snapshot | None:
        """The latest snapshot (None before the first); marks the campaign watched."""
        first = campaign_id not in self._watched
        self._watched[campaign_id] = self._clock()
        if first or campaign_id not in self._latest:
            self._wake.set()
        return self._latest.get(campaign_id)

    async def newer(self, campaign_id: uuid.UUID, than: float, within: float) -> Snapshot | None:
        """Wait (up to `within` s) for a snapshot taken after `than`; keeps it watched."""
        deadline = time.monotonic() + within
        async with self._changed:
            while True:
                current = self.get(campaign_id)
                if current is not None and current.taken_at > than:
                    return current
                left = deadline - time.monotonic()
                if left <= 0:
                    return current
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    return self._latest.get(campaign_id)

    def forget(self, campaign_id: uuid.UUID) -> None:
        self._latest.pop(campaign_id, None)
        self._watched.pop(campaign_id, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh due snapshots, oldest first, one at a time, until `stop`."""
        while not stop.is_set():
            # Cleared before the scan, not after the counts: a first look while a count
            # runs sets it again, and its campaign is counted right after, not a turn later.
            self._wake.clear()
            now = self._clock()
            for campaign_id, watched_at in list(self._watched.items()):
                if now - watched_at > WATCH_SECONDS:
                    del self._watched[campaign_id]  # its snapshot stays for the next look
            waiting = sorted(
                (self._latest[c].taken_at if c in self._latest else 0.0, c)
                for c, watched_at in self._watched.items()
                if due(self._latest.get(c), watched_at, now, self._interval)
            )
            for _, campaign_id in waiting:
                if stop.is_set():
                    return
                await self._refresh(campaign_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(1.0, self._interval / 2))

    async def _refresh(self, campaign_id: uuid.UUID) -> None:
        taken_at, started = self._clock(), time.monotonic()
        try:
            tally, throughput = await self._count(campaign_id)
        except TRANSIENT_ERRORS as error:
            log.warning("console_count_failed", campaign=str(campaign_id), error=repr(error))
            return
        snapshot = Snapshot(tally, tuple(throughput), taken_at, time.monotonic() - started)
        self._latest[campaign_id] = snapshot
        async with self._changed:
            self._changed.notify_all()
