"""The `message.status` webhook body: Meta's webhook JSON plus the `kirim` block.

Shape (kirim-api.md, "Webhooks"): one entry, one change, one status per body;
`timestamp` a string of Unix seconds; `recipient_id` without `+`; `errors`
(Meta's) and `kirim.error` (Kirim's code and Meta's `provider_code`) only on
`failed`; `conversation`/`pricing` on `sent` and `delivered`, as Meta sends.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from msgspec import Struct

from sandbox.catalog import Failure


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One status of one message, everything the body needs."""

    message_id: str
    phone_number_id: str
    display_phone_number: str
    waba_id: str
    wamid: str
    recipient_id: str
    status: str
    timestamp: int
    category: str
    failure: Failure | None = None


class _ErrorData(Struct, frozen=True):
    details: str


class _MetaError(Struct, frozen=True):
    code: int
    title: str
    message: str
    error_data: _ErrorData


class _Origin(Struct, frozen=True):
    type: str


class _Conversation(Struct, frozen=True):
    id: str
    origin: _Origin


class _Pricing(Struct, frozen=True):
    billable: bool
    pricing_model: str
    category: str


class _Status(Struct, frozen=True, omit_defaults=True):
    id: str
    status: str
    timestamp: str
    recipient_id: str
    conversation: _Conversation | None = None
    pricing: _Pricing | None = None
    errors: list[_MetaError] | None = None


class _Metadata(Struct, frozen=True):
    display_phone_number: str
    phone_number_id: str


class _Value(Struct, frozen=True):
    messaging_product: str
    metadata: _Metadata
    statuses: list[_Status]


class _Change(Struct, frozen=True):
    field: str
    value: _Value


class _Entry(Struct, frozen=True):
    id: str
    changes: list[_Change]


class _KirimError(Struct, frozen=True):
    code: str
    provider_code: int


class _Kirim(Struct, frozen=True, omit_defaults=True):
    message_id: str
    phone_number_id: str
    error: _KirimError | None = None


class _Body(Struct, frozen=True):
    object: str
    entry: list[_Entry]
    kirim: _Kirim


_encoder = msgspec.json.Encoder()


def status_body(event: StatusEvent) -> bytes:
    failure = event.failure if event.status == "failed" else None
    category = event.category.lower()
    billed = event.status in {"sent", "delivered"}
    status = _Status(
        id=event.wamid,
        status=event.status,
        timestamp=str(event.timestamp),
        recipient_id=event.recipient_id,
        conversation=_Conversation(f"conv_{event.message_id[4:]}", _Origin(category))
        if billed
        else None,
        pricing=_Pricing(True, "CBP", category) if billed else None,
        errors=[
            _MetaError(
                failure.provider_code,
                failure.title,
                failure.title,
                _ErrorData(f"{failure.title} (Kirim sandbox: {failure.code})"),
            )
        ]
        if failure
        else None,
    )
    value = _Value(
        "whatsapp", _Metadata(event.display_phone_number, event.phone_number_id), [status]
    )
    kirim = _Kirim(
        event.message_id,
        event.phone_number_id,
        _KirimError(failure.code, failure.provider_code) if failure else None,
    )
    entry = _Entry(event.waba_id, [_Change("messages", value)])
    body = _Body("whatsapp_business_account", [entry], kirim)
    return _encoder.encode(body)
