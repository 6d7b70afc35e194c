"""`projector.fold`: the precedence rules, table-driven, and the semilattice laws, as properties."""

from __future__ import annotations

import itertools
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from projector.fold import (
    MessageRow,
    Suppression,
    admissible,
    fold,
    merge,
    row_of,
    status_of,
    suppressions,
)
from schemas.webhooks import StatusUpdate
from tests.projector.updates import update, updates

T = 1_700_000_000


def one(rows: dict[str, MessageRow]) -> MessageRow:
    assert len(rows) == 1
    return next(iter(rows.values()))


def test_the_happy_path_records_each_status_at_its_time() -> None:
    row = one(fold([update("sent", T), update("delivered", T + 2), update("read", T + 9)]))
    assert (row.sent_at, row.delivered_at, row.read_at, row.failed_at) == (T, T + 2, T + 9, None)
    assert row.updated_at == T + 9
    assert row.message_id == "msg_A"
    assert (row.wamid, row.recipient_id, row.phone_number_id) == (
        "wamid.A",
        "628111222333",
        "106540352242922",
    )
    assert status_of(row) == "read"


def test_a_late_sent_never_overwrites_delivered() -> None:
    row = one(fold([update("delivered", T + 2), update("sent", T)]))
    assert status_of(row) == "delivered"
    assert row.updated_at == T + 2


def test_read_implies_delivered_at_the_reads_time() -> None:
    row = one(fold([update("sent", T), update("read", T + 5)]))
    assert row.delivered_at == T + 5
    # A real delivered receipt, earlier, wins whenever it arrives.
    later = one(fold([update("sent", T), update("read", T + 5), update("delivered", T + 3)]))
    assert later.delivered_at == T + 3


def test_failed_after_delivered_keeps_delivered_and_the_error_for_the_record() -> None:
    failed = update(
        "failed", T + 4, error_code="recipient_blocked", provider_code=1013, error_message="x"
    )
    row = one(fold([update("sent", T), update("delivered", T + 2), failed]))
    assert status_of(row) == "delivered"
    assert (row.failed_at, row.error_code, row.provider_code, row.error_message) == (
        T + 4,
        "recipient_blocked",
        1013,
        "x",
    )


def test_delivered_after_failed_wins_too() -> None:
    failed = update("failed", T + 1, error_code="whatsapp_upstream_error", provider_code=131000)
    row = one(fold([failed, update("delivered", T + 8)]))
    assert status_of(row) == "delivered"
    assert row.error_code == "whatsapp_upstream_error"


def test_only_failed_shows_failed_and_sent_alone_shows_sent() -> None:
    assert status_of(one(fold([update("sent", T), update("failed", T + 1)]))) == "failed"
    assert status_of(one(fold([update("sent", T)]))) == "sent"


def test_the_earliest_failure_gives_the_details_ties_by_code() -> None:
    early = update("failed", T + 1, error_code="template_paused", provider_code=132015)
    late = update("failed", T + 7, error_code="recipient_blocked", provider_code=1013)
    tie = update("failed", T + 1, error_code="quota_exceeded", provider_code=131048)
    for order in ([early, late, tie], [tie, late, early], [late, tie, early]):
        row = one(fold(order))
        assert (row.failed_at, row.error_code, row.provider_code) == (
            T + 1,
            "quota_exceeded",
            131048,
        )


def test_a_failure_with_a_code_beats_one_without_at_the_same_time() -> None:
    bare = update("failed", T)
    coded = update("failed", T, error_code="recipient_blocked")
    assert one(fold([bare, coded])).error_code == "recipient_blocked"
    assert one(fold([coded, bare])).error_code == "recipient_blocked"


def test_error_details_of_other_statuses_are_ignored() -> None:
    row = one(fold([update("delivered", T, error_code="x", provider_code=1)]))
    assert (row.error_code, row.provider_code, row.failed_at) == (None, None, None)


def test_duplicates_change_nothing() -> None:
    events = [update("sent", T), update("delivered", T + 1)]
    assert fold(events * 5) == fold(events)


def test_without_a_message_id_the_row_is_keyed_by_wamid() -> None:
    rows = fold([update("sent", T, message_id=None, wamid="wamid.Z")])
    assert list(rows) == ["wamid:wamid.Z"]


