"""One chunk of a broadcast request -> its ledger rows: the functional core of intake.

Each recipient becomes one row keyed by phone, in this order of precedence:

1. `invalid_phone` (skipped): not a valid international number (see `phone.py`);
   the row is keyed by the trimmed raw text, so the operator sees what was sent;
2. `duplicate`: the phone already appeared earlier in this chunk; the first
   occurrence wins, whatever its outcome, and no second row exists (counted only);
3. `suppressed` (skipped): on the suppression list;
4. `not_opted_in` (skipped): `opted_in_at` missing, later than `now`, or not an
   instant (outside years 1-9999 in UTC: no proof of consent, and PostgreSQL
   cannot be given it, so the row stores NULL there);
5. `missing_variable` (skipped): the template cannot be rendered for them;
6. `eligible` (`pending`).

Rendered components are kept per row only when the template has placeholders;
otherwise the row's components are NULL ("the campaign's, as they are").
Across chunks the lowest chunk index wins (enforced by the store's upsert).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, NamedTuple

from consumer.intake.header import in_utc
from consumer.intake.phone import key_for_invalid, normalize_phone
from consumer.intake.render import compile_template, render_json
from schemas.requests import BroadcastRequested, Recipient

Outcome = Literal[
    "eligible", "invalid_phone", "duplicate", "suppressed", "not_opted_in", "missing_variable"
]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "eligible",
    "invalid_phone",
    "duplicate",
    "suppressed",
    "not_opted_in",
    "missing_variable",
)


class LedgerRow(NamedTuple):
    phone: str
    status: Literal["pending", "skipped"]
    reason: str | None
    components: str | None
    opted_in_at: datetime | None
    opt_in_source: str | None = None


@dataclass(slots=True)
class Expansion:
    """A chunk's ledger rows in columns (as the bulk write wants them) and outcome counts."""

    phones: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    components: list[str | None] = field(default_factory=list)
    opted_in_at: list[datetime | None] = field(default_factory=list)
    opt_in_source: list[str | None] = field(default_factory=list)
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def add(self, row: LedgerRow, outcome: Outcome) -> None:
        self.phones.append(row.phone)
        self.statuses.append(row.status)
        self.reasons.append(row.reason)
        self.components.append(row.components)
        self.opted_in_at.append(row.opted_in_at)
        self.opt_in_source.append(row.opt_in_source)
        self.counts[outcome] += 1

    def rows(self) -> list[LedgerRow]:
        return [
            LedgerRow(*values)
            for values in zip(
                self.phones,
                self.statuses,
                self.reasons,
                self.components,
                self.opted_in_at,
                self.opt_in_source,
                strict=True,
            )
        ]

    @property
    def pending(self) -> int:
        return self.counts["eligible"]


def normalize_recipients(recipients: Sequence[Recipient]) -> list[str | None]:
    """Each recipient's E.164 phone, or None when invalid (the CPU-heavy part of a chunk)."""
    return [normalize_phone(recipient.phone) for recipient in recipients]


def storable_source(source: str | None) -> str | None:
    """The recipient's `opt_in_source` as the ledger can hold it: a NUL (which PostgreSQL
    text cannot store) becomes U+FFFD. It is provenance, not proof of consent, so an odd
    character is kept visible rather than skipping the recipient or refusing the chunk."""
    return None if source is None else source.replace("\x00", "\ufffd")


def expand(
    event: BroadcastRequested,
    *,
    suppressed: Collection[str],
    now: datetime,
    phones: Sequence[str | None] | None = None,
) -> Expansion:
    """The chunk's ledger rows; `phones` is `normalize_recipients(event.recipients)`
    when the caller already has it (it looks up suppressions by those phones)."""
    if phones is None:
        phones = normalize_recipients(event.recipients)
    compiled = compile_template(event.template)
    expansion = Expansion()
    seen: set[str] = set()
    for recipient, phone in zip(event.recipients, phones, strict=True):
        key = key_for_invalid(recipient.phone) if phone is None else phone
        if key in seen:
            expansion.counts["duplicate"] += 1
            continue
        seen.add(key)
        outcome: Outcome
        components = None
        opted_in_at = recipient.opted_in_at
        if opted_in_at is not None and in_utc(opted_in_at) is None:
            opted_in_at = None
        if phone is None:
            outcome = "invalid_phone"
        elif phone in suppressed:
            outcome = "suppressed"
        elif opted_in_at is None or opted_in_at > now:
            outcome = "not_opted_in"
        elif compiled.has_variables:
            components = render_json(compiled, recipient.variables)
            outcome = "missing_variable" if components is None else "eligible"
        else:
            outcome = "eligible"
        source = storable_source(recipient.opt_in_source)
        if outcome == "eligible":
            row = LedgerRow(key, "pending", None, components, opted_in_at, source)
        else:
            row = LedgerRow(key, "skipped", outcome, None, opted_in_at, source)
        expansion.add(row, outcome)
    return expansion
