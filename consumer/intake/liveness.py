"""Is intake alive and moving? Lag, last progress, last fetch, and what /healthz says.

Two failure shapes, both measured against `stall_seconds`:

- no progress: events wait (lag > 0) but none was handled for that long: a
  dependency is down or a worker is stuck. /healthz fails (`intake_progress`).
- no fetching: events wait *on the broker* (not yet fetched, partitions not paused
  by backpressure) but nothing was fetched for that long: the consumer has gone
  quiet, as in aiokafka issue 1037. /healthz fails (`intake_fetch`) and, with
  `stall_exit`, `observe` raises `ConsumerStalled` so the process restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from consumer.intake import metrics
from consumer.intake.errors import ConsumerStalled
from runtime.observe import HealthCheck


class Liveness:
    def __init__(self, *, stall_seconds: float, stall_exit: bool, clock: Callable[[], float]):
        self._stall_seconds = stall_seconds
        self._stall_exit = stall_exit
        self._clock = clock
        # Unhandled events on our partitions (to fetch + buffered + running), and the
        # part not fetched yet: only that part can reveal a consumer that went quiet.
        self.lag = 0
        self.fetchable = 0
        self.busy = False
        now = clock()
        self._last_progress = now
        self._last_fetch = now
        metrics.PROGRESS_AGE.set_function(lambda: self._clock() - self._last_progress)

    def measured(self, *, fetchable: int, lag: int) -> None:
        self.fetchable, self.lag = fetchable, lag
        metrics.LAG.set(lag)

    def fetched(self) -> None:
        self._last_fetch = self._clock()

    def progressed(self) -> None:
        self._last_progress = self._clock()

    def observe(self, *, has_work: bool, paused: bool) -> None:
        """Called every poll turn; raises `ConsumerStalled` (see the module docstring)."""
        now = self._clock()
        if self.fetchable == 0 or paused:
            # Nothing to fetch, or not fetching on purpose: not a stall.
            self._last_fetch = now
        self.busy = has_work or self.lag > 0
        if not self.busy:
            self._last_progress = now
        quiet = now - self._last_fetch
        if self._stall_exit and quiet > self._stall_seconds:
            raise ConsumerStalled(
                f"{self.fetchable} events to fetch and nothing fetched for {quiet:.0f}s"
            )

    def _progress_check(self) -> tuple[bool, str]:
        age = self._clock() - self._last_progress
        if self.busy and age > self._stall_seconds:
            return False, f"no event handled for {age:.0f}s with lag {self.lag}"
        return True, f"lag {self.lag}, last progress {age:.0f}s ago"

    def _fetch_check(self) -> tuple[bool, str]:
        age = self._clock() - self._last_fetch
        if age > self._stall_seconds:
            return False, f"nothing fetched for {age:.0f}s with {self.fetchable} to fetch"
        return True, f"{self.fetchable} to fetch"

    def health_checks(self) -> Mapping[str, HealthCheck]:
        return {"intake_progress": self._progress_check, "intake_fetch": self._fetch_check}
