"""The in-flight bound of one sender, resizable while sends hold slots.

The bound follows the tier (`tiers.concurrency_for`), and the tier can change
mid-campaign: a rise lets waiting sends start at once, a fall lets the sends in
flight finish (none is cancelled) and admits no new one until fewer than the new
bound are in flight.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.held >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
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
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
