"""The preview's counts for an audience read chunk by chunk, with intake's own rules (pure).

Each chunk goes through `consumer.intake.expand`, as intake will apply it; what
expand cannot see from one chunk is a phone that appeared in an earlier one.
Those are counted as duplicates here (the first occurrence wins, in audience
order, as the lowest chunk index does in the ledger) and the rest is left to
expand. Remembering every phone would cost ~100 bytes each as Python strings;
`DigestSet` keeps a 64-bit digest per phone in one flat array instead (16 bytes
a phone at most, 16 MiB for a million). Two phones whose digests collide (odds
about 3e-8 at a million) would make the preview count one duplicate too many;
the published chunks never depend on it.
"""

from __future__ import annotations

import uuid
from array import array
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from consumer.dispatch.quiet import zones_of
from consumer.intake.expand import OUTCOMES, Outcome, expand
from consumer.intake.phone import key_for_invalid
from schemas.requests import BroadcastRequested, Recipient, Sender
from schemas.template import Template

_EMPTY: Final = 0
_INITIAL_SLOTS: Final = 1 << 10


class DigestSet:
    """A set of 64-bit digests in an open-addressing table, at most half full."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self) -> None:
        self._slots = array("q", bytes(8 * _INITIAL_SLOTS))
        self._mask = _INITIAL_SLOTS - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return len(self._slots) * self._slots.itemsize

    @staticmethod
    def digest(key: str) -> int:
        # hash() is SipHash over the whole string; 0 marks an empty slot.
        return hash(key) or 1

    def _slot(self, digest: int) -> int:
        slots, mask = self._slots, self._mask
        index = digest & mask
        while slots[index] != _EMPTY and slots[index] != digest:
            index = (index + 1) & mask
        return index

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        digest = self.digest(key)
        return self._slots[self._slot(digest)] == digest

    def add(self, key: str) -> None:
        digest = self.digest(key)
        index = self._slot(digest)
        if self._slots[index] == digest:
            return
        self._slots[index] = digest
        self._count += 1
        if self._count * 2 > len(self._slots):
            self._grow()

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("q", bytes(16 * len(old)))
        self._mask = len(self._slots) - 1
        for digest in old:
            if digest != _EMPTY:
                self._slots[self._slot(digest)] = digest


@dataclass(slots=True)
class Tally:
    """Outcome counts over every chunk added so far, in audience order."""

    template: Template
    now: datetime
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    seen: DigestSet = field(default_factory=DigestSet)
    # Eligible recipients by their numbers' time zones, for a campaign with quiet hours
    # (None: not counted; cli/quiet_plan.py).
    zones: Counter[tuple[str, ...]] | None = None

    def add(
        self,
        recipients: Sequence[Recipient],
        phones: Sequence[str | None],
        suppressed: Collection[str],
    ) -> None:
        """Count one chunk; `phones` are its recipients normalised (None: invalid)."""
        keys = [
            key_for_invalid(r.phone) if p is None else p
            for r, p in zip(recipients, phones, strict=True)
        ]
        fresh = [i for i, key in enumerate(keys) if key not in self.seen]
        self.counts["duplicate"] += len(keys) - len(fresh)
        for key in keys:
            self.seen.add(key)
        if not fresh:
            return
        chunk = BroadcastRequested(
            # Only the template and the recipients matter to expand().
            campaign_id=uuid.UUID(int=0),
            sender=Sender(auto=True),
            template=self.template,
            recipients=[recipients[i] for i in fresh],
        )
        expansion = expand(
            chunk, suppressed=suppressed, now=self.now, phones=[phones[i] for i in fresh]
        )
        for outcome, count in expansion.counts.items():
            self.counts[outcome] += count
        if self.zones is not None:
            self.zones.update(
                zones_of(phone)
                for phone, status in zip(expansion.phones, expansion.statuses, strict=True)
                if status == "pending"
            )
