"""Rejected `broadcast.requests` events: each names a reason code and the JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.errors import REASONS, InvalidEvent
from schemas.requests import MAX_EVENT_BYTES, MAX_RECIPIENTS, decode_request_event
from tests.schemas.samples import DELETE, JsonPath, design_request, dumps, mutated


def rejection(raw: bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode_request_event(raw)
    assert info.value.reason in REASONS
    return info.value


REJECTIONS: list[Any] = [
    # missing fields
    pytest.param(("campaign_id",), DELETE, "schema_violation", "$", id="missing-campaign_id"),
    pytest.param(("type",), DELETE, "schema_violation", "$", id="missing-type"),
    pytest.param(("template", "name"), DELETE, "schema_violation", "$.template", id="missing-name"),
    pytest.param(
        ("recipients", 0, "phone"), DELETE, "schema_violation", "$.recipients[0]", id="no-phone"
    ),
    # wrong types
    pytest.param(("recipients", 0, "phone"), 628111222333, "schema_violation",
                 "$.recipients[0].phone", id="phone-int"),
    pytest.param(("recipients", 0, "phone"), None, "schema_violation",
                 "$.recipients[0].phone", id="phone-null"),
    pytest.param(("template", "components"), {}, "schema_violation",
                 "$.template.components", id="components-object"),
    pytest.param(("recipients", 0, "variables", "first_name"), 1, "schema_violation",
                 "$.recipients[0].variables[...]", id="variable-int"),
    pytest.param(("chunk", "index"), "0", "schema_violation", "$.chunk.index", id="index-str"),
    pytest.param(("sender",), "auto", "schema_violation", "$.sender", id="sender-str"),
    pytest.param(("type",), 7, "schema_violation", "$.type", id="type-int"),
    # bad values
    pytest.param(("campaign_id",), "not-a-uuid", "schema_violation", "$.campaign_id",
                 id="bad-uuid"),
    pytest.param(("campaign_id",), "c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8", "schema_violation",
                 "$.campaign_id", id="short-uuid"),
    pytest.param(("recipients", 0, "phone"), "", "schema_violation",
                 "$.recipients[0].phone", id="phone-empty"),
    pytest.param(("recipients", 0, "phone"), "+" + "1" * 32, "schema_violation",
                 "$.recipients[0].phone", id="phone-too-long"),
    pytest.param(("template", "name"), "Promo-Sale", "schema_violation", "$.template.name",
                 id="template-name"),
    pytest.param(("template", "language"), "indonesian", "schema_violation",
                 "$.template.language", id="language"),
    pytest.param(("template", "components", 0, "type"), "sidebar", "schema_violation",
                 "$.template.components[0].type", id="component-type"),
    # an unknown *parameter* type is a schema violation, not an unknown event type
    pytest.param(("template", "components", 0, "parameters", 0, "type"), "currency",
                 "schema_violation", "$.template.components[0].parameters[0].type",
                 id="parameter-type"),
    pytest.param(("template", "components", 0, "type"), "button", "schema_violation",
                 "$.template.components[0]", id="button-without-index"),
    pytest.param(("recipients",), [], "schema_violation", "$.recipients", id="no-recipients"),
    pytest.param(("recipients",), [{"phone": "+628111222333"}] * (MAX_RECIPIENTS + 1),
                 "schema_violation", "$.recipients", id="too-many-recipients"),
    # naive datetimes
    pytest.param(("recipients", 0, "opted_in_at"), "2026-01-05T10:00:00", "schema_violation",
                 "$.recipients[0].opted_in_at", id="naive-opted_in_at"),
    pytest.param(("send_at",), "2026-01-05T10:00:00", "schema_violation", "$.send_at",
                 id="naive-send_at"),
    pytest.param(("send_at",), "tomorrow", "schema_violation", "$.send_at", id="bad-send_at"),
    # unknown event type
    pytest.param(("type",), "broadcast.exploded", "unknown_type", "$.type", id="unknown-type"),
    # chunks
    pytest.param(("chunk",), {"index": 1, "count": 1}, "chunk_out_of_range", "$.chunk",
                 id="index-eq-count"),
    pytest.param(("chunk",), {"index": 7, "count": 3}, "chunk_out_of_range", "$.chunk",
                 id="index-gt-count"),
    pytest.param(("chunk",), {"index": -1, "count": 3}, "chunk_out_of_range", "$.chunk.index",
                 id="index-negative"),
    pytest.param(("chunk",), {"index": 0, "count": 0}, "chunk_out_of_range", "$.chunk.count",
                 id="count-zero"),
    pytest.param(("chunk",), {"index": 5}, "chunk_out_of_range", "$.chunk",
                 id="index-without-count"),
    # senders
    pytest.param(("sender",), {}, "invalid_sender", "$.sender", id="sender-empty"),
    pytest.param(("sender",), {"auto": False}, "invalid_sender", "$.sender.auto",
                 id="auto-false"),
    pytest.param(("sender",), {"auto": None}, "invalid_sender", "$.sender", id="auto-null"),
    pytest.param(("sender",), {"auto": True, "phone_number_id": "106540352242922"},
                 "invalid_sender", "$.sender", id="both-forms"),
    pytest.param(("sender",), {"phone_number_id": "12345"}, "invalid_sender",
                 "$.sender.phone_number_id", id="id-too-short"),
    pytest.param(("sender",), {"phone_number_id": "+62811"}, "invalid_sender",
                 "$.sender.phone_number_id", id="id-not-digits"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "reason", "json_path"), REJECTIONS)
def test_rejections_name_reason_and_path(
    path: JsonPath, value: object, reason: str, json_path: str
) -> None:
    error = rejection(mutated(path, value))

    assert error.reason == reason
    assert error.detail.endswith(f" - at `{json_path}`"), error.detail


def test_wrong_type_detail_is_precise() -> None:
    doc = design_request()
    doc["recipients"] = [{"phone": f"+62811{i:07d}"} for i in range(5)]
    doc["recipients"][3]["phone"] = 628

    error = rejection(dumps(doc))

    assert error.detail == "Expected `str`, got `int` - at `$.recipients[3].phone`"
    assert str(error) == f"schema_violation: {error.detail}"


def test_bad_variable_name_detail_says_it_is_a_key() -> None:
    error = rejection(mutated(("recipients", 0, "variables"), {"x" * 65: "Budi"}))

    assert (error.reason, error.detail) == (
        "schema_violation",
        "Expected `str` of length <= 64 - at `key` in `$.recipients[0].variables`",
    )


def test_unknown_type_detail_names_the_value() -> None:
    error = rejection(mutated(("type",), "broadcast.exploded"))

    assert "'broadcast.exploded'" in error.detail


def test_bad_control_event_campaign_id() -> None:
    error = rejection(b'{"type": "broadcast.paused", "campaign_id": 42}')

    assert (error.reason, error.detail) == (
        "schema_violation",
        "Expected `uuid`, got `int` - at `$.campaign_id`",
    )


def test_oversized_event_is_rejected_before_parsing() -> None:
    doc = design_request()
    doc["padding"] = "x" * MAX_EVENT_BYTES
    raw = dumps(doc)

    error = rejection(raw)

    assert error.reason == "too_large"
    assert str(len(raw)) in error.detail
    assert str(MAX_EVENT_BYTES) in error.detail


def test_size_limit_is_configurable_and_inclusive() -> None:
    raw = dumps(design_request())

    assert decode_request_event(raw, max_bytes=len(raw))
    with pytest.raises(InvalidEvent) as info:
        decode_request_event(raw, max_bytes=len(raw) - 1)
    assert info.value.reason == "too_large"
    # even garbage is "too large" first: the size check never parses
    with pytest.raises(InvalidEvent) as info:
        decode_request_event(b"\xff" * 11, max_bytes=10)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe",
        b'{"type": "broadcast.paused",}',
        b"nul",
        # a schema error comes first, but the input is not JSON at all
        b"{} x",
        b'{"type": 7, "x": [1,}',
    ],
)
def test_invalid_json(raw: bytes) -> None:
    error = rejection(raw)

    assert error.reason == "invalid_json"
    assert error.detail


def test_deeply_nested_json_is_invalid_json_not_a_crash() -> None:
    raw = b'{"type": "broadcast.paused", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    assert rejection(raw).reason == "invalid_json"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"[]", "Expected `object`, got `array` - at `$`"),
        (b"null", "Expected `object`, got `null` - at `$`"),
        (b"{}", "Object missing required field `type` - at `$`"),
    ],
)
def test_non_objects_are_schema_violations(raw: bytes, detail: str) -> None:
    error = rejection(raw)

    assert (error.reason, error.detail) == ("schema_violation", detail)