def test_each_message_gets_its_own_row() -> None:
    rows = fold([update("sent", T, message_id="msg_A"), update("read", T, message_id="msg_B")])
    assert {key: status_of(row) for key, row in rows.items()} == {
        "msg_A": "sent",
        "msg_B": "read",
    }


def test_unknown_statuses_and_unstorable_ids_are_not_folded() -> None:
    assert not admissible(update("deleted", T))
    assert not admissible(update("sent", T, wamid=""))
    assert not admissible(update("sent", T, wamid="w" * 256))
    assert not admissible(update("sent", T, message_id="m" * 256))
    assert fold([update("deleted", T)]) == {}


def test_text_is_made_storable() -> None:
    row = row_of(
        update(
            "failed",
            T,
            error_code="a\x00b",
            error_message="\ud800" + "m" * 5000,
            provider_code=2**40,
        )
    )
    assert row.error_code == "a\ufffdb"
    assert row.error_message is not None
    assert "\x00" not in row.error_message
    assert len(row.error_message) == 1024
    row.error_message.encode("utf-8")
    assert row.provider_code is None
    assert row_of(update("failed", T, error_code="")).error_code is None


def test_permanent_recipient_errors_become_suppressions() -> None:
    found = suppressions(
        [
            update("failed", T + 5, error_code="recipient_blocked", recipient_id="62811"),
            update("failed", T + 2, error_code="recipient_not_on_whatsapp", recipient_id="62811"),
            update("failed", T, error_code="template_paused", recipient_id="62822"),
            update("delivered", T, error_code="recipient_blocked", recipient_id="62833"),
            update("failed", T, error_code="recipient_blocked", recipient_id="not-digits"),
            update("failed", T, error_code="recipient_blocked", recipient_id="+62844"),
        ]
    )
    assert found == {
        "+62811": Suppression(phone="+62811", reason="recipient_not_on_whatsapp", since=T + 2),
        "+62844": Suppression(phone="+62844", reason="recipient_blocked", since=T),
    }


# Properties: the fold is a join over a semilattice.

events = st.lists(updates(), max_size=25)


@given(events=events, data=st.data())
def test_any_permutation_with_duplicates_folds_to_the_same_rows(
    events: list[StatusUpdate], data: st.DataObject
) -> None:
    duplicated = events + data.draw(
        st.lists(st.sampled_from(events), max_size=10) if events else st.just([])
    )
    shuffled = data.draw(st.permutations(duplicated))
    assert fold(shuffled) == fold(events)
    assert suppressions(shuffled) == suppressions(events)


@given(events=events)
def test_folding_is_idempotent(events: list[StatusUpdate]) -> None:
    once = fold(events)
    assert fold(events, into=once) == once


@given(events=events, cuts=st.lists(st.integers(min_value=0, max_value=25), max_size=5))
def test_batch_splitting_does_not_matter(events: list[StatusUpdate], cuts: list[int]) -> None:
    bounds = sorted({0, len(events), *(min(cut, len(events)) for cut in cuts)})
    merged: dict[str, MessageRow] = {}
    for start, end in itertools.pairwise(bounds):
        for key, row in fold(events[start:end]).items():
            merged[key] = merge(merged[key], row) if key in merged else row
    assert merged == fold(events)


rows = st.builds(row_of, updates(message_ids=("msg_A",)).filter(admissible))


@settings(max_examples=300)
@given(a=rows, b=rows, c=rows)
def test_merge_is_commutative_associative_and_idempotent(
    a: MessageRow, b: MessageRow, c: MessageRow
) -> None:
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a
    assert reduce(merge, [a, b, c, b, a]) == merge(merge(a, b), c)


@given(events=events)
def test_status_follows_the_precedence(events: list[StatusUpdate]) -> None:
    for row in fold(events).values():
        seen = {
            e.status
            for e in events
            if admissible(e) and (e.message_id or "wamid:" + e.wamid) == row.message_id
        }
        for status in ("read", "delivered", "failed", "sent"):
            if status in seen or (status == "delivered" and "read" in seen):
                assert status_of(row) == status
                break
