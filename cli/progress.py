"""Progress of a campaign over time: completion, rates and ETA (pure).

`done` counts recipients in a final status (delivered, read, failed, skipped;
`sent` is not final: a delivery or failure report is still expected).

The ETA is the larger of two estimates: `in progress / completion rate` (how
fast recipients reached a final status over the last `window` seconds) and
`pending / drain rate` (how fast the dispatcher takes recipients out of
`pending`: the sending pace, which the tier quota and the rate limit set). The
drain rate is the slower of the window's and the last refresh's: a send starts
with a burst (the API's token bucket is full) and then settles at the refill
rate, which the window alone would hide for a minute. The completion rate alone
is misleading right after a burst of read receipts; the drain rate alone
ignores messages still waiting for their webhooks. With pending recipients that
do not drain (deferred to the next quota window, a paused campaign) or no
completions in the window, the ETA is unknown.

Recipients waiting out their quiet hours (pending, reason `quiet_hours`) do not
drain either, but the ledger says when each may go (`quiet`: seconds until it
opens, and how many). Then the pending part of the ETA sends the other pending
recipients first, at the drain rate, and each quiet group from when it opens (or
from when the ones before it are done, if later), at the drain rate, or, while
nothing drains (everyone left is asleep), the last drain rate seen; unknown
when none was. It assumes a group opened is sent before its next night.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

DEFAULT_RATE_WINDOW_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    recipients: int
    in_progress: int
    chunks_received: int
    chunk_count: int
    terminal: bool
    pending: int = 0

    @property
    def done(self) -> int:
        return self.recipients - self.in_progress

    @property
    def fraction(self) -> float:
        return self.done / self.recipients if self.recipients else 0.0

    @property
    def finished(self) -> bool:
        """Terminal in the view and every chunk received (more recipients may still come)."""
        return self.terminal and self.chunks_received >= self.chunk_count


@dataclass(slots=True)
class RateTracker:
    """Samples of (time, done, pending) within a sliding window."""

    window: float = DEFAULT_RATE_WINDOW_SECONDS
    samples: deque[tuple[float, int, int]] = field(default_factory=deque)
    # The last positive drain rate: the pace to expect once quiet hours end.
    last_drain: float = 0.0

    def add(self, at: float, done: int, pending: int = 0) -> None:
        self.samples.append((at, done, pending))
        while len(self.samples) > 2 and at - self.samples[0][0] > self.window:
            self.samples.popleft()
        rates = self.rates()
        if rates is not None and rates[1] > 0:
            self.last_drain = rates[1]

    def rates(self) -> tuple[float, float] | None:
        """(completions, pending drained) per second; None without two samples (see module)."""
        if len(self.samples) < 2:
            return None
        (t0, done0, pending0), (t1, done1, pending1) = self.samples[0], self.samples[-1]
        t_prev, _, pending_prev = self.samples[-2]
        if t1 <= t0 or t1 <= t_prev:
            return None
        completing = (done1 - done0) / (t1 - t0)
        draining = min((pending0 - pending1) / (t1 - t0), (pending_prev - pending1) / (t1 - t_prev))
        return completing, draining

    def eta(
        self, in_progress: int, pending: int = 0, quiet: Sequence[tuple[float, int]] = ()
    ) -> float | None:
        """Seconds until the `in_progress` recipients (`pending` of them unsent, `quiet`
        of those waiting out their quiet hours) finish."""
        if in_progress <= 0:
            return 0.0
        rates = self.rates()
        if rates is None:
            return None
        completing, draining = rates
        if quiet:
            return self._eta_with_quiet(in_progress, pending, quiet, completing, draining)
        if completing <= 0 or (pending > 0 and draining <= 0):
            return None
        estimate = in_progress / completing
        return max(estimate, pending / draining) if pending > 0 else estimate

    def _eta_with_quiet(
        self,
        in_progress: int,
        pending: int,
        quiet: Sequence[tuple[float, int]],
        completing: float,
        draining: float,
    ) -> float | None:
        asleep = sum(count for _, count in quiet)
        awake = max(pending - asleep, 0)
        if awake > 0 and draining <= 0:
            return None  # held by something else: the quota window, a pause
        pace = draining if draining > 0 else self.last_drain
        if pace <= 0:
            return None
        finish = awake / pace
        for opens_in, count in sorted(quiet):
            finish = max(finish, opens_in) + count / pace
        others = in_progress - pending  # sent, waiting for their reports
        if others > 0:
            if completing <= 0:
                return None
            finish = max(finish, (in_progress - asleep) / completing)
        return finish
