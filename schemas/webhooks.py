"""A lenient read view of Kirim's `message.status` webhook body, and its flat updates.

Public contract:

- The body is Meta's webhook JSON passed through (`object`,
  `entry[].changes[].value.statuses[]`) plus a `kirim` block naming our `msg_`
  id (see kirim-api.md, "Webhooks"). The bridge stores the raw body; this view
  is only for reading it.
- Lenient: unknown fields are ignored everywhere and every block except a
  status's `id`, `status` and `timestamp` may be missing. Meta's numeric codes
  are accepted as JSON numbers or numeric strings; `timestamp` (Unix seconds)
  as a string, as Meta sends it, or a number.
- `decode_status_webhook(raw)` raises only `schemas.errors.InvalidEvent`
  (`too_large`, `invalid_json`, `schema_violation`).
- `status_updates(webhook, event_id)` flattens a body into one `StatusUpdate`
  per status. The `kirim` block names one message: the one whose wamid is the
  delivery's `X-Kirim-Event-Id` (else the first status's). Its `message_id`,
  `phone_number_id` and `error` apply to that wamid's statuses only; a status of
  another wamid in the same body (Meta batches) keeps only its wamid, so it can
  never land on another message's row.
- A list given as `null` reads as empty (some serialisers write absent lists so).
- `status` stays a plain string (Meta may add values); `KNOWN_STATUSES` lists
  the ones the fold understands.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from schemas import codec

MAX_WEBHOOK_BYTES: Final = 1024 * 1024

STATUS_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "message.status",
        "message.status_updated",
        "message.sent",
        "message.delivered",
        "message.read",
        "message.failed",
    }
)
"""`X-Kirim-Event` values that carry a `message.status` body (all synonyms)."""

KNOWN_STATUSES: Final[frozenset[str]] = frozenset({"sent", "delivered", "read", "failed"})

UnixSeconds = Annotated[str, Meta(pattern=r"^[0-9]{1,12}$")] | Annotated[int, Meta(ge=0)]
# Codes are numbers in Meta's docs; a numeric string costs nothing to accept.
Code = int | Annotated[str, Meta(pattern=r"^-?[0-9]{1,12}$")]


class ErrorData(Struct, frozen=True, kw_only=True):
    details: str | None = None


class StatusError(Struct, frozen=True, kw_only=True):
    """One of Meta's `errors[]` on a failed status."""

    code: Code | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None


class Status(Struct, frozen=True, kw_only=True):
    """One entry of `value.statuses[]`."""

    id: str
    status: str
    timestamp: UnixSeconds
    recipient_id: str | None = None
    errors: list[StatusError] | None = None


class Metadata(Struct, frozen=True, kw_only=True):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class ChangeValue(Struct, frozen=True, kw_only=True):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    statuses: list[Status] | None = None


class Change(Struct, frozen=True, kw_only=True):
    field: str | None = None
    value: ChangeValue | None = None


class Entry(Struct, frozen=True, kw_only=True):
    id: str | None = None
    changes: list[Change] | None = None


class KirimError(Struct, frozen=True, kw_only=True):
    code: str | None = None
    provider_code: Code | None = None


class KirimBlock(Struct, frozen=True, kw_only=True):
    """Kirim's addition to Meta's body: our message id and its error classification."""

    message_id: str | None = None
    phone_number_id: str | None = None
    error: KirimError | None = None


class StatusWebhook(Struct, frozen=True, kw_only=True):
    """The whole `message.status` body."""

    object: str | None = None
    entry: list[Entry] | None = None
    kirim: KirimBlock | None = None


class StatusUpdate(Struct, frozen=True, kw_only=True):
    """One status of one message, flattened for the projector.

    `message_id` is Kirim's `msg_` id when the body named it, else None (the
    projector then matches on `wamid`). `occurred_at` is Unix seconds.
    """

    message_id: str | None
    wamid: str
    phone_number_id: str | None
    status: str
    occurred_at: int
    recipient_id: str | None
    error_code: str | None
    provider_code: int | None
    error_message: str | None


_DECODER: Final = msgspec.json.Decoder(StatusWebhook)


def is_status_event(event_type: str) -> bool:
    """True when an `X-Kirim-Event` value names a `message.status` event or a synonym."""
    return event_type.strip().lower() in STATUS_EVENT_TYPES


def unix_seconds(value: str | int) -> int:
    """A status `timestamp` (decimal string or number of Unix seconds) as an int."""
    return int(value)


def decode_status_webhook(raw: bytes, *, max_bytes: int = MAX_WEBHOOK_BYTES) -> StatusWebhook:
    """Decode a `message.status` body; raises only `InvalidEvent`."""
    return codec.decode(_DECODER, raw, max_bytes=max_bytes)


def _as_int(code: int | str | None) -> int | None:
    return None if code is None else int(code)


def _error_message(error: StatusError) -> str | None:
    # `details` says why (e.g. "Message failed to send because..."); title and
    # message are often just "Message undeliverable".
    details = error.error_data.details if error.error_data is not None else None
    return details or error.message or error.title


def _update(status: Status, value: ChangeValue, kirim: KirimBlock | None) -> StatusUpdate:
    meta_error = status.errors[0] if status.errors else None
    kirim_error = kirim.error if kirim is not None and status.status == "failed" else None
    provider_code = _as_int(kirim_error.provider_code) if kirim_error is not None else None
    if provider_code is None and meta_error is not None:
        provider_code = _as_int(meta_error.code)
    phone_number_id = kirim.phone_number_id if kirim is not None else None
    if phone_number_id is None and value.metadata is not None:
        phone_number_id = value.metadata.phone_number_id
    return StatusUpdate(
        message_id=kirim.message_id if kirim is not None else None,
        wamid=status.id,
        phone_number_id=phone_number_id,
        status=status.status,
        occurred_at=unix_seconds(status.timestamp),
        recipient_id=status.recipient_id,
        error_code=kirim_error.code if kirim_error is not None else None,
        provider_code=provider_code,
        error_message=_error_message(meta_error) if meta_error is not None else None,
    )


def status_updates(webhook: StatusWebhook, event_id: str | None = None) -> list[StatusUpdate]:
    """Every status in the body, in order, as a `StatusUpdate` (see the module docstring).
    `event_id` is the delivery's `X-Kirim-Event-Id`, when known."""
    statuses = [
        (status, change.value)
        for entry in webhook.entry or ()
        for change in entry.changes or ()
        if change.value is not None
        for status in change.value.statuses or ()
    ]
    if not statuses:
        return []
    wamids = {status.id for status, _ in statuses}
    named = event_id if event_id in wamids else statuses[0][0].id
    return [
        _update(status, value, webhook.kirim if status.id == named else None)
        for status, value in statuses
    ]
