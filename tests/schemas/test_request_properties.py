"""Request codec properties: valid events round-trip; bad input raises only InvalidEvent."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import REASONS, InvalidEvent
from schemas.requests import RequestEvent, decode_request_event, encode_request_event
from tests.schemas.samples import design_request
from tests.schemas.strategies import json_values, request_events


@given(request_events)
def test_valid_events_round_trip(event: RequestEvent) -> None:
    encoded = encode_request_event(event)

    assert decode_request_event(encoded) == event
    # byte-stable: re-encoding a decoded event reproduces the producer's bytes
    assert encode_request_event(decode_request_event(encoded)) == encoded


def assert_decodes_or_rejects_cleanly(raw: bytes) -> None:
    error: InvalidEvent | None = None
    try:
        decode_request_event(raw)
    except InvalidEvent as exc:
        error = exc
    if error is None:
        return
    assert error.reason in REASONS
    assert error.detail
    if error.reason not in {"too_large", "invalid_json"}:
        assert " - at `$" in error.detail, error.detail


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_invalid_event(raw: bytes) -> None:
    assert_decodes_or_rejects_cleanly(raw)


@given(json_values)
def test_random_json_only_raises_invalid_event(value: Any) -> None:
    assert_decodes_or_rejects_cleanly(json.dumps(value).encode())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def damaged_events(draw: st.DrawFn) -> bytes:
    """A valid event with one value somewhere replaced by arbitrary JSON."""
    event = draw(request_events | st.just(msgspec.convert(design_request(), RequestEvent)))
    doc = msgspec.json.decode(encode_request_event(event))
    path = draw(st.sampled_from(_paths(doc)))
    replacement = draw(json_values)
    if not path:
        return json.dumps(replacement).encode()
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = replacement
    return json.dumps(doc).encode()


@given(damaged_events())
def test_damaged_events_only_raise_invalid_event(raw: bytes) -> None:
    assert_decodes_or_rejects_cleanly(raw)
