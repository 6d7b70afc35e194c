"""A campaign's figures from one pass over its recipients: pure, no I/O.

`campaign_tally` (console/sql/queries.sql) groups the campaign's rows of
`campaign_recipient_status` by (status, reason, error_code); everything the campaign
page shows is a sum over those groups, so one query serves the progress bar, the
pending reasons, the failures by code and the terminal flag alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cli.failures import Kind, failure_kind

STATUSES: Final = ("pending", "queued", "sent", "delivered", "read", "failed", "skipped")
IN_PROGRESS: Final = frozenset({"pending", "queued", "sent"})
UNKNOWN_CODE: Final = "unknown_error"
# What each failure kind means for an operator (docs/console.md).
KIND_ACTION: Final[dict[Kind, str]] = {
    "retryable": "retry",
    "permanent": "permanent",
    "unknown": "stop: may have been sent",
}


@dataclass(frozen=True, slots=True)
class Group:
    status: str
    reason: str | None
    error_code: str | None
    count: int
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FailureBucket:
    code: str
    count: int

    @property
    def kind(self) -> Kind:
        return failure_kind(self.code)

    @property
    def action(self) -> str:
        return KIND_ACTION[self.kind]


@dataclass(frozen=True, slots=True)
class Tally:
    counts: dict[str, int] = field(default_factory=dict)
    # (status, reason) -> count, for pending and skipped rows that have a reason.
    reasons: dict[tuple[str, str], int] = field(default_factory=dict)
    failures: tuple[FailureBucket, ...] = ()
    updated_at: datetime | None = None

    @classmethod
    def of(cls, groups: Iterable[Group]) -> Tally:
        counts = dict.fromkeys(STATUSES, 0)
        reasons: dict[tuple[str, str], int] = {}
        failures: dict[str, int] = {}
        latest: datetime | None = None
        for g in groups:
            counts[g.status] = counts.get(g.status, 0) + g.count
            if g.reason is not None and g.status in ("pending", "skipped"):
                key = (g.status, g.reason)
                reasons[key] = reasons.get(key, 0) + g.count
            if g.status == "failed":
                code = g.error_code or UNKNOWN_CODE
                failures[code] = failures.get(code, 0) + g.count
            if g.updated_at is not None and (latest is None or g.updated_at > latest):
                latest = g.updated_at
        buckets = sorted(failures.items(), key=lambda item: (-item[1], item[0]))
        return cls(
            counts=counts,
            # By name among equals too: the query's groups come in no particular order,
            # and a live page must not shuffle its rows from one refresh to the next.
            reasons=dict(
                sorted(reasons.items(), key=lambda item: (item[0][0], -item[1], item[0][1]))
            ),
            failures=tuple(FailureBucket(code, n) for code, n in buckets),
            updated_at=latest,
        )

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())

    @property
    def in_progress(self) -> int:
        return sum(self.counts.get(s, 0) for s in IN_PROGRESS)

    def share(self, status: str) -> float:
        total = self.recipients
        return 0.0 if total == 0 else self.counts.get(status, 0) / total

    @property
    def retryable(self) -> int:
        return sum(b.count for b in self.failures if b.kind == "retryable")


def terminal(tally: Tally, chunks_received: int, chunk_count: int) -> bool:
    """Finished: every chunk stored and nothing pending, queued or sent."""
    return chunks_received >= chunk_count and tally.in_progress == 0
