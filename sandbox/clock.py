"""Time as a value the shells pass into the pure core.

`now()` is Unix seconds on the wall clock: rate limits, quota windows,
idempotency TTLs and webhook timestamps are real time (the service and the
bridge share them). Only the message lifecycle and the webhook retry schedule
run `time_scale` times faster: their delays are divided by it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
