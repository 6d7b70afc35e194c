"""The idempotency store and fingerprint, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.idempotency import (
    Fresh,
    IdempotencyStore,
    InProgress,
    Replay,
    Reuse,
    StoredResponse,
    canonical_json,
    fingerprint,
)

OK = StoredResponse(200, b'{"data":1}', "106540352242922", "promo_flash_sale")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_fingerprint_ignores_key_order(document: dict[str, Any]) -> None:
    reversed_doc = dict(reversed(list(document.items())))
    assert canonical_json(document) == canonical_json(reversed_doc)
    assert fingerprint("POST", "/v1/1/messages", canonical_json(document)) == fingerprint(
        "POST", "/v1/1/messages", canonical_json(reversed_doc)
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("POST", "/v1/1/messages", b"{}"), ("PUT", "/v1/1/messages", b"{}")),
        (("POST", "/v1/1/messages", b"{}"), ("POST", "/v1/2/messages", b"{}")),
        (("POST", "/v1/1/messages", b'{"a":1}'), ("POST", "/v1/1/messages", b'{"a":2}')),
    ],
)
def test_fingerprint_covers_method_path_and_body(
    left: tuple[str, str, bytes], right: tuple[str, str, bytes]
) -> None:
    assert fingerprint(*left) != fingerprint(*right)


def test_fingerprint_is_sha256_hex_of_the_concatenation() -> None:
    import hashlib  # noqa: PLC0415

    expected = hashlib.sha256(b'POST/v1/1/messages{"a":1,"b":2}').hexdigest()
    assert fingerprint("POST", "/v1/1/messages", canonical_json({"b": 2, "a": 1})) == expected


# (steps, expected decision types): each step is (action, fingerprint, now)
SCENARIOS = [
    ("first sight", [("begin", "f", 0)], [Fresh]),
    ("in progress", [("begin", "f", 0), ("begin", "f", 1)], [Fresh, InProgress]),
    ("replay", [("begin", "f", 0), ("complete", "f", 1), ("begin", "f", 2)], [Fresh, Replay]),
    ("reuse while in progress", [("begin", "f", 0), ("begin", "g", 1)], [Fresh, Reuse]),
    ("reuse after", [("begin", "f", 0), ("complete", "f", 1), ("begin", "g", 2)], [Fresh, Reuse]),
    ("abort forgets", [("begin", "f", 0), ("abort", "f", 1), ("begin", "g", 2)], [Fresh, Fresh]),
    ("expired", [("begin", "f", 0), ("complete", "f", 1), ("begin", "g", 100)], [Fresh, Fresh]),
    (
        "just before ttl",
        [("begin", "f", 0), ("complete", "f", 1), ("begin", "f", 99.9)],
        [Fresh, Replay],
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected"), [(s, e) for _, s, e in SCENARIOS], ids=[n for n, _, _ in SCENARIOS]
)
def test_store_decisions(steps: list[tuple[str, str, float]], expected: list[type]) -> None:
    store = IdempotencyStore(ttl_seconds=100)
    decisions = []
    for action, print_, now in steps:
        if action == "begin":
            decisions.append(store.begin("key", print_, now))
        elif action == "complete":
            store.complete("key", OK)
        else:
            store.abort("key")
    assert [type(decision) for decision in decisions] == expected


def test_replay_returns_the_stored_answer() -> None:
    store = IdempotencyStore(ttl_seconds=100)
    store.begin("key", "f", 0)
    store.complete("key", OK)
    decision = store.begin("key", "f", 5)
    assert decision == Replay(OK)


def test_abort_keeps_a_completed_answer() -> None:
    store = IdempotencyStore(ttl_seconds=100)
    store.begin("key", "f", 0)
    store.complete("key", OK)
    store.abort("key")
    assert isinstance(store.begin("key", "f", 1), Replay)


def test_purge_drops_expired_keys_and_keeps_fresh_ones() -> None:
    store = IdempotencyStore(ttl_seconds=10)
    for index in range(5):
        store.begin(f"k{index}", "f", index)
        store.complete(f"k{index}", OK)
    store.purge(12.5)
    assert len(store) == 2


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xy")), max_size=30))
def test_a_key_never_has_two_fresh_answers_within_its_ttl(requests: list[tuple[str, str]]) -> None:
    store = IdempotencyStore(ttl_seconds=1000)
    fresh: dict[str, int] = {}
    for now, (key, print_) in enumerate(requests):
        decision = store.begin(key, print_, now)
        if isinstance(decision, Fresh):
            fresh[key] = fresh.get(key, 0) + 1
            store.complete(key, OK)
    assert all(count == 1 for count in fresh.values())
