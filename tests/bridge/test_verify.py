"""`webhook_bridge.verify`: table-driven cases and properties of the pure signature check."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook_bridge.verify import (
    MAX_SIGNATURES,
    expected_digest,
    parse_header,
    sign,
    verify,
)

NOW = 1_716_480_000
BODY = b'{"object":"whatsapp_business_account","entry":[]}'
KEY = b"whsec_current"
OLD_KEY = b"whsec_previous"
GOOD = expected_digest(KEY, str(NOW), BODY)
OLD = expected_digest(OLD_KEY, str(NOW), BODY)


def check(header: str | None, *, body: bytes = BODY, keys: tuple[bytes, ...] = (KEY,)) -> str:
    verdict = verify(header, body, keys, now=NOW, tolerance=300)
    return "ok" if verdict.ok else str(verdict.reason)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"t={NOW},v1={GOOD}", "ok"),
        (f" t={NOW} , v1={GOOD} ", "ok"),
        (f"v1={GOOD},t={NOW}", "ok"),
        (f"t={NOW},v1={GOOD.upper()}", "ok"),
        (f"t={NOW},v0=abc,v1={GOOD}", "ok"),
        (f"t={NOW},v1={GOOD},", "ok"),
        (f"t={NOW},v1={'0' * 64},v1={GOOD}", "ok"),
        (f"t={NOW - 300},v1={expected_digest(KEY, str(NOW - 300), BODY)}", "ok"),
        (f"t={NOW + 300},v1={expected_digest(KEY, str(NOW + 300), BODY)}", "ok"),
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("garbage", "malformed"),
        (f"t={NOW}", "malformed"),
        (f"v1={GOOD}", "malformed"),
        (f"t=,v1={GOOD}", "malformed"),
        (f"t=-5,v1={GOOD}", "malformed"),
        (f"t=1.5,v1={GOOD}", "malformed"),
        (f"t={NOW},t={NOW},v1={GOOD}", "malformed"),
        (f"t={NOW},v1={GOOD[:-1]}", "malformed"),
        (f"t={NOW},v1={GOOD[:32]}", "malformed"),
        (f"t={NOW},v1={GOOD}0", "malformed"),
        (f"t={NOW},v1={'z' * 64}", "malformed"),
        (f"t={NOW},v1", "malformed"),
        (f"t={NOW}," + ",".join([f"v1={GOOD}"] * (MAX_SIGNATURES + 1)), "malformed"),
        (f"t={NOW},v1={GOOD}" + " " * 5000, "malformed"),
        (f"t={NOW - 301},v1={expected_digest(KEY, str(NOW - 301), BODY)}", "stale"),
        (f"t=0,v1={expected_digest(KEY, '0', BODY)}", "stale"),
        (f"t={NOW + 301},v1={expected_digest(KEY, str(NOW + 301), BODY)}", "future_dated"),
        (f"t={NOW},v1={'0' * 64}", "mismatch"),
        (f"t={NOW},v1={OLD}", "mismatch"),
        # Signed over another timestamp than the one it claims.
        (f"t={NOW},v1={expected_digest(KEY, str(NOW - 1), BODY)}", "mismatch"),
        # Leading zeros are other bytes than the ones signed.
        (f"t=0{NOW},v1={GOOD}", "mismatch"),
    ],
)
def test_header_cases(header: str | None, expected: str) -> None:
    assert check(header) == expected


def test_a_changed_body_does_not_verify() -> None:
    assert check(f"t={NOW},v1={GOOD}", body=BODY + b" ") == "mismatch"
    assert check(f"t={NOW},v1={GOOD}", body=b"") == "mismatch"


def test_rotation_accepts_any_configured_secret_against_any_digest() -> None:
    both = f"t={NOW},v1={OLD},v1={GOOD}"
    assert check(both, keys=(KEY,)) == "ok"
    assert check(both, keys=(OLD_KEY,)) == "ok"
    assert check(f"t={NOW},v1={OLD}", keys=(KEY, OLD_KEY)) == "ok"
    assert check(f"t={NOW},v1={GOOD}", keys=(OLD_KEY, KEY)) == "ok"
    assert check(f"t={NOW},v1={GOOD}", keys=(OLD_KEY,)) == "mismatch"


def test_the_key_is_the_secrets_full_utf8_string() -> None:
    secret = "whsec_ünïcode"
    digest = hmac.new(secret.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert check(f"t={NOW},v1={digest}", keys=(secret.encode(),)) == "ok"
    # Without the prefix it is another key.
    assert check(f"t={NOW},v1={digest}", keys=(b"\xc3\xbcnicode",)) == "mismatch"


def test_parse_keeps_the_timestamp_digits_and_lowercases_digests() -> None:
    parsed = parse_header(f"t=0042,v1={GOOD.upper()},v2=x")
    assert parsed is not None
    assert parsed.timestamp == "0042"
    assert parsed.digests == (GOOD,)


@given(
    body=st.binary(max_size=2048),
    secrets=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=3, unique=True),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_what_kirim_signs_verifies(body: bytes, secrets: list[str], skew: int) -> None:
    keys = [secret.encode() for secret in secrets]
    header = sign(body, keys, NOW + skew)
    assert verify(header, body, keys, now=NOW, tolerance=300).ok
    # Any one of the secrets alone is enough (rotation).
    assert verify(header, body, keys[-1:], now=NOW, tolerance=300).ok


@given(
    body=st.binary(min_size=1, max_size=512),
    index=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_changed_byte_fails(body: bytes, index: int, flip: int) -> None:
    header = sign(body, [KEY], NOW)
    position = index % len(body)
    tampered = bytearray(body)
    tampered[position] ^= flip
    verdict = verify(header, bytes(tampered), [KEY], now=NOW, tolerance=300)
    assert verdict.reason == "mismatch"


@given(
    skew=st.integers(min_value=301, max_value=10**9),
    future=st.booleans(),
)
def test_outside_the_tolerance_is_refused_whatever_the_signature(skew: int, future: bool) -> None:
    stamp = NOW + skew if future else max(NOW - skew, 0)
    header = sign(BODY, [KEY], stamp)
    verdict = verify(header, BODY, [KEY], now=NOW, tolerance=300)
    assert verdict.reason == ("future_dated" if future else "stale")


@given(header=st.text(max_size=300))
def test_arbitrary_headers_never_raise_and_never_pass(header: str) -> None:
    verdict = verify(header, BODY, [KEY], now=NOW, tolerance=300)
    assert not verdict.ok
