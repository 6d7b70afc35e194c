"""Reading a send's answer: every shape an API might answer becomes a decision, never a crash."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.policy import Accepted, Answer, Retry, RetryPolicy, classify_response
from consumer.kirim.answers import (
    INVALID_ID,
    MISSING_ID,
    OVERSIZED,
    UNEXPECTED_STATUS,
    UNREADABLE,
    SendAnswer,
    printable,
    read_send_answer,
)

HEADERS = {"Content-Type": "application/json", "X-RateLimit-Limit": "600"}


def read(
    status: int, body: bytes, *, truncated: bool = False, headers: dict[str, str] | None = None
) -> SendAnswer:
    merged = {**HEADERS, **(headers or {})}
    return read_send_answer(status, body, truncated, merged.get)


OK = b'{"data": {"id": "msg_01HZX3K9Q2W8E5R7T1Y4U6I0PA", "status": "pending"}}'


@pytest.mark.parametrize(
    ("status", "body", "truncated", "message_id", "anomaly", "code"),
    [
        (200, OK, False, "msg_01HZX3K9Q2W8E5R7T1Y4U6I0PA", None, None),
        (202, OK, False, "msg_01HZX3K9Q2W8E5R7T1Y4U6I0PA", None, None),
        (200, b'{"data": {"status": "pending"}}', False, None, MISSING_ID, None),
        (200, b'{"data": null}', False, None, MISSING_ID, None),
        (200, b"", False, None, MISSING_ID, None),
        (200, b"OK", False, None, UNREADABLE, None),
        (200, b"<html><body>Bad gateway</body></html>", False, None, UNREADABLE, None),
        (200, b'{"data": {"id": 42}}', False, None, INVALID_ID, None),
        (200, b'{"data": {"id": "msg_\\u0000abc"}}', False, None, INVALID_ID, None),
        (200, b'{"data": {"id": "has space"}}', False, None, INVALID_ID, None),
        (200, b'{"data": {"id": "' + b"x" * 300 + b'"}}', False, None, INVALID_ID, None),
        (200, b'{"data": []}', False, None, UNREADABLE, None),
        (200, b'{"data": {"id": "msg_1"}, "pad": "' + b"x" * 100, True, None, OVERSIZED, None),
        (302, b"", False, None, UNEXPECTED_STATUS, None),
        (101, b"", False, None, UNEXPECTED_STATUS, None),
        # An error status decides by itself, whatever its body.
        (503, b"<html>down</html>", False, None, None, None),
        (500, b"x" * 100, True, None, None, None),
        (
            400,
            b'{"error": {"code": "invalid_phone_number", "message": "no"}}',
            False,
            None,
            None,
            "invalid_phone_number",
        ),
        (400, b'{"error": {"code": "Not A Code!", "message": "no"}}', False, None, None, None),
        (
            422,
            b'{"error": {"code": " ACCOUNT_NOT_CONNECTED", "message": "no"}}',
            False,
            None,
            None,
            "account_not_connected",
        ),
        (400, b'{"error": {"code": 17}}', False, None, None, None),
    ],
)
def test_every_shape_of_answer_is_read(
    status: int,
    body: bytes,
    truncated: bool,
    message_id: str | None,
    anomaly: str | None,
    code: str | None,
) -> None:
    answer = read(status, body, truncated=truncated)
    assert (answer.message_id, answer.anomaly, answer.error_code) == (message_id, anomaly, code)
    if anomaly is not None:
        assert answer.error_message is not None
        assert answer.error_message.startswith(anomaly)


def test_headers_that_are_not_numbers_are_ignored() -> None:
    answer = read(429, b"{}", headers={"Retry-After": "soon", "X-RateLimit-Remaining": "nan"})
    assert answer.retry_after is None
    assert answer.rate_remaining is None
    assert answer.rate_limit == 600.0


@pytest.mark.parametrize(
    ("retry_after", "date", "seconds"),
    [
        ("7", None, 7.0),
        ("-3", None, 0.0),
        ("Thu, 03 Dec 2026 09:00:30 GMT", "Thu, 03 Dec 2026 09:00:00 GMT", 30.0),
        ("Thu, 03 Dec 2026 08:59:00 GMT", "Thu, 03 Dec 2026 09:00:00 GMT", 0.0),
        # without the answer's Date: against our clock (this date is past)
        ("Thu, 03 Dec 2026 09:00:30 GMT", None, 0.0),
        ("whenever", "Thu, 03 Dec 2026 09:00:00 GMT", None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(
    retry_after: str, date: str | None, seconds: float | None
) -> None:
    headers = {"Retry-After": retry_after, **({"Date": date} if date else {})}
    assert read(429, b"{}", headers=headers).retry_after == seconds


def test_a_retry_after_date_without_the_answers_date_is_measured_on_our_clock() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = read(429, b"{}", headers={"Retry-After": later}).retry_after
    assert seconds is not None
    assert 25.0 <= seconds <= 30.0


def test_printable_masks_phone_numbers_and_escapes_control_characters() -> None:
    text = printable("to +628111222333 failed\x00\nagain")
    assert "628111222333" not in text
    assert "\x00" not in text
    assert "\n" not in text
    assert text.startswith("to +62")
    assert len(printable("x" * 1000)) == 300


@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=300))
def test_any_answer_reads_to_a_decision(status: int, body: bytes) -> None:
    answer = read(status, body)
    if answer.error_message is not None:
        assert "\x00" not in answer.error_message
    said = Answer(
        answer.status, answer.error_code, answer.retry_after, answer.message_id, answer.anomaly
    )
    decision = classify_response(said, 1, RetryPolicy(), random.Random(0))
    if isinstance(decision, Accepted):
        assert answer.message_id is not None
        assert 200 <= status < 300
    if 200 <= status < 300 and answer.message_id is None:
        assert isinstance(decision, Retry)
        assert decision.uncertain
    last = classify_response(said, RetryPolicy().max_attempts, RetryPolicy(), random.Random(0))
    # Bounded whatever the answer, but a 429: the budget's wait, never the recipient's try.
    if isinstance(last, Retry):
        assert status == 429
        assert last.rate_limited
