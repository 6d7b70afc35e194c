"""console.snapshots: the refresh policy as a table, and the cache driven by a fake count.

The cache runs with a fake clock (the policy's time) and a short interval, so that
its real waits (`min(1, interval / 2)` between turns) stay a few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import pytest

from console.snapshots import (
    COST_FACTOR,
    WATCH_SECONDS,
    Snapshot,
    Snapshots,
    due,
    refresh_after,
)
from console.store import ThroughputBucket
from console.tally import Group, Tally
from runtime.db import TRANSIENT_ERRORS

# Seconds of the fake clock (1/16: exact at epoch magnitudes); the loop turns every 1/32 s.
INTERVAL = 0.0625
T0 = 1_767_600_000.0


def _snapshot(taken_at: float, took: float = 0.0) -> Snapshot:
    return Snapshot(Tally.of([]), (), taken_at, took)


# --- the policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("took", "interval", "after"),
    [
        (0.0, 2.0, 2.0),
        (0.1, 2.0, 2.0),
        (0.4, 2.0, 2.0),  # exactly the interval at five times 0.4 s
        (0.5, 2.0, 2.5),
        (1.2, 2.0, 6.0),
        (30.0, 0.2, 150.0),
    ],
)
def test_refresh_after(took: float, interval: float, after: float) -> None:
    assert refresh_after(_snapshot(T0, took), interval) == pytest.approx(after)
    assert COST_FACTOR == 5.0


@pytest.mark.parametrize(
    ("snapshot", "watched_ago", "now", "is_due"),
    [
        # Nobody watching: never due, whatever the snapshot.
        (None, WATCH_SECONDS + 0.001, T0, False),
        (None, 3600.0, T0, False),
        (_snapshot(T0 - 3600), WATCH_SECONDS + 1, T0, False),
        # Watched and never counted: due at once.
        (None, 0.0, T0, True),
        (None, WATCH_SECONDS, T0, True),  # still watched at exactly WATCH_SECONDS
        # Watched: due once `refresh_after` has passed since it was taken.
        (_snapshot(T0), 0.0, T0, False),
        (_snapshot(T0), 0.0, T0 + 1.999, False),
        (_snapshot(T0), 0.0, T0 + 2.0, True),
        (_snapshot(T0), 0.0, T0 + 30, True),
        (_snapshot(T0, took=1.0), 0.0, T0 + 4.999, False),
        (_snapshot(T0, took=1.0), 0.0, T0 + 5.0, True),
        (_snapshot(T0, took=1.0), WATCH_SECONDS, T0 + 5.0, True),
        (_snapshot(T0, took=1.0), WATCH_SECONDS + 0.5, T0 + 5.0, False),
        # A clock that went back: not due yet, never an error.
        (_snapshot(T0 + 10), 0.0, T0, False),
    ],
)
def test_due(snapshot: Snapshot | None, watched_ago: float, now: float, is_due: bool) -> None:
    assert due(snapshot, now - watched_ago, now, interval=2.0) is is_due


# --- the cache -----------------------------------------------------------------------


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeCount:
    """Counts a campaign as `sent: <number of counts so far>`; a test scripts the rest."""

    calls: list[uuid.UUID] = field(default_factory=list)
    seconds: dict[uuid.UUID, float] = field(default_factory=dict)
    failures: list[BaseException] = field(default_factory=list)
    gates: dict[uuid.UUID, asyncio.Event] = field(default_factory=dict)

    async def __call__(self, campaign_id: uuid.UUID) -> tuple[Tally, list[ThroughputBucket]]:
        self.calls.append(campaign_id)
        if self.failures:
            raise self.failures.pop(0)
        if campaign_id in self.gates:
            await self.gates[campaign_id].wait()
        if campaign_id in self.seconds:
            await asyncio.sleep(self.seconds[campaign_id])
        tally = Tally.of([Group("sent", None, None, len(self.calls))])
        return tally, [ThroughputBucket(T0, 60.0, len(self.calls))]

    def of(self, campaign_id: uuid.UUID) -> int:
        return self.calls.count(campaign_id)


async def until(condition: Callable[[], object], within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.002)


async def counted(count: FakeCount, campaign: uuid.UUID, times: int) -> None:
    await until(lambda: count.of(campaign) == times)


async def settle() -> None:
    """A few turns of the refresh loop."""
    await asyncio.sleep(INTERVAL * 2)


@asynccontextmanager
async def running(snapshots: Snapshots) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(snapshots.run(stop))
    try:
        yield task
    finally:
        stop.set()
        if task.done():
            task.result()  # a crash fails the test
        else:
            # `stop` is seen at the next turn; a test with a long interval need not wait.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _cache(count: FakeCount, clock: Clock, interval: float = INTERVAL) -> Snapshots:
    return Snapshots(count, interval, clock=clock)


async def test_first_get_watches_and_then_the_count_arrives() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        assert snapshots.get(campaign) is None
        await until(lambda: snapshots.get(campaign) is not None)
        snapshot = snapshots.get(campaign)
        assert snapshot is not None
        assert snapshot.taken_at == T0
        assert snapshot.tally.counts["sent"] == 1
        assert snapshot.throughput == (ThroughputBucket(T0, 60.0, 1),)
        assert snapshot.took >= 0.0
        assert count.calls == [campaign]


async def test_nothing_is_counted_for_a_campaign_nobody_asked_for() -> None:
    count, clock = FakeCount(), Clock()
    async with running(_cache(count, clock)):
        await settle()
        clock.now += 3600
        await settle()
    assert count.calls == []


async def test_a_watched_campaign_is_recounted_each_interval_not_sooner() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await counted(count, campaign, 1)
        clock.now += INTERVAL / 2
        await settle()
        assert count.of(campaign) == 1
        clock.now += INTERVAL / 2
        await counted(count, campaign, 2)
        snapshot = snapshots.get(campaign)
        assert snapshot is not None
        assert snapshot.taken_at == T0 + INTERVAL
        assert snapshot.tally.counts["sent"] == 2


async def test_a_campaign_nobody_watches_is_not_recounted() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await counted(count, campaign, 1)
        clock.now += WATCH_SECONDS + 1
        await settle()
        assert count.of(campaign) == 1
        # Its snapshot stays for the next look, which watches it again.
        snapshot = snapshots.get(campaign)
        assert snapshot is not None
        assert snapshot.taken_at == T0
        await counted(count, campaign, 2)


async def test_a_campaign_watched_again_in_time_stays_fresh() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await counted(count, campaign, 1)
        for turn in range(2, 5):
            clock.now += WATCH_SECONDS * 0.9
            snapshots.get(campaign)
            await counted(count, campaign, turn)


async def test_an_expensive_count_is_recounted_less_often() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    cheap, costly = uuid.uuid4(), uuid.uuid4()
    count.seconds[costly] = 0.1  # refresh_after >= 5 * 0.1 s of the fake clock
    async with running(snapshots):
        snapshots.get(cheap)
        snapshots.get(costly)
        await until(lambda: count.of(cheap) == 1 and snapshots.get(costly) is not None)
        snapshot = snapshots.get(costly)
        assert snapshot is not None
        assert snapshot.took >= 0.1
        assert refresh_after(snapshot, INTERVAL) >= 0.5
        clock.now += 0.25
        await counted(count, cheap, 2)
        await settle()
        assert count.of(costly) == 1
        clock.now += 2.0
        await counted(count, costly, 2)


async def test_the_oldest_snapshot_is_refreshed_first() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    older, newer, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with running(snapshots):
        snapshots.get(older)
        await counted(count, older, 1)
        clock.now += INTERVAL / 2
        snapshots.get(newer)
        await counted(count, newer, 1)
        count.gates[older] = asyncio.Event()  # holds the turn that has both due
        clock.now += 10
        await counted(count, older, 2)
        snapshots.get(later)
        count.gates[older].set()
        await until(lambda: count.of(newer) == 2 and count.of(later) == 1)
    assert count.calls == [older, newer, older, newer, later]


async def test_a_campaign_asked_for_during_a_count_is_counted_right_after_it() -> None:
    """The wake-up of a page's first look is not lost while another count runs."""
    count, clock = FakeCount(), Clock()
    # A long interval: the loop's own turn is a second; only a wake-up is faster.
    snapshots = _cache(count, clock, interval=10.0)
    busy, asked = uuid.uuid4(), uuid.uuid4()
    count.gates[busy] = asyncio.Event()
    async with running(snapshots):
        snapshots.get(busy)
        await counted(count, busy, 1)
        snapshots.get(asked)
        await asyncio.sleep(0.01)
        count.gates[busy].set()
        # Polled without `get`, which would wake the loop again on each look.
        await until(lambda: count.of(asked) == 1, within=0.5)


