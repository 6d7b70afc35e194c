"""Webhook delivery policy: which statuses go out when, and what an answer means.

- `plan_statuses`: from a message timeline to (status, due) deliveries, with
  the configured perturbations: `delivered` skipped (only when a `read`
  follows, which implies it), an earlier status held back by
  `reorder_delay_seconds` so a later one overtakes it, and duplicates (the same
  event delivered again, `duplicate_gap` sandbox seconds later).
- `classify`: 2xx done; 408, 429, 3xx, 5xx and no answer (network error,
  timeout) retried; any other status final.
- `retry_delay`: the sandbox seconds to wait before the next attempt, or None
  when the schedule is exhausted; each step gets +-`jitter` (20%).

Pure apart from the random draws, which come from the passed, seeded `rng`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, NamedTuple

from sandbox.config import Webhooks

Verdict = Literal["done", "retry", "final"]
DUPLICATE_GAP = 1.0


class PlannedStatus(NamedTuple):
    status: str
    due: float
    duplicate: bool = False
    reordered: bool = False


def plan_statuses(
    steps: Sequence[tuple[str, float]], options: Webhooks, time_scale: float, rng: random.Random
) -> list[PlannedStatus]:
    """Deliveries for a timeline's statuses; a skipped `delivered` is simply absent."""
    statuses = [status for status, _ in steps]
    planned: list[PlannedStatus] = []
    for index, (status, at) in enumerate(steps):
        skip = options.skip_delivered_probability
        if status == "delivered" and "read" in statuses and skip > 0.0 and rng.random() < skip:
            continue
        reorder = options.reorder_probability
        is_last = index == len(steps) - 1
        reordered = not is_last and reorder > 0.0 and rng.random() < reorder
        due = at + (options.reorder_delay_seconds / time_scale if reordered else 0.0)
        planned.append(PlannedStatus(status, due, reordered=reordered))
        if options.duplicate_probability > 0.0 and rng.random() < options.duplicate_probability:
            planned.append(PlannedStatus(status, due + DUPLICATE_GAP / time_scale, duplicate=True))
    return planned


def classify(status_code: int | None) -> Verdict:
    if status_code is None:
        return "retry"
    if 200 <= status_code < 300:
        return "done"
    if status_code in (408, 429) or 300 <= status_code < 400 or status_code >= 500:
        return "retry"
    return "final"


def retry_delay(
    schedule: Sequence[float], attempts_made: int, jitter: float, rng: random.Random
) -> float | None:
    """Sandbox seconds before attempt `attempts_made + 1`, None past the schedule."""
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    if jitter > 0.0 and base > 0.0:
        return base * rng.uniform(1.0 - jitter, 1.0 + jitter)
    return base
