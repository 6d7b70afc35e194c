"""The dead-letter header envelope: names, bounds and round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.deadletter import HEADER_NAMES, MAX_DETAIL_CHARS, DeadLetter, truncate_detail
from schemas.errors import InvalidEvent
from tests.schemas.strategies import aware_datetimes, text

LETTER = DeadLetter(
    reason="schema_violation",
    detail="Expected `str`, got `int` - at `$.recipients[3].phone`",
    source_topic="broadcast.requests",
    source_partition=2,
    source_offset=41_977,
    failed_at=datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC),
    service="consumer",
)


def test_header_names_and_values() -> None:
    assert LETTER.to_headers() == [
        ("dlq.reason", b"schema_violation"),
        ("dlq.detail", b"Expected `str`, got `int` - at `$.recipients[3].phone`"),
        ("dlq.source.topic", b"broadcast.requests"),
        ("dlq.source.partition", b"2"),
        ("dlq.source.offset", b"41977"),
        ("dlq.failed_at", b"2026-01-05T10:00:00.123456+00:00"),
        ("dlq.service", b"consumer"),
    ]


def test_round_trip() -> None:
    assert DeadLetter.from_headers(LETTER.to_headers()) == LETTER


@given(
    reason=text(0, 30),
    detail=text(0, MAX_DETAIL_CHARS),
    topic=text(0, 30),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
    failed_at=aware_datetimes,
    service=text(0, 30),
)
def test_round_trip_property(
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    failed_at: datetime,
    service: str,
) -> None:
    letter = DeadLetter(
        reason=reason,
        detail=detail,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        failed_at=failed_at,
        service=service,
    )

    assert DeadLetter.from_headers(letter.to_headers()) == letter


def test_long_detail_is_truncated_to_the_bound() -> None:
    letter = msgspec.structs.replace(LETTER, detail="é" * 5000)

    detail = dict(letter.to_headers())["dlq.detail"].decode()

    assert len(detail) == MAX_DETAIL_CHARS
    assert detail.endswith("...")
    assert DeadLetter.from_headers(letter.to_headers()).detail == detail


@pytest.mark.parametrize(
    ("detail", "expected"), [("abc", "abc"), ("abcd", "abcd"), ("abcde", "a..."), ("", "")]
)
def test_truncate_detail(detail: str, expected: str) -> None:
    assert truncate_detail(detail, limit=4) == expected


def test_other_headers_are_ignored_and_the_last_occurrence_wins() -> None:
    headers = [
        ("traceparent", b"00-abc"),
        ("dlq.reason", b"stale-copy-of-an-older-rejection"),
        ("dlq.unknown", None),
        *LETTER.to_headers(),
    ]

    assert DeadLetter.from_headers(headers) == LETTER


def test_offset_failed_at_round_trips_as_the_same_instant() -> None:
    jakarta = datetime(2026, 1, 5, 17, tzinfo=timezone(timedelta(hours=7)))
    letter = msgspec.structs.replace(LETTER, failed_at=jakarta)

    back = DeadLetter.from_headers(letter.to_headers())

    assert back.failed_at == jakarta
    assert back.failed_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("name", HEADER_NAMES)
def test_missing_header(name: str) -> None:
    headers = [(n, v) for n, v in LETTER.to_headers() if n != name]

    with pytest.raises(InvalidEvent, match=f"missing header `{name}`") as info:
        DeadLetter.from_headers(headers)
    assert info.value.reason == "schema_violation"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("dlq.source.offset", b"forty-one"),
        ("dlq.source.partition", b""),
        ("dlq.failed_at", b"yesterday"),
        ("dlq.failed_at", b"2026-01-05T10:00:00"),
        ("dlq.reason", b"\xff"),
        ("dlq.service", None),
    ],
)
def test_malformed_header(name: str, value: bytes | None) -> None:
    headers = [*LETTER.to_headers(), (name, value)]

    with pytest.raises(InvalidEvent) as info:
        DeadLetter.from_headers(headers)
    assert info.value.reason == "schema_violation"


def test_failed_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DeadLetter(
            reason="r",
            detail="d",
            source_topic="t",
            source_partition=0,
            source_offset=0,
            failed_at=datetime(2026, 1, 5),
            service="s",
        )
