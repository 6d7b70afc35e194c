"""The status fold: webhook updates -> one row per message. Pure; no I/O, no clock.

A row is a join-semilattice element: merging is commutative, associative and
idempotent, so any order, any duplication and any batching of the same events
give the same row, and replaying the topic rebuilds the same table. The same
merge is written in SQL (`sql/queries.sql`, `upsert_statuses`) for rows already
stored; `merge` here is its reference.

Per column (times are Unix seconds of the events themselves):

- `sent_at`, `delivered_at`, `read_at`, `failed_at`: the earliest event of that
  status. A `read` also counts as a `delivered` at its time (read implies
  delivered, and Meta may skip the `delivered` receipt), so `delivered_at` is the
  earliest of the `delivered` and `read` events.
- `error_code`, `provider_code`, `error_message`: those of the earliest `failed`
  event, ties broken by code, then provider code, then message, so the choice
  does not depend on arrival order. A `failed` keeps its details even when the
  message is also `delivered` or `read` (multi-device: one device failed,
  another got it); the status shown is then `delivered`/`read` (precedence
  read > delivered > failed > sent, in `message_status_of`).
- `wamid`, `phone_number_id`, `recipient_id`: the same on every event of a
  message; should two events disagree, the smallest value (code-point order,
  SQL `COLLATE "C"`) wins.
- `updated_at`: the newest event time (never the fold's clock).

Updates that cannot be stored are refused by `admissible` (counted, not folded):
a status outside `KNOWN_STATUSES`, or an id too long to index. Text is made
storable by `_clean` (no NUL, no lone surrogates, bounded length); a provider
code beyond the integer column is dropped (the status and its error code are
worth more than a code that is not Meta's). A value that cannot be made
storable without lying is refused by `unstorable`, and the whole record is set
aside with that reason (`projector.records`): an event time beyond
`MAX_UNIX_SECONDS` (9999-12-31T23:59:59Z), which neither asyncpg nor the
services reading `message_statuses` can represent, and which would otherwise win
`updated_at` forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from schemas.webhooks import KNOWN_STATUSES, StatusUpdate

WAMID_KEY_PREFIX: Final = "wamid:"
MAX_ID_CHARS: Final = 255
MAX_MESSAGE_CHARS: Final = 1024
PERMANENT_RECIPIENT_ERRORS: Final = frozenset({"recipient_not_on_whatsapp", "recipient_blocked"})
# The last second every reader of the table (Python's datetime) can represent.
MAX_UNIX_SECONDS: Final = 253_402_300_799
_INT4_MIN: Final = -(2**31)
_INT4_MAX: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One `message_statuses` row; times are Unix seconds, None when never seen."""

    message_id: str
    wamid: str | None
    phone_number_id: str | None
    recipient_id: str | None
    sent_at: int | None
    delivered_at: int | None
    read_at: int | None
    failed_at: int | None
    error_code: str | None
    provider_code: int | None
    error_message: str | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class Suppression:
    """A permanent recipient error: `phone` is E.164 ('+' and digits), `since` Unix seconds."""

    phone: str
    reason: str
    since: int


def status_of(row: MessageRow) -> str:
    """The status a row shows: read > delivered > failed > sent (SQL `message_status_of`)."""
    if row.read_at is not None:
        return "read"
    if row.delivered_at is not None:
        return "delivered"
    if row.failed_at is not None:
        return "failed"
    return "sent"


def row_key(update: StatusUpdate) -> str:
    """The row an update belongs to: Kirim's message id, else `wamid:<wamid>`."""
    return _clean(update.message_id) or WAMID_KEY_PREFIX + (_clean(update.wamid) or "")


def admissible(update: StatusUpdate) -> bool:
    """True when the update can be folded and stored (see the module docstring)."""
    return (
        update.status in KNOWN_STATUSES
        and 0 < len(update.wamid) <= MAX_ID_CHARS
        and (update.message_id is None or len(update.message_id) <= MAX_ID_CHARS)
    )


def unstorable(update: StatusUpdate) -> str | None:
    """Why an admissible update cannot be stored as it is (a reason code), or None."""
    if not 0 <= update.occurred_at <= MAX_UNIX_SECONDS:
        return "timestamp_out_of_range"
    return None


