"""JSON shapes of the API's answers (`{"data": ..., "request_id": ...}`) and their encoding."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import Struct

from sandbox.catalog import tier_label
from sandbox.config import Account, tier_of
from sandbox.store import Message
from sandbox.timeline import status_at

encoder = msgspec.json.Encoder()


class TemplateRef(Struct, frozen=True):
    name: str
    language: str


class MessageError(Struct, frozen=True):
    code: str
    message: str
    provider_code: int


class MessageView(Struct, frozen=True, kw_only=True):
    id: str
    object: str = "message"
    status: str
    phone_number_id: str
    to: str
    type: str
    template: TemplateRef | None
    provider_id: str | None
    error: MessageError | None
    created_at: str
    updated_at: str


class Single(Struct, frozen=True):
    data: Any
    request_id: str


class Listing(Struct, frozen=True):
    data: list[Any]
    has_more: bool
    next_cursor: str | None
    request_id: str


def iso(unix: float) -> str:
    return (
        datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def message_view(message: Message, now: float) -> MessageView:
    status, since = status_at(message.timeline, now)
    failure = message.failure if status == "failed" else None
    template = (
        TemplateRef(message.template, message.language)
        if message.template is not None and message.language is not None
        else None
    )
    return MessageView(
        id=message.id,
        status=status,
        phone_number_id=message.phone_number_id,
        to=message.to,
        type="template" if template else "text",
        template=template,
        provider_id=None if status == "pending" else message.wamid,
        error=MessageError(failure.code, failure.title, failure.provider_code) if failure else None,
        created_at=iso(message.created_at),
        updated_at=iso(since),
    )


def account_view(phone_number_id: str, account: Account, encoding: str) -> dict[str, Any]:
    tier = tier_of(account)
    shown: int | str
    if encoding == "label":
        shown = tier_label(tier)
    elif tier is None:
        shown = "unlimited" if encoding == "string" else "TIER_UNLIMITED"
    else:
        shown = str(tier) if encoding == "string" else tier
    return {
        "phone_number_id": phone_number_id,
        "phone_number": account.phone_number,
        "name": account.name,
        "status": account.status,
        "messaging_tier": shown,
        "quality_rating": account.quality_rating,
    }
