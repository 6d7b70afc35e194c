"""Turn a classified answer into the ledger row's new state (pure)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from consumer.dispatch.policy import API_ANOMALY, Accepted, Decision, Defer, GiveUp, Retry, Stop
from consumer.dispatch.settle import settle_before
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
        case Retry(after=after, code=code, uncertain=uncertain, rate_limited=rate_limited):
            since = (row.uncertain_since or claimed_at) if uncertain else row.uncertain_since
            return replace(
                base,
                attempted=0 if rate_limited else 1,
                status="pending",
                reason="retry_backoff",
                next_attempt_at=now + after,
                error_code=code,
                error_message=error_message,
                uncertain_since=since,
            )
        case Defer(after=after, code=code):
            # A full tier window says nothing about the recipient: uncounted, like a 429.
            return replace(
                base,
                attempted=0,
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


def within_key_window(result: RowResult, ttl_seconds: float) -> RowResult:
    """A send that may have landed is repeated while the API still replays its key: a
    long backoff or deferral is cut short at nine tenths of the key's lifetime."""
    latest = settle_before(result.uncertain_since, ttl_seconds, ttl_seconds / 10)
    if latest is None or result.next_attempt_at is None or result.next_attempt_at <= latest:
        return result
    return replace(result, next_attempt_at=max(latest, result.attempted_at or latest))


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


@dataclass(frozen=True, slots=True)
class IdConflict:
    """A result whose message id another recipient (`holder`) already holds."""

    original: RowResult
    failed: RowResult
    message_id: str
    holder: tuple[uuid.UUID, str]

    def newcomer_is_rightful(self, api_recipient: str | None) -> bool:
        """Whether the API, asked whose message it is, names the newcomer's phone."""
        return api_recipient is not None and api_recipient == self.original.phone != self.holder[1]


def without_duplicate_ids(
    results: Sequence[RowResult], holders: Mapping[str, tuple[uuid.UUID, str]]
) -> tuple[list[RowResult], list[IdConflict]]:
    """(results to write, the conflicts). A message id the API already gave another
    recipient (in the ledger, `holders`, or earlier in this batch) cannot be this
    recipient's too: the first stays, the later one fails as an anomaly (it was
    accepted, so it is not sent again), and the caller may ask the API which of the
    two the message is really to (`IdConflict.newcomer_is_rightful`)."""
    seen = dict(holders)
    kept: list[RowResult] = []
    conflicts: list[IdConflict] = []
    for result in results:
        owner = seen.get(result.message_id) if result.message_id else None
        if result.message_id and owner is not None and owner != (result.campaign_id, result.phone):
            bad = anomalous(
                result,
                DUPLICATE_ID,
                f"the API answered {result.message_id}, already recorded for another "
                f"recipient (campaign {owner[0]})",
            )
            conflicts.append(IdConflict(result, bad, result.message_id, owner))
            kept.append(bad)
            continue
        if result.message_id:
            seen[result.message_id] = (result.campaign_id, result.phone)
        kept.append(result)
    return kept, conflicts
