"""The in-flight bound of one sender, resizable while sends hold slots.

The bound follows the tier (`tiers.concurrency_for`), and the tier can change
mid-campaign: a rise lets waiting sends start at once, a fall lets the sends in
flight finish (none is cancelled) and admits no new one until fewer than the new
bound are in flight.

Waiters queue by priority lane (`lanes.TurnQueue`): a freed slot goes to a waiting
transactional send first, bulk keeping its minimum share of the slots.
"""

from __future__ import annotations

import asyncio

from consumer.dispatch.lanes import BULK, Lane, TurnQueue


class Slots:
    def __init__(self, size: int, bulk_min_share: float = 0.05) -> None:
        self.size = size
        self.held = 0
        self._waiters: TurnQueue[asyncio.Future[None]] = TurnQueue(bulk_min_share)

    async def acquire(self, lane: Lane = BULK) -> None:
        while self.held >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.push(lane, waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._waiters.remove(waiter)
                self._wake()  # a wake-up it consumed goes to the next waiter
                raise
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        self._wake()

    def resize(self, size: int) -> None:
        self.size = size
        self._wake()

    def _wake(self) -> None:
        free = self.size - self.held
        while free > 0 and self._waiters:
            waiter = self._waiters.pop()
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
                free -= 1
