"""Events on the `broadcast.requests` topic: broadcast requests and their control events.

Public contract (the design's "Public contract" section, in types):

- Each Kafka message is one JSON object tagged by `type`:
  `broadcast.requested` (`BroadcastRequested`), `broadcast.paused`,
  `broadcast.resumed`, `broadcast.cancelled` (`BroadcastPaused`,
  `BroadcastResumed`, `BroadcastCancelled`). The Kafka key is the campaign id
  (`event.campaign_key`).
- Evolution: fields may be added (with defaults), never renamed, and their
  types never change. Unknown fields are ignored, so old consumers accept
  events from newer producers; types are strict (no "1" for 1).
- `decode_request_event(raw)` returns a `RequestEvent` or raises
  `schemas.errors.InvalidEvent` with a reason code: `too_large` (over
  `MAX_EVENT_BYTES`, checked before parsing), `invalid_json`, `unknown_type`,
  `invalid_sender`, `chunk_out_of_range` or `schema_violation`.
- Datetimes (`opted_in_at`, `send_at`) are RFC 3339 with a timezone; a naive
  datetime is a schema violation rather than a guess at the zone.

Phone numbers: the event requires each recipient's `phone` to be a non-empty
string of at most 32 characters and nothing more. A string that is not valid
E.164 does NOT reject the event: one bad number in a 5,000-recipient chunk
would otherwise dead-letter 4,999 good ones. The consumer normalises each phone
(with `phonenumbers`) and skips a bad one as `invalid_phone`. `is_e164` states
the canonical form for documentation and tests; it is not the consumer's check.

Constraints are enforced when decoding. Building a Struct in Python runs only
the cross-field checks (`__post_init__`), so producers should test their
events through `decode_request_event(encode_request_event(event))`.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated, Final, Literal, TypeAlias, get_args

import msgspec
from msgspec import Meta, Struct

from schemas import codec
from schemas.errors import InvalidEvent, Reason
from schemas.template import Template

MAX_EVENT_BYTES: Final = 1024 * 1024
"""Largest accepted event; a bigger audience is split into chunks of one campaign."""
MAX_RECIPIENTS: Final = 10_000
"""Most recipients in one event (one chunk)."""

_E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")

AwareDatetime = Annotated[
    datetime, Meta(tz=True, description="RFC 3339 date-time with a timezone offset.")
]
PhoneNumberId = Annotated[
    str, Meta(pattern=r"^[0-9]{6,20}$", description="Meta's numeric id of the sender number.")
]
Phone = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        description=(
            "Recipient phone, E.164 expected (`+628111222333`). A string that is not "
            "valid E.164 does not reject the event: that recipient is skipped as "
            "`invalid_phone`."
        ),
    ),
]
VariableName = Annotated[str, Meta(min_length=1, max_length=64)]
VariableValue = Annotated[str, Meta(max_length=1024)]
ShortText = Annotated[str, Meta(max_length=1000)]


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def is_e164(phone: str) -> bool:
    """True when `phone` is in E.164 form: `+`, a non-zero digit, then 6 to 14 digits."""
    return _E164.fullmatch(phone) is not None


# Shared config; subclasses repeat frozen/kw_only because mypy reads them per class.
class _Struct(Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


# The JSON Schema cannot express "exactly one of" from the types alone; this
# keeps producers in other languages honest about the rule `Sender` enforces.
_SENDER_ONE_OF: Final = {
    "oneOf": [
        {"required": ["phone_number_id"], "properties": {"phone_number_id": {"type": "string"}}},
        {"required": ["auto"], "properties": {"auto": {"const": True}}},
    ]
}


class Sender(_Struct, frozen=True, kw_only=True):
    """Exactly one of `{"phone_number_id": "<6-20 digits>"}` or `{"auto": true}`.

    `auto` picks the connected account with the highest tier, once per campaign.
    """

    phone_number_id: PhoneNumberId | None = None
    auto: Literal[True] | None = None

    def __post_init__(self) -> None:
        if (self.phone_number_id is None) == (self.auto is None):
            raise InvalidEvent(
                "invalid_sender",
                'sender must have exactly one of `phone_number_id` or `"auto": true`',
            )

    @property
    def is_auto(self) -> bool:
        """True when the service chooses the sender number."""
        return self.auto is True


# omit_defaults=False: a chunk is written out in full, as `{}` would be opaque.
class Chunk(_Struct, omit_defaults=False, frozen=True, kw_only=True):
    """This event's place among the chunks of one campaign (`index` < `count`).

    A big audience is published as `count` events of one campaign, all with the
    same `campaign_id` (also the Kafka key), `sender`, `template` and `send_at`,
    numbered `index` 0 to `count - 1`. Each event holds at most 10,000
    recipients and must stay well under 1 MiB encoded (`broadcast publish` cuts
    at 5,000 recipients or 512 KiB, whichever comes first). To chunk in any
    language: (1) fix the recipients' order (e.g. ORDER BY a unique key);
    (2) pack greedily: a recipient joins the current chunk unless that would
    exceed the recipient budget or the encoded event's byte budget, else it
    starts the next chunk; (3) `count` must be right in every chunk, so read the
    whole audience first (count it, or spool the chunks) and only then publish;
    (4) publish with acks=all and an idempotent producer. Chunks may arrive in
    any order and more than once: the same `index` with the same recipients is
    a redelivery and changes nothing, so an interrupted publish is finished by
    publishing every chunk again with the same `campaign_id`; the same `index`
    with different recipients is dead-lettered as `chunk_conflict`, so the cut
    must be deterministic. A phone in several chunks counts once (the lowest
    `index` wins).
    """

    index: Annotated[int, Meta(ge=0)] = 0
    count: Annotated[int, Meta(ge=1, le=100_000)] = 1

    def __post_init__(self) -> None:
        if self.index >= self.count:
            raise InvalidEvent(
                "chunk_out_of_range",
                f"chunk.index ({self.index}) must be less than chunk.count ({self.count})",
            )


OptInSource = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description=(
            "Where the opt-in was given (`checkout_form`, `crm:import-2026-11`, a consent "
            "record's id): kept on the recipient's ledger row with `opted_in_at` and "
            "exported by `broadcast recipients`, so an operator can say why this person got "
            "this message. Absent when the producer does not know it; never an empty string."
        ),
    ),
]


class Recipient(_Struct, frozen=True, kw_only=True):
    """One person to message, with the proof of opt-in and their template variables."""

    phone: Phone
    opted_in_at: AwareDatetime | None = None
    opt_in_source: OptInSource | None = None
    variables: Annotated[dict[VariableName, VariableValue], Meta(max_length=50)] = {}


Priority: TypeAlias = Literal["transactional", "bulk"]
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)

ClockTime = Annotated[
    str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Local time, `HH:MM`.")
]
TimeZoneName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="An IANA time zone (`Asia/Jakarta`).",
    ),
]


class QuietHours(_Struct, frozen=True, kw_only=True):
    """Hours in which a recipient is not messaged, judged in the recipient's local time.

    From `start` (included) to `end` (excluded), local wall-clock time; a window that
    crosses midnight (`21:00` to `08:00`) is the usual case. The recipient's zone
    comes from their number (the `phonenumbers` time-zone data); a number that maps
    to several zones is quiet when any of them is, except that zones whose allowed
    hours never meet are judged in the most western of them alone. A number with no
    known zone is judged in `time_zone` (default UTC). Recipients inside the window
    are deferred with reason `quiet_hours` and sent when it ends.
    """

    start: ClockTime
    end: ClockTime
    time_zone: TimeZoneName | None = None

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise InvalidEvent(
                "schema_violation", f"quiet_hours.start and end are both {self.start}"
            )
        if self.time_zone is not None and not _is_time_zone(self.time_zone):
            raise InvalidEvent(
                "schema_violation", f"quiet_hours.time_zone {self.time_zone!r} is not known"
            )


QualityRating: TypeAlias = Literal["GREEN", "YELLOW", "RED"]


class QualityGuard(_Struct, frozen=True, kw_only=True):
    """When the campaign pauses itself (`paused`, reason `quality_guard`) to protect
    the sender before Meta lowers its tier; resuming is an operator's decision.

    Every field is optional: one left out takes the dispatcher's configured default
    (`DISPATCH_QUALITY_GUARD_*`). The guard trips when, over the last
    `window_seconds`, at least `min_sends` messages were sent and the share of them
    that failed for engagement reasons (`ecosystem_engagement` 131049,
    `recipient_blocked` 1013, `spam_rate_limited`) exceeds `max_failure_rate`; or when
    the sender's `quality_rating` is seen to fall, while the campaign runs, to
    `pause_at_quality` or below (a campaign started on a number already that low is not
    paused for it). After a resume the window counts from the resume.
    `enabled: false` turns the guard off for this campaign; a guard object without
    `enabled` is on, whatever the default for requests without one.
    """

    enabled: bool = True
    window_seconds: Annotated[int, Meta(ge=60, le=7 * 86_400)] | None = None
    min_sends: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    max_failure_rate: Annotated[float, Meta(gt=0.0, le=1.0)] | None = None
    pause_at_quality: QualityRating | None = None


class _CampaignEvent(_Struct, tag_field="type", frozen=True, kw_only=True):
    campaign_id: uuid.UUID

    @property
    def campaign_key(self) -> str:
        """The campaign id in canonical form (lowercase, hyphenated): the Kafka key."""
        return str(self.campaign_id)


class BroadcastRequested(_CampaignEvent, tag="broadcast.requested", frozen=True, kw_only=True):
    """Send one approved template to each recipient (one chunk of a campaign)."""

    sender: Annotated[Sender, Meta(extra_json_schema=_SENDER_ONE_OF)]
    template: Template
    recipients: Annotated[list[Recipient], Meta(min_length=1, max_length=MAX_RECIPIENTS)]
    chunk: Chunk = Chunk()
    send_at: (
        Annotated[AwareDatetime, Meta(description="Send no earlier than this; absent: send now.")]
        | None
    ) = None
    priority: Annotated[
        Priority,
        Meta(
            description=(
                "`transactional` (order updates, reminders) is sent before `bulk` on a shared "
                "number and organisation budget; bulk keeps a minimum share."
            )
        ),
    ] = "bulk"
    quiet_hours: QuietHours | None = None
    quality_guard: QualityGuard | None = None


class _ControlEvent(_CampaignEvent, frozen=True, kw_only=True):
    reason: ShortText | None = None
    requested_by: ShortText | None = None


class BroadcastPaused(_ControlEvent, tag="broadcast.paused", frozen=True, kw_only=True):
    """Stop sending this campaign until it is resumed; nothing is lost."""


class BroadcastResumed(_ControlEvent, tag="broadcast.resumed", frozen=True, kw_only=True):
    """Continue a paused campaign."""


class BroadcastCancelled(_ControlEvent, tag="broadcast.cancelled", frozen=True, kw_only=True):
    """Stop the campaign for good; unsent recipients are skipped as `cancelled`."""


RequestEvent: TypeAlias = (
    BroadcastRequested | BroadcastPaused | BroadcastResumed | BroadcastCancelled
)

REQUEST_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    str(cls.__struct_config__.tag) for cls in get_args(RequestEvent)
)

_DECODER: Final[msgspec.json.Decoder[RequestEvent]] = msgspec.json.Decoder(RequestEvent)
_ENCODER: Final = msgspec.json.Encoder()
# Value-rule failures (not wrong JSON types) under these paths get a specific code.
_VALUE_REASONS: Final[dict[str, Reason]] = {
    "$.type": "unknown_type",
    "$.sender": "invalid_sender",
    "$.chunk": "chunk_out_of_range",
}


def event_type(event: RequestEvent) -> str:
    """The event's `type` tag, e.g. `broadcast.requested`."""
    return str(type(event).__struct_config__.tag)


def decode_request_event(raw: bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> RequestEvent:
    """Decode one `broadcast.requests` message value; raises only `InvalidEvent`."""
    return codec.decode(_DECODER, raw, max_bytes=max_bytes, value_reasons=_VALUE_REASONS)


def encode_request_event(event: RequestEvent) -> bytes:
    """Encode an event as the compact JSON producers publish (defaults omitted)."""
    return _ENCODER.encode(event)
