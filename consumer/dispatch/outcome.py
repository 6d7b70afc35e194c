"""Turn a classified answer into the ledger row's new state (pure)."""

from __future__ import annotations

from dataclasses import replace

from consumer.dispatch.policy import Accepted, Decision, Defer, GiveUp, Retry, Stop
from consumer.dispatch.store import DueRow, RowResult


def row_result(
    row: DueRow, decision: Decision, now: float, claimed_at: float, error_message: str | None
) -> RowResult:
    """The ledger update for one send. `claimed_at` starts an uncertainty if this send
    may have landed; a definite answer leaves the earlier uncertainty as it was."""
    base = RowResult(
        campaign_id=row.campaign_id, phone=row.phone, status="pending", attempted_at=now
    )
    match decision:
        case Accepted(message_id=message_id):
            return replace(base, status="queued", message_id=message_id)
        case Retry(after=after, code=code, uncertain=uncertain):
            since = (row.uncertain_since or claimed_at) if uncertain else row.uncertain_since
            return replace(
                base,
                status="pending",
                reason="retry_backoff",
                next_attempt_at=now + after,
                error_code=code,
                error_message=error_message,
                uncertain_since=since,
            )
        case Defer(after=after, code=code):
            return replace(
                base,
                status="pending",
                reason="deferred_quota",
                next_attempt_at=now + after,
                error_code=code,
                uncertain_since=row.uncertain_since,
            )
        case GiveUp(code=code):
            return replace(base, status="failed", error_code=code, error_message=error_message)
        case Stop(code=code):
            # Not the recipient's fault: it waits, uncounted, for the stop to be lifted.
            return replace(
                base,
                attempted=0,
                attempted_at=None,
                error_code=code,
                error_message=error_message,
                uncertain_since=row.uncertain_since,
            )
    raise AssertionError(f"unhandled decision {decision!r}")
