"""One demo campaign: what it is, how far it got, and its lines in the live progress."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from cli.output import bar, duration, number
from cli.progress import RateTracker
from cli.status import CampaignStatus


@dataclass
class Campaign:
    label: str
    sender: str
    size: int
    seed: int
    campaign_id: uuid.UUID = field(default_factory=uuid.uuid4)
    published_at: float = 0.0
    finished_at: float | None = None
    last: CampaignStatus | None = None
    tracker: RateTracker = field(default_factory=RateTracker)

    def live_lines(self, unicode: bool) -> list[str]:
        """Four lines for the redrawn view on a terminal."""
        head = f"{self.label} ({self.campaign_id})"
        if self.last is None:
            return [head, "  waiting for intake to store the campaign", "", ""]
        snap = self.last.snapshot
        eta = "done" if snap.finished else duration(self.tracker.eta(snap.in_progress))
        counts = {name: count for name, count, _ in self.last.progress}
        reasons = _pending_reasons(self.last)

        def listed(names: Sequence[str]) -> str:
            return "  ".join(f"{name} {number(counts[name])}" for name in names if name in counts)

        return [
            head,
            f"  [{bar(snap.fraction, 30, unicode=unicode)}] {snap.fraction * 100:5.1f}%  "
            f"{number(snap.done)}/{number(snap.recipients)} done  ETA {eta}",
            f"  to do: {listed(('pending', 'queued', 'sent')) or '-'}"
            + (f"  ({reasons})" if reasons else ""),
            f"  done:  {listed(('delivered', 'read', 'failed', 'skipped')) or '-'}",
        ]

    def log_line(self, elapsed: float) -> str:
        """One line per refresh when the output is not a terminal."""
        if self.last is None:
            return f"{duration(elapsed):>7} {self.label}: waiting for intake"
        reasons = _pending_reasons(self.last)
        return (
            f"{duration(elapsed):>7} {self.label}: {self.last.snapshot.fraction * 100:5.1f}% | "
            f"{_counts(self.last)}" + (f" | pending: {reasons}" if reasons else "")
        )


def _counts(current: CampaignStatus) -> str:
    return "  ".join(f"{name} {number(count)}" for name, count, _ in current.progress)


def _pending_reasons(current: CampaignStatus) -> str:
    pending = [(reason, count) for status, reason, count in current.reasons if status == "pending"]
    return ", ".join(f"{reason} {number(count)}" for reason, count in pending)