@pytest.mark.parametrize(
    "error",
    [
        OSError("connection reset"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.InterfaceError("pool is closing"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_transient_database_error_does_not_stop_the_refresh(error: Exception) -> None:
    assert isinstance(error, TRANSIENT_ERRORS)
    count, clock = FakeCount(failures=[error, error]), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots) as task:
        snapshots.get(campaign)
        await until(lambda: snapshots.get(campaign) is not None)
        assert not task.done()
        assert count.of(campaign) == 3


async def test_a_failed_recount_keeps_the_last_snapshot() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await counted(count, campaign, 1)
        count.failures.append(OSError("gone"))
        count.gates[campaign] = asyncio.Event()  # holds the retry after the failure
        clock.now += INTERVAL
        await counted(count, campaign, 3)
        snapshot = snapshots.get(campaign)
        assert snapshot is not None
        assert snapshot.taken_at == T0
        count.gates[campaign].set()
        await until(lambda: getattr(snapshots.get(campaign), "taken_at", 0) == T0 + INTERVAL)


async def test_an_unexpected_error_crashes_the_refresh() -> None:
    count, clock = FakeCount(failures=[RuntimeError("a bug")]), Clock()
    snapshots = _cache(count, clock)
    snapshots.get(uuid.uuid4())
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(snapshots.run(asyncio.Event()), 1.0)


async def test_run_returns_soon_after_stop() -> None:
    snapshots = _cache(FakeCount(), Clock())
    stop = asyncio.Event()
    task = asyncio.create_task(snapshots.run(stop))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 0.5  # at the next turn, 1/32 s away


async def test_forget_drops_the_snapshot_and_the_watch() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await counted(count, campaign, 1)
        snapshots.forget(campaign)
        clock.now += INTERVAL
        await settle()
        assert count.of(campaign) == 1
        assert snapshots.get(campaign) is None  # a look after forgetting starts afresh
        await counted(count, campaign, 2)


# --- newer ---------------------------------------------------------------------------


async def test_newer_returns_as_soon_as_a_newer_snapshot_is_taken() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await until(lambda: snapshots.get(campaign) is not None)
        waiting = asyncio.create_task(snapshots.newer(campaign, than=T0, within=5.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        started = time.monotonic()
        clock.now += INTERVAL
        snapshot = await asyncio.wait_for(waiting, 1.0)
        assert time.monotonic() - started < 0.5
        assert snapshot is not None
        assert snapshot.taken_at == T0 + INTERVAL


async def test_newer_returns_a_newer_snapshot_it_already_has_at_once() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await until(lambda: snapshots.get(campaign) is not None)
        snapshot = await asyncio.wait_for(snapshots.newer(campaign, T0 - 1, within=5.0), 0.1)
        assert snapshot is not None
        assert snapshot.taken_at == T0


async def test_newer_returns_the_current_snapshot_after_within() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await until(lambda: snapshots.get(campaign) is not None)
        started = time.monotonic()
        snapshot = await snapshots.newer(campaign, than=T0, within=0.1)
        assert 0.09 <= time.monotonic() - started < 0.5
        assert snapshot is not None
        assert snapshot.taken_at == T0


async def test_newer_returns_none_after_within_when_nothing_was_ever_counted() -> None:
    count, clock = FakeCount(), Clock()
    campaign = uuid.uuid4()
    count.gates[campaign] = asyncio.Event()  # the count never finishes
    snapshots = _cache(count, clock)
    async with running(snapshots):
        assert await snapshots.newer(campaign, than=0.0, within=0.05) is None
        assert count.of(campaign) == 1  # asking watched it
        assert await snapshots.newer(campaign, than=0.0, within=0.0) is None
        count.gates[campaign].set()


async def test_newer_without_a_refresh_task_still_returns() -> None:
    snapshots = _cache(FakeCount(), Clock())
    assert await asyncio.wait_for(snapshots.newer(uuid.uuid4(), 0.0, within=0.02), 1.0) is None


async def test_newer_keeps_the_campaign_watched() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await counted(count, campaign, 1)
        # A live stream asks only through `newer`: long after the page's own look.
        for turn in range(2, 4):
            clock.now += WATCH_SECONDS * 0.9
            snapshot = await snapshots.newer(campaign, than=clock.now - 1, within=1.0)
            assert snapshot is not None
            assert snapshot.taken_at == clock.now
            assert count.of(campaign) == turn


async def test_several_waiters_all_get_the_newer_snapshot() -> None:
    count, clock = FakeCount(), Clock()
    snapshots = _cache(count, clock)
    campaign = uuid.uuid4()
    async with running(snapshots):
        snapshots.get(campaign)
        await until(lambda: snapshots.get(campaign) is not None)
        waiters = [
            asyncio.create_task(snapshots.newer(campaign, than=T0, within=5.0)) for _ in range(3)
        ]
        await asyncio.sleep(0.01)
        clock.now += INTERVAL
        results = await asyncio.wait_for(asyncio.gather(*waiters), 1.0)
        assert [r.taken_at if r else None for r in results] == [T0 + INTERVAL] * 3
