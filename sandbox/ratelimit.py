"""Per-organisation token buckets for the `write` and `read` classes.

Contract (kirim-api.md, "Rate limits"): capacity = the plan's per-minute limit,
full at start, continuous refill of limit/60 tokens per second. A request takes
one token or gets 429. Header values:

- `X-RateLimit-Limit`: the per-minute capacity;
- `X-RateLimit-Remaining`: whole tokens left after this request;
- `X-RateLimit-Reset`: Unix seconds (rounded up) when the bucket is full again;
- `Retry-After` (429 only): whole seconds (rounded up, at least 1) until one
  token is back.

Pure: time is a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: int | None


class TokenBucket:
    """`capacity` tokens, refilled at `rate` tokens per second; starts full."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self._tokens = float(capacity)
        self._updated = now

    @classmethod
    def per_minute(cls, limit: int, now: float) -> TokenBucket:
        """The API's buckets: `limit` per minute, refilled continuously."""
        return cls(float(limit), limit / 60.0, now)

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def resize(self, capacity: float, rate: float, now: float) -> None:
        """Change the plan; tokens already earned are kept up to the new capacity."""
        self._refill(now)
        self.capacity = capacity
        self.rate = rate
        self._tokens = min(self._tokens, capacity)

    def take(self, now: float) -> RateDecision:
        self._refill(now)
        # The epsilon absorbs float error in the refill (0.1 s * 10/s must be a token).
        if self._tokens >= 1.0 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1.0)
            return self._decision(now, allowed=True)
        return self._decision(now, allowed=False)

    def peek(self, now: float) -> RateDecision:
        self._refill(now)
        return self._decision(now, allowed=True)

    def _decision(self, now: float, *, allowed: bool) -> RateDecision:
        tokens = self._tokens
        reset_at = math.ceil(now + (self.capacity - tokens) / self.rate)
        retry_after = None if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))
        return RateDecision(allowed, int(self.capacity), int(tokens + 1e-9), reset_at, retry_after)
