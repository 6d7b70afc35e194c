"""Settling by asking the API: late deliveries after a failure, in-doubt sends past their key."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.outcome import within_key_window
from consumer.dispatch.settle import (
    InDoubt,
    Recheck,
    Sighting,
    after_recheck,
    candidates,
    recheck_due,
    recipient_id,
)
from consumer.dispatch.store import RowResult

C1, C2 = uuid.uuid4(), uuid.uuid4()
SENDER = "106540352242922"


@pytest.mark.parametrize(
    ("failed_at", "now", "grace", "due"),
    [(100.0, 129.0, 30.0, False), (100.0, 130.0, 30.0, True), (None, 0.0, 30.0, True)],
)
def test_a_failure_is_rechecked_after_its_grace(
    failed_at: float | None, now: float, grace: float, due: bool
) -> None:
    assert recheck_due(failed_at, now, grace) is due


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("delivered", Recheck.DELIVERED),
        ("read", Recheck.DELIVERED),
        ("failed", Recheck.RESEND),
        (None, Recheck.RESEND),
        ("sent", Recheck.WAIT),
        ("pending", Recheck.WAIT),
        ("something_new", Recheck.WAIT),
    ],
)
def test_what_the_current_status_decides(status: str | None, verdict: Recheck) -> None:
    assert after_recheck(status) is verdict


def row(campaign: uuid.UUID, phone: str, since: float = 1000.0) -> InDoubt:
    return InDoubt(campaign, phone, SENDER, since)


def seen(phone: str, message_id: str, at: float = 1001.0, sender: str = SENDER) -> Sighting:
    return Sighting(sender, recipient_id(phone), message_id, at)


@pytest.mark.parametrize(
    ("rows", "sightings", "found"),
    [
        ([row(C1, "+6281")], [seen("+6281", "m1")], {(C1, "+6281"): "m1"}),
        ([row(C1, "+6281")], [], {}),
        # Two messages fit: which one is the send's is unknowable.
        ([row(C1, "+6281")], [seen("+6281", "m1"), seen("+6281", "m2")], {}),
        # The same message reported twice is one message.
        (
            [row(C1, "+6281")],
            [seen("+6281", "m1"), seen("+6281", "m1", 1002.0)],
            {(C1, "+6281"): "m1"},
        ),
        # Two campaigns in doubt for one recipient of one sender: ambiguous.
        ([row(C1, "+6281"), row(C2, "+6281")], [seen("+6281", "m1")], {}),
        # Another sender's message, or one reported long before the send, is not it.
        ([row(C1, "+6281")], [seen("+6281", "m1", sender="999999")], {}),
        ([row(C1, "+6281")], [seen("+6281", "m1", at=100.0)], {}),
        ([row(C1, "+6281")], [seen("+6281", "m1", at=800.0)], {(C1, "+6281"): "m1"}),
        (
            [row(C1, "+6281"), row(C1, "+6282")],
            [seen("+6281", "m1"), seen("+6282", "m2")],
            {(C1, "+6281"): "m1", (C1, "+6282"): "m2"},
        ),
    ],
)
def test_an_in_doubt_send_is_matched_only_when_unambiguous(
    rows: list[InDoubt], sightings: list[Sighting], found: dict[tuple[uuid.UUID, str], str]
) -> None:
    assert candidates(rows, sightings) == found


@given(
    phones=st.lists(st.sampled_from(["+6281", "+6282", "+6283"]), max_size=6),
    ids=st.lists(st.tuples(st.sampled_from(["+6281", "+6282", "+6283"]), st.integers(0, 5))),
)
def test_no_message_is_given_to_two_rows(phones: list[str], ids: list[tuple[str, int]]) -> None:
    rows = [row(uuid.uuid4(), phone) for phone in phones]
    found = candidates(rows, [seen(phone, f"m{n}") for phone, n in ids])
    assert len(set(found.values())) == len(found)
    for (_, phone), message_id in found.items():
        assert (phone, int(message_id[1:])) in ids


def result(uncertain_since: float | None, next_attempt_at: float | None) -> RowResult:
    return RowResult(
        campaign_id=C1,
        phone="+6281",
        status="pending",
        attempted_at=5000.0,
        next_attempt_at=next_attempt_at,
        uncertain_since=uncertain_since,
    )


@pytest.mark.parametrize(
    ("since", "next_at", "capped"),
    [
        (None, 90_000.0, 90_000.0),  # not in doubt: its backoff stands
        (1000.0, 6000.0, 6000.0),  # well inside the key window
        (1000.0, 90_000.0, 1000.0 + 9000.0),  # cut at nine tenths of a 10,000 s key
        (0.0, 90_000.0, 9000.0),
        (-9000.0, 90_000.0, 5000.0),  # already past: at once
    ],
)
def test_a_send_in_doubt_is_repeated_while_its_key_is_replayed(
    since: float | None, next_at: float, capped: float
) -> None:
    assert within_key_window(result(since, next_at), 10_000.0).next_attempt_at == capped
