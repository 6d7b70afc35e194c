"""Pace sends to the organisation's write budget, mirroring the API's token bucket.

The API refills `limit / 60` tokens a second up to `limit` and reports what is left
in `X-RateLimit-Remaining`. The pacer keeps its own bucket at the same rate and
re-syncs it from every answer (the server is authoritative: other instances spend
the same budget). Requests reach the server and answers come back in any order, so
an answer's `remaining` may predate any request not answered before this one was
sent: the re-sync discounts every other request still in flight and every one
answered since this one was sent (the server may have counted it after this one).
That errs low, never high (a property test plays every order against the sandbox's
bucket), and each answer re-estimates from scratch; the one request it cannot see is
one given up on (a timeout) that reaches the server later. A 429 holds every send
until `Retry-After` has passed. Time is always a parameter.

An estimate no answer has confirmed for `probe_after` seconds (at start, after an idle
spell) may be far off: others spent the budget meanwhile, and the refill credited while
idle is a guess. One request then goes first as a probe and the rest wait for its
answer (or `probe_after`, should it never come), so a burst after idling is sized by
the server's count, not by the guess.

Sends take the write tokens through `gate.PacerGate`, which reserves only once
`ready_in` says a token is there and decides by priority lane who gets it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class RatePacer:
    limit_per_minute: float
    tokens: float = 1.0
    updated_at: float = 0.0
    hold_until: float = 0.0
    _issued: int = 0
    # Each request on its way -> how many answers had come back when it was sent.
    _in_flight: dict[int, int] = field(default_factory=dict)
    _answers: int = 0
    _synced_seq: int = -1
    probe_after: float | None = None
    _answered_at: float = -math.inf
    _probe: int | None = None
    _probe_sent_at: float = 0.0

    @property
    def rate(self) -> float:
        return self.limit_per_minute / 60.0

    def _refill(self, now: float) -> None:
        if now > self.updated_at:
            self.tokens = min(
                self.limit_per_minute, self.tokens + (now - self.updated_at) * self.rate
            )
            self.updated_at = now

    def reserve(self, now: float) -> tuple[int, float]:
        """Take a token: returns (sequence number, seconds to wait before sending).

        Tokens may go negative: the wait is then how long the refill takes to cover
        the debt, so concurrent callers queue in order instead of bursting.
        """
        self._refill(now)
        self.tokens -= 1.0
        wait = max(0.0, -self.tokens / self.rate) if self.rate > 0 else 0.0
        wait = max(wait, self.hold_until - now)
        seq = self._issued
        self._issued += 1
        if self._stale(now) and self._probe_wait(now) <= 0.0:
            self._probe, self._probe_sent_at = seq, now
        self._in_flight[seq] = self._answers
        return seq, wait

    def ready_in(self, now: float) -> float:
        """Seconds until `reserve` would not have to wait (0: a token is there now)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        wait = missing / self.rate if missing > 0 and self.rate > 0 else 0.0
        return max(wait, self.hold_until - now, self._probe_wait(now), 0.0)

    def _stale(self, now: float) -> bool:
        return self.probe_after is not None and now - self._answered_at > self.probe_after

    def _probe_wait(self, now: float) -> float:
        """Seconds the probe out on a stale estimate still has before another may go."""
        if self.probe_after is None or not self._stale(now):
            return 0.0
        if self._probe is None or self._probe not in self._in_flight:
            return 0.0
        return max(0.0, self._probe_sent_at + self.probe_after - now)

    def release(self, seq: int) -> None:
        """The request with `seq` was never sent: give its token back."""
        if self._in_flight.pop(seq, None) is not None:
            self.tokens += 1.0

    def observe(self, seq: int, now: float, limit: float | None, remaining: float | None) -> None:
        """An answer to request `seq` arrived with the server's rate-limit headers."""
        answers_when_sent = self._answered(seq, now)
        if limit is not None and limit > 0:
            self.limit_per_minute = limit
        if remaining is None or answers_when_sent is None or seq <= self._synced_seq:
            return
        self._refill(now)
        answered_since = self._answers - 1 - answers_when_sent
        self.tokens = remaining - len(self._in_flight) - answered_since
        self._synced_seq = seq

    def _answered(self, seq: int, now: float) -> int | None:
        """Count the answer to `seq`; how many had come back when it was sent (None:
        not on its way, e.g. given back already)."""
        self._answers += 1
        self._answered_at = max(self._answered_at, now)
        return self._in_flight.pop(seq, None)

    def throttle(self, seq: int, now: float, retry_after: float) -> None:
        """A 429: the bucket is empty now; nothing goes out before `retry_after` passes."""
        self._answered(seq, now)
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.hold_until = max(self.hold_until, now + retry_after)
        self._synced_seq = max(self._synced_seq, seq)

    def forget(self, seq: int) -> None:
        """An answer without rate-limit headers (a 5xx or a transport error)."""
        self._answers += 1
        self._in_flight.pop(seq, None)