def _clean(text: str | None, limit: int = MAX_ID_CHARS) -> str | None:
    # PostgreSQL text holds neither NUL nor invalid UTF-8 (JSON may carry both as
    # escapes); an empty string means "absent", which keeps the merge's order total.
    if not text:
        return None
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text[:limit]


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _min_text(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def error_rank(row: MessageRow) -> tuple[int, bool, str, bool, int, bool, str]:
    """The order choosing whose error details a row keeps (smaller wins).

    Mirrors the SQL row comparison: earliest `failed_at`, then present codes
    before absent ones, then code, provider code and message.
    """
    assert row.failed_at is not None
    return (
        row.failed_at,
        row.error_code is None,
        row.error_code or "",
        row.provider_code is None,
        row.provider_code or 0,
        row.error_message is None,
        row.error_message or "",
    )


def row_of(update: StatusUpdate) -> MessageRow:
    """The row one admissible update folds to on its own."""
    at = update.occurred_at
    status = update.status
    failed = status == "failed"
    provider_code = update.provider_code
    if provider_code is not None and not _INT4_MIN <= provider_code <= _INT4_MAX:
        provider_code = None  # the column is an integer; a bigger code is not Meta's
    return MessageRow(
        message_id=row_key(update),
        wamid=_clean(update.wamid),
        phone_number_id=_clean(update.phone_number_id),
        recipient_id=_clean(update.recipient_id),
        sent_at=at if status == "sent" else None,
        delivered_at=at if status in ("delivered", "read") else None,
        read_at=at if status == "read" else None,
        failed_at=at if failed else None,
        error_code=_clean(update.error_code) if failed else None,
        provider_code=provider_code if failed else None,
        error_message=_clean(update.error_message, MAX_MESSAGE_CHARS) if failed else None,
        updated_at=at,
    )


def merge(a: MessageRow, b: MessageRow) -> MessageRow:
    """The join of two rows of the same message (commutative, associative, idempotent)."""
    if a.failed_at is None:
        error_source = b
    elif b.failed_at is None:
        error_source = a
    else:
        error_source = a if error_rank(a) <= error_rank(b) else b
    return MessageRow(
        message_id=a.message_id,
        wamid=_min_text(a.wamid, b.wamid),
        phone_number_id=_min_text(a.phone_number_id, b.phone_number_id),
        recipient_id=_min_text(a.recipient_id, b.recipient_id),
        sent_at=_min(a.sent_at, b.sent_at),
        delivered_at=_min(a.delivered_at, b.delivered_at),
        read_at=_min(a.read_at, b.read_at),
        failed_at=_min(a.failed_at, b.failed_at),
        error_code=error_source.error_code,
        provider_code=error_source.provider_code,
        error_message=error_source.error_message,
        updated_at=max(a.updated_at, b.updated_at),
    )


def fold(
    updates: Iterable[StatusUpdate], into: Mapping[str, MessageRow] | None = None
) -> dict[str, MessageRow]:
    """Fold updates (inadmissible ones skipped) into rows keyed by `message_id`.

    `into` is left untouched; the result holds its rows merged with the updates.
    """
    rows: dict[str, MessageRow] = dict(into) if into is not None else {}
    for update in updates:
        if not admissible(update):
            continue
        row = row_of(update)
        current = rows.get(row.message_id)
        rows[row.message_id] = row if current is None else merge(current, row)
    return rows


def _phone_of(recipient_id: str | None) -> str | None:
    digits = (recipient_id or "").removeprefix("+")
    if 1 <= len(digits) <= 15 and digits.isascii() and digits.isdigit():
        return "+" + digits
    return None


def suppressions(updates: Iterable[StatusUpdate]) -> dict[str, Suppression]:
    """Recipients to suppress: `failed` with a permanent recipient error code.

    One per phone: the earliest event, ties by reason, so the choice is order-free.
    """
    found: dict[str, Suppression] = {}
    for update in updates:
        if update.status != "failed" or update.error_code not in PERMANENT_RECIPIENT_ERRORS:
            continue
        phone = _phone_of(update.recipient_id)
        if phone is None:
            continue
        candidate = Suppression(phone=phone, reason=update.error_code, since=update.occurred_at)
        current = found.get(phone)
        if current is None or (candidate.since, candidate.reason) < (current.since, current.reason):
            found[phone] = candidate
    return found
