"""A min-heap of items by due time; the webhook scheduler's timer.

Pure: `pop_due(now)` hands back what is due, `next_due()` says when to look
again. Ties keep insertion order.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class DueQueue(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), item))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int = 1024) -> list[T]:
        """Items due at or before `now`, earliest first, at most `limit` per call."""
        due: list[T] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(due) < limit:
            due.append(heapq.heappop(heap)[2])
        return due

    def clear(self) -> None:
        self._heap.clear()
