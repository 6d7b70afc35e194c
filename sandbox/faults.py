"""Fault injection decisions for one request, from the `faults` config.

Each trigger fires for the next `next` requests in scope (a countdown kept in
`FaultCounters`), then with its `probability`. Per request, in this order:

- a server error fires: answer 5xx at once; nothing is processed or stored;
- a dropped connection fires and `after_processing` is false: close the
  connection without an answer; nothing is processed;
- otherwise wait `latency` (before processing, so the idempotency key is in
  progress meanwhile), process, then wait `late` seconds more if a late answer
  fires (the answer is stored first, so a retry replays it), and drop instead
  of answering if a dropped connection fires with `after_processing`;
- an anomaly (sends only, drawn last so that enabling it leaves the other
  faults' draws as they were) names the kind of odd answer: `unknown_code` is
  answered instead of processing, the others alter an accepted send's answer.

Pure apart from the random draws, which come from the passed, seeded `rng`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from sandbox.config import AnomalyKind, Faults, Latency, Trigger


@dataclass(frozen=True, slots=True)
class FaultCounters:
    server_errors: int = 0
    late_answers: int = 0
    dropped_connections: int = 0
    anomalies: int = 0


@dataclass(frozen=True, slots=True)
class FaultPlan:
    server_error: tuple[int, str] | None = None
    drop_before: bool = False
    latency: float = 0.0
    late: float = 0.0
    drop_after: bool = False
    anomaly: AnomalyKind | None = None

    @property
    def quiet(self) -> bool:
        return self == _QUIET


_QUIET = FaultPlan()


def _fires(trigger: Trigger, left: int, rng: random.Random) -> tuple[bool, int]:
    if left > 0:
        return True, left - 1
    return trigger.probability > 0.0 and rng.random() < trigger.probability, left


def sample_latency(latency: Latency, rng: random.Random) -> float:
    """Seconds: fixed part plus uniform(0, jitter) or exponential(mean jitter)."""
    seconds = latency.fixed_ms / 1000.0
    if latency.jitter_ms > 0.0:
        if latency.jitter == "uniform":
            seconds += rng.uniform(0.0, latency.jitter_ms) / 1000.0
        elif latency.jitter == "exponential":
            seconds += rng.expovariate(1000.0 / latency.jitter_ms)
    return seconds


def plan_faults(
    faults: Faults, counters: FaultCounters, rng: random.Random, *, send: bool = True
) -> tuple[FaultPlan, FaultCounters]:
    error, left = _fires(faults.server_errors, counters.server_errors, rng)
    counters = replace(counters, server_errors=left)
    if error:
        plan = FaultPlan(server_error=(faults.server_errors.status, faults.server_errors.code))
        return plan, counters
    drop, left = _fires(faults.dropped_connections, counters.dropped_connections, rng)
    counters = replace(counters, dropped_connections=left)
    if drop and not faults.dropped_connections.after_processing:
        return FaultPlan(drop_before=True), counters
    late, left = _fires(faults.late_answers, counters.late_answers, rng)
    counters = replace(counters, late_answers=left)
    latency = sample_latency(faults.latency, rng)
    anomaly: AnomalyKind | None = None
    if send:
        odd, left = _fires(faults.anomalies, counters.anomalies, rng)
        counters = replace(counters, anomalies=left)
        if odd:
            anomaly = rng.choice(faults.anomalies.kinds)
    plan = FaultPlan(
        latency=latency,
        late=faults.late_answers.delay_seconds if late else 0.0,
        drop_after=drop,
        anomaly=anomaly,
    )
    return plan, counters
