"""A message's lifecycle as a timeline of (status, wall-clock time), and its status at t.

Statuses follow `pending -> sent -> delivered -> read` (stopping at the plan's
last status) or `pending -> failed`, then `delivered` too when the plan says a
failed message was delivered anyway (`redelivery_delay` after the failure).
`Delays` are sandbox seconds, each counted from the previous status (`failed`
from the accept); the wall clock runs them `time_scale` times faster. The
status at any time is a pure function of the timeline, so nothing has to tick
for `GET` to be right.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.config import Delays
from sandbox.outcome import Plan

_PATH = ("sent", "delivered", "read")


@dataclass(frozen=True, slots=True)
class Timeline:
    accepted_at: float
    steps: tuple[tuple[str, float], ...]


def build_timeline(
    plan: Plan,
    accepted_at: float,
    delays: Delays,
    time_scale: float,
    *,
    redelivery_delay: float = 0.0,
) -> Timeline:
    if plan.reached == "failed":
        failed_at = accepted_at + delays.failed / time_scale
        if plan.delivered_after_failed:
            delivered_at = failed_at + redelivery_delay / time_scale
            return Timeline(accepted_at, (("failed", failed_at), ("delivered", delivered_at)))
        return Timeline(accepted_at, (("failed", failed_at),))
    steps: list[tuple[str, float]] = []
    at = accepted_at
    for status in _PATH:
        at += getattr(delays, status) / time_scale
        steps.append((status, at))
        if status == plan.reached:
            break
    return Timeline(accepted_at, tuple(steps))


def status_at(timeline: Timeline, now: float) -> tuple[str, float]:
    """The status at `now` and since when it holds."""
    status, since = "pending", timeline.accepted_at
    for step, at in timeline.steps:
        if at > now:
            break
        status, since = step, at
    return status, since
