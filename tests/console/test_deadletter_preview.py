"""Dead letters as the console reads them (record_of), shows them (preview), and the
sign-in's redirect target (_safe_next): pure functions of their inputs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import RedirectResponse

from console.deadletters import record_of
from console.pages.deadletters import PREVIEW_CHARS, preview
from console.pages.session import _safe_next
from schemas.deadletter import HEADER_NAMES, DeadLetter

LETTER = DeadLetter(
    reason="schema_violation",
    detail="Expected `str`, got `int` - at `$.recipients[3].phone`",
    source_topic="broadcast.requests",
    source_partition=2,
    source_offset=41_977,
    failed_at=datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC),
    service="consumer",
)
WRITTEN_MS = 1_767_607_200_123  # 2026-01-05T10:00:00.123Z


# --- record_of -----------------------------------------------------------------------


def test_a_dead_letter_envelope_is_read() -> None:
    record = record_of(
        3,
        17,
        key=b"campaign-key",
        value=b'{"type": "x"}',
        timestamp_ms=WRITTEN_MS,
        headers=LETTER.to_headers(),
    )
    assert record.letter == LETTER
    assert record.problem is None
    assert record.reason == "schema_violation"
    assert (record.partition, record.offset) == (3, 17)
    assert record.key == b"campaign-key"
    assert record.value == b'{"type": "x"}'
    assert record.written_at == datetime(2026, 1, 5, 10, 0, 0, 123000, tzinfo=UTC)


def test_original_headers_ahead_of_the_envelope_do_not_shadow_it() -> None:
    forged = [(name, b"forged") for name in HEADER_NAMES]
    record = record_of(
        0,
        0,
        key=None,
        value=None,
        timestamp_ms=0,
        headers=[("traceparent", b"00-abc"), *forged, *LETTER.to_headers()],
    )
    assert record.letter == LETTER
    assert record.key is None
    assert record.value == b""  # a value dropped for its size
    assert record.written_at == datetime(1970, 1, 1, tzinfo=UTC)


def _without(name: str) -> list[tuple[str, bytes]]:
    return [(n, v) for n, v in LETTER.to_headers() if n != name]


def _with(name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in LETTER.to_headers()]


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([], "missing header `dlq.reason`"),
        ([("content-type", b"application/json")], "missing header `dlq.reason`"),
        *[(_without(name), f"missing header `{name}`") for name in HEADER_NAMES],
        (_with("dlq.reason", b"\xff\xfe"), "header `dlq.reason` is not UTF-8"),
        (_with("dlq.source.offset", b"\xc3"), "header `dlq.source.offset` is not UTF-8"),
        (_with("dlq.source.partition", b"two"), "malformed dlq header: invalid literal"),
        (_with("dlq.source.offset", b""), "malformed dlq header: invalid literal"),
        (_with("dlq.failed_at", b"yesterday"), "malformed dlq header: Invalid isoformat"),
        (_with("dlq.failed_at", b"2026-01-05T10:00:00"), "header `dlq.failed_at` has no timezone"),
    ],
)
def test_an_unreadable_envelope_is_kept_with_its_problem(
    headers: list[tuple[str, bytes]], problem: str
) -> None:
    record = record_of(1, 5, key=None, value=b"\x00raw", timestamp_ms=WRITTEN_MS, headers=headers)
    assert record.letter is None
    assert record.problem is not None
    assert record.problem.startswith(problem)
    assert record.reason == "unreadable_envelope"
    assert record.value == b"\x00raw"
    assert record.written_at == datetime.fromtimestamp(WRITTEN_MS / 1000, UTC)


# --- preview -------------------------------------------------------------------------

PAYLOAD = (
    '{"type":"campaign_chunk","recipients":[{"phone":"+6281234567890"},'
    '{"phone":"6281298765432"},{"phone":"+6834002"}],"chunk_index":3,"count":120}'
)


def test_an_operator_sees_the_payload_as_it_is() -> None:
    assert preview(PAYLOAD.encode(), masked=False) == PAYLOAD


def test_a_viewer_sees_numbers_masked() -> None:
    shown = preview(PAYLOAD.encode(), masked=True)
    assert shown == (
        '{"type":"campaign_chunk","recipients":[{"phone":"+62812*****890"},'
        '{"phone":"628129****432"},{"phone":"********"}],"chunk_index":3,"count":120}'
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("+6281234567890", "+62812*****890"),
        ("call 6281234567890 now", "call 628123****890 now"),
        ("+6281234567890,+6281298765432", "+62812*****890,+62812*****432"),
        # Every E.164 length, 7 to 15 digits: none shows whole.
        ("+6834002", "********"),
        ("+68340021", "*********"),
        ("+628123456", "+62812*456"),
        ("+628123456789012", "+62812*******012"),
        # A run too long for one number is masked whole all the same.
        ("12345678901234567890", "123456***********890"),
        # Short digit runs are not numbers: counts, offsets, indexes stay readable.
        ('"count":123456', '"count":123456'),
        ("2026-01-05T10:00:00+00:00", "2026-01-05T10:00:00+00:00"),
        ("", ""),
    ],
)
def test_masking(text: str, shown: str) -> None:
    assert preview(text.encode(), masked=True) == shown
    assert preview(text.encode(), masked=False) == text


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcdef ..."),
        ("abc", 0, " ..."),
        ("", 0, ""),
        ("é" * 10, 4, "éééé ..."),  # characters, not bytes
    ],
)
def test_truncation(text: str, limit: int, shown: str) -> None:
    assert preview(text.encode(), masked=False, limit=limit) == shown


def test_the_default_limit() -> None:
    text = "x" * (PREVIEW_CHARS + 1)
    assert preview(text.encode(), masked=False) == "x" * PREVIEW_CHARS + " ..."
    assert preview(text[:-1].encode(), masked=False) == text[:-1]


def test_a_number_at_the_limit_is_masked_before_the_cut() -> None:
    shown = preview(b"xxxxx+6281234567890", masked=True, limit=12)
    assert shown == "xxxxx+62812* ..."


@pytest.mark.parametrize(
    ("value", "plain", "masked"),
    [
        (b"\xff\xfe{}", "\ufffd\ufffd{}", "\ufffd\ufffd{}"),
        (b'{"name":"caf\xc3"}', '{"name":"caf\ufffd"}', '{"name":"caf\ufffd"}'),  # a cut character
        (b"\xc3\xa9", "é", "é"),
        (b"\x00\x01", "\x00\x01", "\x00\x01"),
        (b"+62812345\xff67890", "+62812345\ufffd67890", "*********\ufffd67890"),
        (b"\xff+6281234567890\xfe", "\ufffd+6281234567890\ufffd", "\ufffd+62812*****890\ufffd"),
    ],
)
def test_invalid_utf8_is_shown_replaced(value: bytes, plain: str, masked: str) -> None:
    assert preview(value, masked=False) == plain
    assert preview(value, masked=True) == masked


payloads = st.lists(
    st.text(max_size=20)
    | st.builds(lambda digits: "+" + digits, st.text("0123456789", min_size=6, max_size=16))
    | st.text("0123456789", min_size=1, max_size=20),
    max_size=8,
).map("".join)


@given(payloads)
def test_a_viewer_never_sees_seven_digits_in_a_row(text: str) -> None:
    value = text.encode("utf-8", "surrogatepass")
    for limit in (PREVIEW_CHARS, 10**9):
        shown = preview(value, masked=True, limit=limit)
        assert re.search(r"\d{7,}", shown) is None, shown


@given(payloads)
def test_masking_keeps_the_text_around_the_numbers(text: str) -> None:
    value = text.encode("utf-8", "surrogatepass")
    plain = preview(value, masked=False, limit=10**9)
    shown = preview(value, masked=True, limit=10**9)
    assert len(shown) == len(plain)
    assert all(s in ("*", p) for s, p in zip(shown, plain, strict=True))


# --- _safe_next ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        (None, "/campaigns"),
        ("", "/campaigns"),
        ("/", "/"),
        ("/campaigns", "/campaigns"),
        ("/campaigns/5f0c/recipients?status=failed&page=2", None),
        ("/dead-letters?done=ok%3A+published#top", None),
        ("/a//b", None),
        ("https://evil.example/", "/campaigns"),
        ("http:/evil.example", "/campaigns"),
        ("HTTP://evil.example", "/campaigns"),
        ("javascript:alert(1)", "/campaigns"),
        ("data:text/html,hi", "/campaigns"),
        ("//evil.example", "/campaigns"),
        ("///evil.example", "/campaigns"),
        ("//evil.example/campaigns", "/campaigns"),
        ("evil.example", "/campaigns"),
        ("campaigns", "/campaigns"),
        (" /campaigns", "/campaigns"),
        ("\\\\evil.example", "/campaigns"),
        ("/\t/evil.example", "/campaigns"),  # urlsplit drops tabs: //evil.example
        ("/\n/evil.example", "/campaigns"),
        ("/\r/evil.example", "/campaigns"),
        ("?next=//evil.example", "/campaigns"),
        ("#//evil.example", "/campaigns"),
    ],
)
def test_safe_next(target: str | None, kept: str | None) -> None:
    assert _safe_next(target) == (target if kept is None else kept)


def _leaves_the_site(location: str) -> bool:
    """How a browser reads a Location (WHATWG URL): C0 controls and spaces trimmed, tabs
    and newlines removed, a backslash read as a slash; a scheme or two slashes leave."""
    url = location.strip("".join(map(chr, range(0x21))))
    url = re.sub("[\t\n\r]", "", url)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url):
        return True
    return len(url) >= 2 and url[0] in "/\\" and url[1] in "/\\"


@pytest.mark.parametrize(
    "target", ["/\\evil.example", "/\\/evil.example", "/%5C%5Cevil.example", "/\x00/evil"]
)
def test_a_backslash_path_stays_a_path_in_the_redirect(target: str) -> None:
    # _safe_next keeps it, and the redirect percent-encodes the backslash: no way out.
    location = RedirectResponse(_safe_next(target), status_code=303).headers["location"]
    assert location.startswith("/")
    assert not _leaves_the_site(location)


_tricky = st.sampled_from(["/", "//", "/\\", "\\", "\\/", " ", "\t", "/\t/", "http:", "%2F", "."])
targets = st.lists(_tricky | st.text(st.characters(codec="utf-8"), max_size=8), max_size=5).map(
    "".join
)


@given(targets)
def test_a_redirect_never_leaves_the_site(target: str) -> None:
    safe = _safe_next(target)
    assert safe == "/campaigns" or safe == target
    location = RedirectResponse(safe, status_code=303).headers["location"]
    assert location.startswith("/")
    assert not _leaves_the_site(location), (target, location)
