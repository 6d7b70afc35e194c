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

`due` and `refresh_after` are the pure policy; `Watched` is the cache and its task,
for campaign snapshots (`Snapshots`) and the quota gauges (console/quota.py) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Taken)


class Watched(Generic[K, V]):
    """The latest count of each key someone looks at, kept fresh by one background task
    on the policy above. `count(key, taken_at)` produces the value (which records when
    it was taken and how long it took); a transient database error skips one round."""

    def __init__(
        self,
        count: Callable[[K, float], Awaitable[V]],
        interval: float,
        clock: Callable[[], float] = time.time,
        what: str = "count",
    ) -> None:
        self._count = count
        self._interval = interval
        self._clock = clock
        self._what = what
        self._latest: dict[K, V] = {}
        self._watched: dict[K, float] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()

    def get(self, key: K) -> V | None:
        """The latest value (None before the first); marks the key watched."""
        first = key not in self._watched
        self._watched[key] = self._clock()
        if first or key not in self._latest:
            self._wake.set()
        return self._latest.get(key)

    async def newer(self, key: K, than: float, within: float) -> V | None:
        """Wait (up to `within` s) for a value taken after `than`; keeps it watched."""
        deadline = time.monotonic() + within
        async with self._changed:
            while True:
                current = self.get(key)
                if current is not None and current.taken_at > than:
                    return current
                left = deadline - time.monotonic()
                if left <= 0:
                    return current
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    return self._latest.get(key)

    def forget(self, key: K) -> None:
        self._latest.pop(key, None)
        self._watched.pop(key, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh due values, oldest first, one at a time, until `stop`."""
        while not stop.is_set():
            # Cleared before the scan, not after the counts: a first look while a count
            # runs sets it again, and its key is counted right after, not a turn later.
            self._wake.clear()
            now = self._clock()
            for key, watched_at in list(self._watched.items()):
                if now - watched_at > WATCH_SECONDS:
                    del self._watched[key]  # its value stays for the next look
            waiting = sorted(
                (
                    (self._latest[k].taken_at if k in self._latest else 0.0, k)
                    for k, watched_at in self._watched.items()
                    if due(self._latest.get(k), watched_at, now, self._interval)
                ),
                key=lambda item: item[0],
            )
            for _, key in waiting:
                if stop.is_set():
                    return
                await self._refresh(key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(1.0, self._interval / 2))

    async def _refresh(self, key: K) -> None:
        try:
            value = await self._count(key, self._clock())
        except TRANSIENT_ERRORS as error:
            log.warning("console_count_failed", what=self._what, key=str(key), error=repr(error))
            return
        self._latest[key] = value
        async with self._changed:
            self._changed.notify_all()


Count = Callable[[uuid.UUID], Awaitable[tuple[Tally, list[ThroughputBucket]]]]


class Snapshots(Watched[uuid.UUID, Snapshot]):
    """Campaign snapshots: `count(campaign_id)` is one tally and throughput pass."""

    def __init__(
        self, count: Count, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        async def take(campaign_id: uuid.UUID, taken_at: float) -> Snapshot:
            started = time.monotonic()
            tally, throughput = await count(campaign_id)
            return Snapshot(tally, tuple(throughput), taken_at, time.monotonic() - started)

        super().__init__(take, interval, clock, what="campaign")
