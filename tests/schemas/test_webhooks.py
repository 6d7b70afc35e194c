"""The lenient `message.status` webhook view and its flattening into `StatusUpdate`s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.errors import InvalidEvent
from schemas.webhooks import (
    KNOWN_STATUSES,
    StatusUpdate,
    decode_status_webhook,
    is_status_event,
    status_updates,
    unix_seconds,
)
from tests.schemas.samples import kirim_status_webhook


def updates(doc: Any) -> list[StatusUpdate]:
    return status_updates(decode_status_webhook(json.dumps(doc).encode()))


def status(wamid: str, state: str, timestamp: str = "1716480010", **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": state, "timestamp": timestamp, "recipient_id": "628111", **extra}


def body(*statuses: dict[str, Any], kirim: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "waba", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "628", "phone_number_id": "106540352242922"},
            "statuses": list(statuses),
        }}]}],
    }  # fmt: skip
    if kirim is not None:
        doc["kirim"] = kirim
    return doc


def test_kirim_docs_sample() -> None:
    webhook = decode_status_webhook(json.dumps(kirim_status_webhook()).encode())

    assert webhook.object == "whatsapp_business_account"
    assert webhook.kirim is not None
    assert webhook.kirim.message_id == "msg_..."
    assert status_updates(webhook) == [
        StatusUpdate(
            message_id="msg_...",
            wamid="wamid.HBgN...",
            phone_number_id="106540352242922",
            status="delivered",
            occurred_at=1716480010,
            recipient_id="628111222333",
            # Kirim's error classification applies to `failed` statuses only
            error_code=None,
            provider_code=131026,
            error_message="...",
        )
    ]


def test_failed_status_carries_kirim_and_meta_errors() -> None:
    meta_error = {
        "code": 131026,
        "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": {"details": "Receiver is incapable of receiving this message"},
    }
    doc = body(
        status("wamid.A", "failed", errors=[meta_error]),
        kirim={
            "message_id": "msg_01HX",
            "phone_number_id": "106540352242922",
            "error": {"code": "recipient_not_on_whatsapp", "provider_code": 131026},
        },
    )

    [update] = updates(doc)

    assert update.status == "failed"
    assert update.error_code == "recipient_not_on_whatsapp"
    assert update.provider_code == 131026
    assert update.error_message == "Receiver is incapable of receiving this message"


def test_failed_status_without_kirim_error_uses_meta_code_and_message() -> None:
    doc = body(status("wamid.A", "failed", errors=[{"code": "131048", "title": "Spam rate"}]))

    [update] = updates(doc)

    assert (update.error_code, update.provider_code, update.error_message) == (
        None,
        131048,
        "Spam rate",
    )


def test_several_statuses_each_become_an_update_with_the_kirim_message_id() -> None:
    doc = body(
        status("wamid.A", "sent", "1716480000"),
        status("wamid.A", "delivered", "1716480010"),
        kirim={"message_id": "msg_01HX", "error": {"code": "quota_exceeded"}},
    )
    doc["entry"].append(
        {"changes": [{"value": {"statuses": [status("wamid.A", "read", "1716480099")]}}]}
    )

    result = updates(doc)

    assert [(u.status, u.occurred_at) for u in result] == [
        ("sent", 1716480000),
        ("delivered", 1716480010),
        ("read", 1716480099),
    ]
    assert {u.message_id for u in result} == {"msg_01HX"}
    assert {u.error_code for u in result} == {None}  # none of them failed
    # the last entry has no metadata and there is no kirim phone_number_id
    assert [u.phone_number_id for u in result] == ["106540352242922", "106540352242922", None]


def test_statuses_of_other_messages_in_one_body_keep_only_their_wamid() -> None:
    # Meta batches statuses of several messages; the kirim block names one of them.
    doc = body(
        status("wamid.A", "failed", errors=[{"code": 131026}]),
        status("wamid.B", "failed", errors=[{"code": 131049}]),
        kirim={"message_id": "msg_A", "phone_number_id": "1065", "error": {"code": "x"}},
    )

    a, b = updates(doc)

    assert (a.message_id, a.phone_number_id, a.error_code, a.provider_code) == (
        "msg_A", "1065", "x", 131026,
    )  # fmt: skip
    assert (b.message_id, b.phone_number_id, b.error_code, b.provider_code) == (
        None, "106540352242922", None, 131049,
    )  # fmt: skip


def test_the_delivery_event_id_says_which_message_the_kirim_block_names() -> None:
    doc = body(status("wamid.A", "read"), status("wamid.B", "read"), kirim={"message_id": "msg_B"})
    webhook = decode_status_webhook(json.dumps(doc).encode())

    named = {u.wamid: u.message_id for u in status_updates(webhook, "wamid.B")}
    # an event id that names none of the statuses: the first one's
    unnamed = {u.wamid: u.message_id for u in status_updates(webhook, "wamid.Z")}

    assert named == {"wamid.A": None, "wamid.B": "msg_B"}
    assert unnamed == {"wamid.A": "msg_B", "wamid.B": None}


@pytest.mark.parametrize("path", ["errors", "statuses", "changes", "entry"])
def test_a_list_given_as_null_reads_as_empty(path: str) -> None:
    doc = body(status("wamid.A", "delivered", errors=None), kirim={"message_id": "msg_1"})
    if path == "statuses":
        doc["entry"][0]["changes"][0]["value"]["statuses"] = None
    elif path == "changes":
        doc["entry"][0]["changes"] = None
    elif path == "entry":
        doc["entry"] = None

    result = updates(doc)

    assert [u.message_id for u in result] == (["msg_1"] if path == "errors" else [])


def test_missing_kirim_block() -> None:
    [update] = updates(body(status("wamid.A", "delivered")))

    assert update.message_id is None
    assert update.wamid == "wamid.A"
    assert update.phone_number_id == "106540352242922"
    assert update.error_code is None
    assert update.provider_code is None
    assert update.error_message is None


def test_unknown_fields_and_statuses_are_kept_lenient() -> None:
    doc = body(
        status(
            "wamid.A",
            "deleted",  # not one Meta documents today: kept as is, not rejected
            conversation={"id": "c", "origin": {"type": "marketing"}},
            pricing={"billable": True, "category": "marketing"},
            biz_opaque_callback_data="x",
        ),
        kirim={"message_id": "msg_1", "organisation_id": "org_1", "error": None},
    )
    doc["new_top_level"] = [1, 2]
    doc["entry"][0]["time"] = 1716480010
    doc["entry"][0]["changes"][0]["value"]["contacts"] = [{"wa_id": "628111"}]

    [update] = updates(doc)

    assert update.status == "deleted"
    assert update.status not in KNOWN_STATUSES
    assert update.message_id == "msg_1"


@pytest.mark.parametrize(
    "doc",
    [{}, {"object": "whatsapp_business_account"}, {"entry": [{"changes": [{"field": "x"}]}]}],
)
def test_bodies_without_statuses_give_no_updates(doc: dict[str, Any]) -> None:
    assert updates(doc) == []


def test_numeric_timestamp_is_accepted() -> None:
    [update] = updates(body({"id": "wamid.A", "status": "read", "timestamp": 1716480010}))

    assert update.occurred_at == 1716480010


@pytest.mark.parametrize(
    ("doc", "json_path"),
    [
        (body(status("wamid.A", "read", "yesterday")),
         "$.entry[0].changes[0].value.statuses[0].timestamp"),
        (body({"status": "read", "timestamp": "1"}), "$.entry[0].changes[0].value.statuses[0]"),
        (body(status("wamid.A", "read"), kirim={"message_id": 7}), "$.kirim.message_id"),
        ({"entry": {}}, "$.entry"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_schema_violations(doc: Any, json_path: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_status_webhook(json.dumps(doc).encode())

    assert info.value.reason == "schema_violation"
    assert info.value.detail.endswith(f" - at `{json_path}`")


@pytest.mark.parametrize(("raw", "reason"), [(b"{", "invalid_json"), (b"{}" * 40, "too_large")])
def test_unreadable_bodies(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_status_webhook(raw, max_bytes=64)

    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("message.status", True),
        ("message.status_updated", True),
        ("message.sent", True),
        ("message.delivered", True),
        ("message.read", True),
        ("message.failed", True),
        (" Message.Status ", True),
        ("message.received", False),
        ("message", False),
        ("", False),
    ],
)
def test_is_status_event(event_type: str, expected: bool) -> None:
    assert is_status_event(event_type) is expected


@pytest.mark.parametrize(("value", "seconds"), [("1716480010", 1716480010), (0, 0), ("0", 0)])
def test_unix_seconds(value: str | int, seconds: int) -> None:
    assert unix_seconds(value) == seconds
