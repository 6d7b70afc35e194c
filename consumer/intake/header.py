"""A campaign's header: what every chunk of one campaign must agree on.

The fingerprint is hex sha256 over the canonical JSON (sorted keys, defaults
omitted, unknown fields dropped) of `{"sender": ..., "template": ...}` plus each of
`priority`, `quiet_hours` and `quality_guard` that is not its default, so two
chunks that say the same thing in different key orders agree, and a campaign
stored before those options existed keeps its fingerprint. `chunk.count` and
`send_at` must agree too. The first chunk stored defines the campaign; a later
chunk that disagrees is dead-lettered as `chunk_conflict`, as is a chunk index
received before with different content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from schemas.requests import BroadcastRequested

AUTO_SENDER: Final = "auto"
_canonical: Final = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class CampaignHeader:
    """The campaign-level fields of a chunk, as the campaigns table stores them."""

    sender_spec: str
    template_name: str
    template_language: str
    template_components: list[dict[str, Any]]
    fingerprint: str
    send_at: datetime | None
    chunk_count: int
    priority: str = "bulk"
    quiet_hours: dict[str, Any] | None = None
    quality_guard: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredHeader:
    """What the campaigns row says: the header the first stored chunk defined."""

    fingerprint: str
    send_at: datetime | None
    chunk_count: int


def header_of(event: BroadcastRequested) -> CampaignHeader:
    sender = event.sender
    agreed: dict[str, Any] = {"sender": sender, "template": event.template}
    if event.priority != "bulk":
        agreed["priority"] = event.priority
    if event.quiet_hours is not None:
        agreed["quiet_hours"] = event.quiet_hours
    if event.quality_guard is not None:
        agreed["quality_guard"] = event.quality_guard
    digest = hashlib.sha256(_canonical.encode(agreed)).hexdigest()
    return CampaignHeader(
        sender_spec=AUTO_SENDER if sender.is_auto else str(sender.phone_number_id),
        template_name=event.template.name,
        template_language=event.template.language,
        template_components=msgspec.to_builtins(event.template.components),
        fingerprint=digest,
        send_at=event.send_at,
        chunk_count=event.chunk.count,
        priority=event.priority,
        quiet_hours=_builtins_or_none(event.quiet_hours),
        quality_guard=_builtins_or_none(event.quality_guard),
    )


def _builtins_or_none(value: object) -> dict[str, Any] | None:
    return None if value is None else msgspec.to_builtins(value)


def chunk_digest(event: BroadcastRequested) -> str:
    """Hex sha256 of the chunk's canonical JSON: equal for a redelivery or a
    re-serialisation of the same chunk, different for different content."""
    return hashlib.sha256(_canonical.encode(event)).hexdigest()


def conflict(stored: StoredHeader, incoming: CampaignHeader) -> str | None:
    """Why `incoming` cannot belong to the stored campaign, or None when it agrees."""
    if stored.fingerprint != incoming.fingerprint:
        return (
            "sender, template, priority, quiet_hours or quality_guard differs from the "
            "campaign's first stored chunk"
        )
    if stored.chunk_count != incoming.chunk_count:
        return (
            f"chunk.count {incoming.chunk_count} differs from the campaign's {stored.chunk_count}"
        )
    if stored.send_at != incoming.send_at:
        return "send_at differs from the campaign's first stored chunk"
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def unstorable_text(header: CampaignHeader) -> str | None:
    """Why the header cannot be stored (PostgreSQL text and jsonb refuse NUL), or None."""
    if _has_nul(header.template_components):
        return "template components contain a NUL character (\\u0000)"
    return None


def in_utc(moment: datetime) -> datetime | None:
    """`moment` in UTC, or None when that falls outside years 1-9999.

    RFC 3339 allows `0001-01-01T00:00:00+05:00`, whose UTC instant is in year 0:
    neither Python nor asyncpg can represent it, so PostgreSQL never receives it.
    """
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def unstorable_value(header: CampaignHeader) -> str | None:
    """Why a header value cannot be stored (other than text), or None."""
    if header.send_at is not None and in_utc(header.send_at) is None:
        return f"send_at {header.send_at.isoformat()} is outside years 1-9999 in UTC"
    return None
