"""Turn a classified answer into the ledger row's new state (pure)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

from consumer.dispatch.policy import API_ANOMALY, Accepted, Decision, Defer, GiveUp, Retry, Stop
from consumer.dispatch.store import DueRow, RowResult
from consumer.kirim.answers import printable

DUPLICATE_ID = "duplicate_message_id"
LEDGER_REFUSED = "ledger_refused"


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


def anomalous(result: RowResult, kind: str, detail: str) -> RowResult:
    """`result` turned into a failure of its recipient alone, with the anomaly named."""
    return replace(
        result,
        status="failed",
        reason=None,
        message_id=None,
        next_attempt_at=None,
        error_code=API_ANOMALY,
        error_message=printable(f"{kind}: {detail}"),
    )


def without_duplicate_ids(
    results: Sequence[RowResult], holders: Mapping[str, tuple[uuid.UUID, str]]
) -> tuple[list[RowResult], list[RowResult]]:
    """(results to write, the ones rewritten). A message id the API already gave another
    recipient (in the ledger, `holders`, or earlier in this batch) cannot be that
    recipient's too: which of the two is right is unknowable, so the first stays and
    the later one fails as an anomaly. It was accepted, so it is not sent again."""
    seen = dict(holders)
    kept: list[RowResult] = []
    rewritten: list[RowResult] = []
    for result in results:
        owner = seen.get(result.message_id) if result.message_id else None
        if owner is not None and owner != (result.campaign_id, result.phone):
            bad = anomalous(
                result,
                DUPLICATE_ID,
                f"the API answered {result.message_id}, already recorded for another "
                f"recipient (campaign {owner[0]})",
            )
            rewritten.append(bad)
            kept.append(bad)
            continue
        if result.message_id:
            seen[result.message_id] = (result.campaign_id, result.phone)
        kept.append(result)
    return kept, rewritten
