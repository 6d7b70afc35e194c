"""When to restart a part that failed unexpectedly (pure: time is a parameter).

A sender worker or a dispatcher loop that raises something nobody expected is
restarted on its own, after a backoff that doubles with each consecutive failure
and resets once the part has run for a while without failing; the other senders
and intake never stop for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_seconds: float = 1.0
    max_seconds: float = 60.0
    # A part that ran this long before failing starts its backoff over.
    healthy_after_seconds: float = 60.0


@dataclass(slots=True)
class RestartBackoff:
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    # key -> (consecutive failures, not before)
    _state: dict[str, tuple[int, float]] = field(default_factory=dict)

    def failed(self, key: str, started_at: float, now: float) -> float:
        """Record a failure of a part started at `started_at`; returns the delay."""
        failures, _ = self._state.get(key, (0, 0.0))
        if now - started_at >= self.policy.healthy_after_seconds:
            failures = 0
        delay = min(self.policy.max_seconds, self.policy.first_seconds * 2.0**failures)
        self._state[key] = (failures + 1, now + delay)
        return delay

    def ready(self, key: str, now: float) -> bool:
        _, not_before = self._state.get(key, (0, 0.0))
        return now >= not_before

    def failures(self, key: str) -> int:
        return self._state.get(key, (0, 0.0))[0]
