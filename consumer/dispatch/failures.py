"""The reconciler's backlog of late failures: pure decisions about each entry.

The projector appends every message reported failed to `status_failures`; the
reconciler reads it from a cursor, together with the entries of `failure_waits`
that have come due (`consumer.dispatch.store.FailureBacklog`). Each entry is acted
on (its ledger row is still queued: the policy decides), finished, or kept waiting
with a time to look again; the cursor then moves past every entry it read. So a
pass costs the failures that are new or due, never the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consumer.dispatch.store import BacklogEntry

# Looking again for a message id the ledger does not hold backs off to this.
UNKNOWN_MAX_DELAY_SECONDS = 300.0
# Beyond the idempotency key window: clock skew between the API's event times and ours.
UNKNOWN_SLACK_SECONDS = 3600.0


class Fate(Enum):
    ACT = "act"  # the ledger holds the message, queued and unchecked: the policy decides
    DONE = "done"  # delivered or read since, or the ledger has moved on: nothing to do
    UNKNOWN = "unknown"  # no ledger row holds the message id yet: look again later


def unknown_horizon(idempotency_ttl_seconds: float) -> float:
    """How long after its failure was recorded a message id may still reach the ledger.

    A send's result is recorded at once, or by a same-key repeat, which happens within
    the key window of the moment the send became uncertain (consumer.dispatch.outcome),
    and that moment precedes the failure. A later adoption (an in-doubt send settled
    past its key) puts the failure back itself (`watch_failures_of`).
    """
    return idempotency_ttl_seconds + UNKNOWN_SLACK_SECONDS


def fate(entry: BacklogEntry, now: float, horizon_seconds: float) -> Fate:
    if not entry.failed:
        return Fate.DONE
    if entry.failure is not None:
        return Fate.ACT
    if entry.held or now - entry.recorded_at >= horizon_seconds:
        return Fate.DONE
    return Fate.UNKNOWN


def unknown_check_at(recorded_at: float, now: float, interval_seconds: float) -> float:
    """Next look for a message id the ledger lacks: after half the entry's age, at least
    the reconcile interval and at most five minutes (a result recorded a moment after
    the failure is seen on the next pass; a long wait costs a look every few minutes)."""
    delay = max(interval_seconds, (now - recorded_at) / 2)
    return now + min(UNKNOWN_MAX_DELAY_SECONDS, delay)


def waiting_check_at(
    failed_at: float | None, now: float, grace_seconds: float, interval_seconds: float
) -> float:
    """Next look at a failure the recheck left waiting: when its grace period ends, or
    (the API's status not final, or the API unreachable) on the next pass."""
    if failed_at is not None and now - failed_at < grace_seconds:
        return failed_at + grace_seconds
    return now + interval_seconds


def look_again_at(
    entry: BacklogEntry,
    fated: Fate,
    *,
    recheck_waits: bool,
    now: float,
    grace_seconds: float,
    interval_seconds: float,
) -> float | None:
    """When to look at an entry again after a pass; None: it is finished. `recheck_waits`:
    the entry was acted on and its recheck said not yet (grace period, API not final)."""
    if fated is Fate.UNKNOWN:
        return unknown_check_at(entry.recorded_at, now, interval_seconds)
    if fated is Fate.ACT and recheck_waits and entry.failure is not None:
        return waiting_check_at(entry.failure.failed_at, now, grace_seconds, interval_seconds)
    return None


def cursor_after(cursor: int, entries: Iterable[BacklogEntry]) -> int:
    """The cursor past every fresh entry read (a due wait may lie beyond the fresh batch:
    it does not move the cursor, so nothing between is skipped)."""
    return max([cursor, *(entry.seq for entry in entries if entry.fresh)])
