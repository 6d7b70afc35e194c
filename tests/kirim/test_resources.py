"""Reading the GET answers leniently: every encoding the contract allows, nonsense as
None, one unreadable account left out of the list rather than failing it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.tiers import UNLIMITED, parse_tier
from consumer.kirim.resources import (
    Account,
    AccountList,
    MessageState,
    SkippedAccounts,
    parse_accounts,
    parse_message,
    parse_rate_limits,
    per_minute,
    provider_code,
)

ID = "106540352242922"


def accounts_body(*items: object) -> bytes:
    return msgspec.json.encode({"data": list(items), "has_more": False})


def one_account(**fields: Any) -> Account:
    listing = parse_accounts(accounts_body({"phone_number_id": ID, **fields}))
    assert listing.skipped == []
    [account] = listing.accounts
    return account


@pytest.mark.parametrize(
    ("raw_id", "parsed"),
    [
        (ID, ID),
        (int(ID), ID),
        (f" {ID} ", ID),
        ("1234567\n", "1234567"),
        ("123456", "123456"),
        ("9" * 20, "9" * 20),
    ],
)
def test_phone_number_id_as_string_or_number(raw_id: object, parsed: str) -> None:
    assert one_account(phone_number_id=raw_id).phone_number_id == parsed


@pytest.mark.parametrize(
    ("status", "parsed", "connected"),
    [
        ("connected", "connected", True),
        ("Connected", "connected", True),
        (" CONNECTED\n", "connected", True),
        ("disconnected", "disconnected", False),
        ("Degraded", "degraded", False),
        (None, "unknown", False),
        (1, "unknown", False),
        (["connected"], "unknown", False),
    ],
)
def test_status_is_normalised(status: object, parsed: str, connected: bool) -> None:
    account = one_account(status=status)
    assert (account.status, account.connected) == (parsed, connected)


def test_a_missing_status_is_unknown() -> None:
    assert one_account().status == "unknown"


def test_connected_is_normalised_on_hand_built_accounts_too() -> None:
    assert Account(ID, " Connected ", None).connected
    assert not Account(ID, "disconnected", None).connected


@pytest.mark.parametrize(
    ("tier", "parsed"),
    [
        (1000, 1000),
        (1000.0, 1000),
        ("1000", 1000),
        ("1000.0", 1000),
        (" 10000 ", 10_000),
        ("TIER_1K", 1000),
        ("tier_100k", 100_000),
        ("unlimited", UNLIMITED),
        (10**30, UNLIMITED),
        (None, None),
        (True, None),
        (250.5, None),
        ("250.5", None),
        ("nan", None),
        ("inf", None),
        ("-5", None),
        (0, None),
        ("²", None),
        ("platinum", None),
        ({"limit": 1000}, None),
        ([1000], None),
    ],
)
def test_messaging_tier_of_any_json_type(tier: object, parsed: int | None) -> None:
    assert one_account(messaging_tier=tier).tier == parsed


@pytest.mark.parametrize(
    ("quality", "parsed"),
    [
        ("GREEN", "GREEN"),
        ("yellow", "YELLOW"),
        (" Red ", "RED"),
        (None, None),
        ("", None),
        (3, None),
    ],
)
def test_quality_rating_is_upper_case_or_none(quality: object, parsed: str | None) -> None:
    assert one_account(quality_rating=quality).quality_rating == parsed


def test_one_unreadable_account_is_left_out_and_the_rest_kept() -> None:
    good = {"phone_number_id": ID, "status": "connected", "messaging_tier": 1000}
    other = {"phone_number_id": 106540352242933, "status": "Connected", "messaging_tier": "2000"}
    listing = parse_accounts(
        accounts_body(
            good,
            None,
            "106540352242944",
            {"status": "connected"},
            {"phone_number_id": 1.5e14},
            {"phone_number_id": True},
            {"phone_number_id": "abc123456"},
            {"phone_number_id": "12345"},
            {"phone_number_id": "1234 567"},
            {"phone_number_id": "9" * 21},
            {"phone_number_id": "1234567\x00"},
            other,
        )
    )
    assert listing.accounts == [
        Account(ID, "connected", 1000),
        Account("106540352242933", "connected", 2000),
    ]
    assert len(listing.skipped) == 10
    assert "phone_number_id" in listing.skipped[2]


def test_a_field_beyond_a_double_costs_only_itself() -> None:
    body = b'{"data": [{"phone_number_id": "106540352242922", "messaging_tier": 1e400}]}'
    [account] = parse_accounts(body).accounts
    assert (account.phone_number_id, account.tier) == (ID, None)


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"not json", b'{"data": null}', b'{"data": {}}', b'{"items": []}', b'{"data": ['],
)
def test_a_body_without_a_list_is_unreadable(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        parse_accounts(body)


def me(limits: object) -> bytes:
    return msgspec.json.encode({"data": {"rate_limits": limits}})


@pytest.mark.parametrize(
    ("write", "read", "parsed"),
    [
        (600, 6000, (600, 6000)),
        (600.0, 6000.0, (600, 6000)),
        ("600", "6000", (600, 6000)),
        (" 600.0 ", "6e3", (600, 6000)),
        (60.9, None, (60, None)),
        ("lots", 0, (None, None)),
        (-60, "-1", (None, None)),
        (True, False, (None, None)),
        ("nan", "inf", (None, None)),
        (0.5, [600], (None, None)),
        ({"per_minute": 600}, "", (None, None)),
    ],
)
def test_rate_limits_of_any_numeric_encoding(
    write: object, read: object, parsed: tuple[int | None, int | None]
) -> None:
    limits = {"tier": "pro", "write_per_minute": write, "read_per_minute": read}
    assert parse_rate_limits(me(limits)) == parsed


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [(600, 600), ("600", 600), (1e300, int(1e300)), (10**400, None), ("9" * 400, None)],
)
def test_per_minute_at_the_edges_of_a_double(raw: object, parsed: int | None) -> None:
    assert per_minute(raw) == parsed


@pytest.mark.parametrize("limits", [None, "pro", [600, 6000], {}, {"tier": "free"}])
def test_rate_limits_not_given_are_none(limits: object) -> None:
    assert parse_rate_limits(me(limits)) == (None, None)


def test_rate_limits_absent_and_one_field_beyond_a_double() -> None:
    assert parse_rate_limits(b'{"data": {}}') == (None, None)
    body = b'{"data": {"rate_limits": {"write_per_minute": 1e400, "read_per_minute": 600}}}'
    assert parse_rate_limits(body) == (None, 600)
    huge = b"9" * 400
    body = b'{"data": {"rate_limits": {"write_per_minute": ' + huge + b', "read_per_minute": 6}}}'
    assert parse_rate_limits(body) == (None, 6)


@pytest.mark.parametrize("body", [b"", b"{}", b'{"data": null}', b'{"data": "x"}', b"<html>"])
def test_an_unreadable_me_body_raises(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        parse_rate_limits(body)


def message(**data: Any) -> bytes:
    return msgspec.json.encode({"data": {"id": "msg_01HZX3K9Q2W8E5R7T1Y4U6I0PA", **data}})


@pytest.mark.parametrize(
    ("data", "state"),
    [
        (
            {"status": "failed", "to": "+628111222333",
             "error": {"code": "quota_exceeded", "message": "full", "provider_code": 131048}},
            MessageState("failed", "quota_exceeded", 131048, "+628111222333"),
        ),
        (
            {"status": "FAILED", "error": {"code": "quota_exceeded", "provider_code": "131048"}},
            MessageState("failed", "quota_exceeded", 131048),
        ),
        (
            {"status": " Delivered ", "error": None, "provider_id": "wamid.x"},
            MessageState("delivered", None, None),
        ),
        (
            {"status": "failed", "error": {"code": None, "provider_code": 131048.0}},
            MessageState("failed", None, 131048),
        ),
        (
            {"status": "failed", "to": 628111222333,
             "error": {"code": 131048, "provider_code": "unknown"}},
            MessageState("failed", None, None),
        ),
        (
            {"status": "failed", "error": {"code": "x", "provider_code": [131048]}},
            MessageState("failed", "x", None),
        ),
        ({"status": "failed", "error": "quota_exceeded"}, MessageState("failed", None, None)),
        ({"status": "read", "error": []}, MessageState("read", None, None)),
        ({"status": None}, MessageState(None, None, None)),
        ({}, MessageState(None, None, None)),
    ],
)  # fmt: skip
def test_message_fields_of_unexpected_types_cost_only_themselves(
    data: dict[str, Any], state: MessageState
) -> None:
    assert parse_message(message(**data)) == state


def test_a_provider_code_beyond_a_double_costs_only_itself() -> None:
    body = b'{"data": {"status": "failed", "error": {"code": "c", "provider_code": 1e400}}}'
    assert parse_message(body) == MessageState("failed", "c", None)


@pytest.mark.parametrize(
    "body", [message(status=3), message(status=["failed"]), b'{"data": null}', b"{}", b"nope"]
)
def test_a_message_without_a_readable_status_raises(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        parse_message(body)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (131048, 131048),
        ("131048", 131048),
        (" 1006 ", 1006),
        (131048.0, 131048),
        (131048.5, None),
        ("131048.0", None),
        ("-1", None),
        (0, None),
        (True, None),
        ("¹²³", None),
        ("9" * 19, None),
        (10**30, None),
        (None, None),
    ],
)
def test_provider_code(raw: object, parsed: int | None) -> None:
    assert provider_code(raw) == parsed


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**300, max_value=10**400),
        st.floats(),
        st.text(),
        st.binary(),
    )
)
def test_the_lenient_readers_never_raise(value: object) -> None:
    for read in (per_minute, provider_code, parse_tier):
        result = read(value)
        assert result is None or (isinstance(result, int) and result > 0)


def test_skipped_accounts_are_reported_once_per_change() -> None:
    skipped = SkippedAccounts()
    seen = [
        skipped.news(AccountList([], reasons))
        for reasons in (["a"], ["a"], ["a", "b"], [], [], ["a"])
    ]
    assert seen == [["a"], [], ["a", "b"], [], [], ["a"]]
