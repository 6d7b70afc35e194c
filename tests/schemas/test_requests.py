"""Decoding and encoding `broadcast.requests` events: what is accepted and how it looks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from schemas.errors import InvalidEvent
from schemas.requests import (
    MAX_RECIPIENTS,
    REQUEST_EVENT_TYPES,
    BroadcastCancelled,
    BroadcastPaused,
    BroadcastRequested,
    BroadcastResumed,
    Chunk,
    Recipient,
    Sender,
    decode_request_event,
    encode_request_event,
    event_type,
    is_e164,
)
from schemas.template import Component, ImageParameter, MediaLink, Template, TextParameter
from tests.schemas.samples import design_request, dumps, mutated


def test_design_sample_decodes_to_the_expected_event() -> None:
    event = decode_request_event(dumps(design_request()))

    assert event == BroadcastRequested(
        campaign_id=uuid.UUID("c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b"),
        sender=Sender(phone_number_id="106540352242922"),
        template=Template(
            name="promo_flash_sale",
            language="id_ID",
            components=[Component(type="body", parameters=[TextParameter(text="{{first_name}}")])],
        ),
        recipients=[
            Recipient(
                phone="+628111222333",
                opted_in_at=datetime(2026, 1, 5, 10, tzinfo=UTC),
                variables={"first_name": "Budi"},
            )
        ],
        chunk=Chunk(index=0, count=1),
    )
    assert event_type(event) == "broadcast.requested"
    assert event.campaign_key == "c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b"


def test_design_sample_round_trips() -> None:
    event = decode_request_event(dumps(design_request()))
    encoded = encode_request_event(event)

    assert decode_request_event(encoded) == event
    assert encode_request_event(decode_request_event(encoded)) == encoded


@pytest.mark.parametrize(
    "event",
    [
        BroadcastPaused(campaign_id=uuid.uuid4()),
        BroadcastResumed(campaign_id=uuid.uuid4(), reason="window open", requested_by="ops"),
        BroadcastCancelled(campaign_id=uuid.uuid4(), reason="typo in template"),
    ],
    ids=["paused", "resumed", "cancelled"],
)
def test_control_events_round_trip(
    event: BroadcastPaused | BroadcastResumed | BroadcastCancelled,
) -> None:
    assert decode_request_event(encode_request_event(event)) == event


def test_control_event_wire_form() -> None:
    event = decode_request_event(
        b'{"type": "broadcast.cancelled", "campaign_id": "c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b"}'
    )

    assert isinstance(event, BroadcastCancelled)
    assert event.reason is None
    assert event_type(event) in REQUEST_EVENT_TYPES


def test_non_e164_phone_string_is_accepted_and_left_to_the_consumer() -> None:
    # One bad number must not dead-letter the whole chunk: the consumer skips it.
    event = decode_request_event(mutated(("recipients", 0, "phone"), "0811-222-333"))

    assert isinstance(event, BroadcastRequested)
    assert event.recipients[0].phone == "0811-222-333"
    assert not is_e164(event.recipients[0].phone)


def test_unknown_fields_are_ignored_at_every_level() -> None:
    doc = design_request()
    doc["future_field"] = {"anything": [1, 2, 3]}
    doc["sender"]["region"] = "id"
    doc["template"]["category"] = "MARKETING"
    doc["template"]["components"][0]["note"] = None
    doc["template"]["components"][0]["parameters"][0]["x"] = 1
    doc["recipients"][0]["name"] = "Budi"
    doc["chunk"]["total_recipients"] = 1

    assert decode_request_event(dumps(doc)) == decode_request_event(dumps(design_request()))


def test_optional_fields_take_their_defaults() -> None:
    doc = design_request()
    del doc["chunk"]
    del doc["recipients"][0]["opted_in_at"]
    del doc["recipients"][0]["variables"]

    event = decode_request_event(dumps(doc))

    assert isinstance(event, BroadcastRequested)
    assert event.chunk == Chunk(index=0, count=1)
    assert event.send_at is None
    assert event.recipients[0] == Recipient(phone="+628111222333")


def test_auto_sender_and_offsets_and_media() -> None:
    doc = design_request()
    doc["campaign_id"] = "C1F0E8B2-7D3A-4F6E-9A2B-3C4D5E6F7A8B"
    doc["sender"] = {"auto": True}
    doc["send_at"] = "2026-01-06T09:00:00+07:00"
    doc["template"]["components"].insert(
        0,
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://x.io/a.png"}}],
        },
    )
    doc["template"]["components"].append(
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "STOP"}],
        }
    )

    event = decode_request_event(dumps(doc))

    assert isinstance(event, BroadcastRequested)
    assert event.sender.is_auto
    assert event.campaign_key == "c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b"
    assert event.send_at == datetime(2026, 1, 6, 2, tzinfo=UTC)
    assert event.send_at.utcoffset() == timedelta(hours=7)
    header = event.template.components[0]
    assert header.parameters == [ImageParameter(image=MediaLink(link="https://x.io/a.png"))]
    assert decode_request_event(encode_request_event(event)) == event


def test_a_full_chunk_of_recipients_is_accepted() -> None:
    doc = design_request()
    doc["recipients"] = [{"phone": f"+6281{i:08d}"} for i in range(MAX_RECIPIENTS)]

    event = decode_request_event(dumps(doc))

    assert isinstance(event, BroadcastRequested)
    assert len(event.recipients) == MAX_RECIPIENTS


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+628111222333", True),
        ("+14155552671", True),
        ("+1234567", True),  # shortest: 7 digits
        ("+123456789012345", True),  # longest: 15 digits
        ("+123456", False),
        ("+1234567890123456", False),
        ("628111222333", False),
        ("+0811222333", False),
        ("+62 811 222 333", False),
        ("+62811222333\n", False),
        ("", False),
    ],
)
def test_is_e164(phone: str, expected: bool) -> None:
    assert is_e164(phone) is expected


# --- cross-field checks also guard Python construction ------------------------


def test_chunk_construction_checks_index_against_count() -> None:
    with pytest.raises(InvalidEvent) as info:
        Chunk(index=2, count=2)
    assert info.value.reason == "chunk_out_of_range"


@pytest.mark.parametrize(
    "kwargs", [{}, {"auto": True, "phone_number_id": "106540352242922"}], ids=["none", "both"]
)
def test_sender_construction_needs_exactly_one_form(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent) as info:
        Sender(**kwargs)
    assert info.value.reason == "invalid_sender"


def test_events_are_frozen() -> None:
    event = BroadcastPaused(campaign_id=uuid.uuid4())

    with pytest.raises(AttributeError):
        event.reason = "x"  # type: ignore[misc]


def test_encoded_datetimes_keep_their_offset() -> None:
    when = datetime(2026, 1, 6, 9, tzinfo=timezone(timedelta(hours=7)))
    doc = design_request()
    doc["send_at"] = when.isoformat()

    encoded = encode_request_event(decode_request_event(dumps(doc)))

    assert msgspec.json.decode(encoded)["send_at"] == "2026-01-06T09:00:00+07:00"
