"""Pace sends to the organisation's write budget, mirroring the API's token bucket.

The API refills `limit / 60` tokens a second up to `limit` and reports what is left
in `X-RateLimit-Remaining`. The pacer keeps its own bucket at the same rate and
re-syncs it from every answer (the server is authoritative: other instances spend
the same budget), discounting every other request still in flight: the server may
not have counted them yet, whichever was sent first (answers come back out of
order). That errs low, never high, and each answer re-estimates from scratch. A 429
holds every send until `Retry-After` has passed. Time is always a parameter.

Sends take the write tokens through `gate.PacerGate`, which reserves only once
`ready_in` says a token is there and decides by priority lane who gets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RatePacer:
    limit_per_minute: float
    tokens: float = 1.0
    updated_at: float = 0.0
    hold_until: float = 0.0
    _issued: int = 0
    _in_flight: set[int] = field(default_factory=set)
    _synced_seq: int = -1

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
        self._in_flight.add(seq)
        return seq, wait

    def ready_in(self, now: float) -> float:
        """Seconds until `reserve` would not have to wait (0: a token is there now)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        wait = missing / self.rate if missing > 0 and self.rate > 0 else 0.0
        return max(wait, self.hold_until - now, 0.0)

    def release(self, seq: int) -> None:
        """The request with `seq` was never sent: give its token back."""
        if seq in self._in_flight:
            self._in_flight.discard(seq)
            self.tokens += 1.0

    def observe(self, seq: int, now: float, limit: float | None, remaining: float | None) -> None:
        """An answer to request `seq` arrived with the server's rate-limit headers."""
        self._in_flight.discard(seq)
        if limit is not None and limit > 0:
            self.limit_per_minute = limit
        if remaining is None or seq <= self._synced_seq:
            return
        self._refill(now)
        self.tokens = remaining - len(self._in_flight)
        self._synced_seq = seq

    def throttle(self, seq: int, now: float, retry_after: float) -> None:
        """A 429: the bucket is empty now; nothing goes out before `retry_after` passes."""
        self._in_flight.discard(seq)
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.hold_until = max(self.hold_until, now + retry_after)
        self._synced_seq = max(self._synced_seq, seq)

    def forget(self, seq: int) -> None:
        """An answer without rate-limit headers (a 5xx or a transport error)."""
        self._in_flight.discard(seq)
