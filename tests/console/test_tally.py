"""console.tally: a campaign's figures folded from `campaign_tally`'s groups, pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.failures import failure_kind
from console.tally import (
    IN_PROGRESS,
    KIND_ACTION,
    STATUSES,
    UNKNOWN_CODE,
    FailureBucket,
    Group,
    Tally,
    terminal,
)
from consumer.dispatch.policy import IN_DOUBT_CODES, KNOWN_SYNC_CODES, RETRYABLE_CODES

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
ZERO = dict.fromkeys(STATUSES, 0)
PERMANENT_CODES = [
    *sorted(KNOWN_SYNC_CODES - RETRYABLE_CODES - IN_DOUBT_CODES),
    "recipient_not_on_whatsapp",
    UNKNOWN_CODE,
]


def _tally(*groups: Group) -> Tally:
    return Tally.of(groups)


def test_no_groups() -> None:
    tally = Tally.of([])
    assert tally == Tally(counts=ZERO, reasons={}, failures=(), updated_at=None)
    assert tally.recipients == 0
    assert tally.in_progress == 0
    assert tally.retryable == 0
    assert all(tally.share(status) == 0.0 for status in STATUSES)


@pytest.mark.parametrize(
    ("groups", "counts"),
    [
        ([Group("sent", None, None, 3)], {"sent": 3}),
        (
            [Group("pending", "quota", None, 2), Group("pending", None, None, 5)],
            {"pending": 7},
        ),
        (
            [
                Group("failed", None, "timeout", 1),
                Group("failed", "x", "timeout", 2),
                Group("delivered", None, None, 4),
                Group("read", None, None, 6),
            ],
            {"failed": 3, "delivered": 4, "read": 6},
        ),
        ([Group(status, None, None, 1) for status in STATUSES], dict.fromkeys(STATUSES, 1)),
        # A status this version does not know is still counted, never dropped.
        ([Group("archived", None, None, 2)], {"archived": 2}),
        ([Group("sent", None, None, 0)], {}),
    ],
)
def test_counts(groups: list[Group], counts: dict[str, int]) -> None:
    assert Tally.of(groups).counts == {**ZERO, **counts}


@pytest.mark.parametrize(
    ("groups", "reasons"),
    [
        ([Group("pending", "quota_wait", None, 2)], [(("pending", "quota_wait"), 2)]),
        ([Group("skipped", "opted_out", None, 3)], [(("skipped", "opted_out"), 3)]),
        # Only pending and skipped rows have reasons worth showing.
        (
            [
                Group("failed", "api_said_no", "timeout", 1),
                Group("queued", "claimed", None, 1),
                Group("sent", "accepted", None, 1),
                Group("delivered", "x", None, 1),
            ],
            [],
        ),
        ([Group("pending", None, None, 9)], []),
        (
            [
                Group("pending", "quota_wait", None, 2),
                Group("pending", "quota_wait", "timeout", 3),
            ],
            [(("pending", "quota_wait"), 5)],
        ),
        # By status, then the most frequent first, then by name: a stable order on a
        # live page whatever order the query returned its groups in.
        (
            [
                Group("skipped", "opted_out", None, 1),
                Group("skipped", "invalid_phone", None, 4),
                Group("pending", "window", None, 1),
                Group("pending", "paused", None, 7),
                Group("skipped", "duplicate", None, 1),
                Group("pending", "backoff", None, 1),
            ],
            [
                (("pending", "paused"), 7),
                (("pending", "backoff"), 1),
                (("pending", "window"), 1),
                (("skipped", "invalid_phone"), 4),
                (("skipped", "duplicate"), 1),
                (("skipped", "opted_out"), 1),
            ],
        ),
    ],
)
def test_reasons(groups: list[Group], reasons: list[tuple[tuple[str, str], int]]) -> None:
    assert list(Tally.of(groups).reasons.items()) == reasons
    assert list(Tally.of(reversed(groups)).reasons.items()) == reasons


@pytest.mark.parametrize(
    ("groups", "failures"),
    [
        ([Group("failed", None, "timeout", 2)], [("timeout", 2)]),
        ([Group("failed", None, None, 2)], [(UNKNOWN_CODE, 2)]),
        ([Group("failed", None, "", 2)], [(UNKNOWN_CODE, 2)]),
        (
            [Group("failed", None, None, 2), Group("failed", None, UNKNOWN_CODE, 1)],
            [(UNKNOWN_CODE, 3)],
        ),
        # Codes on rows that are not failed are history, not failures.
        (
            [Group("pending", "backoff", "timeout", 5), Group("sent", None, "internal_error", 1)],
            [],
        ),
        # The same code under several reasons is one bucket.
        (
            [Group("failed", "a", "blocked", 1), Group("failed", "b", "blocked", 2)],
            [("blocked", 3)],
        ),
        # Most first, then by code.
        (
            [
                Group("failed", None, "timeout", 1),
                Group("failed", None, "blocked", 5),
                Group("failed", None, "api_anomaly", 1),
                Group("failed", None, None, 5),
                Group("failed", None, "a_code", 2),
            ],
            [("blocked", 5), (UNKNOWN_CODE, 5), ("a_code", 2), ("api_anomaly", 1), ("timeout", 1)],
        ),
    ],
)
def test_failures(groups: list[Group], failures: list[tuple[str, int]]) -> None:
    tally = Tally.of(groups)
    assert [(b.code, b.count) for b in tally.failures] == failures
    assert sum(b.count for b in tally.failures) == tally.counts["failed"]


@pytest.mark.parametrize(
    ("stamps", "latest"),
    [
        ([], None),
        ([None, None], None),
        ([T0], T0),
        ([T0, None, T0 + timedelta(seconds=1), T0 - timedelta(days=1)], T0 + timedelta(seconds=1)),
        ([None, T0 - timedelta(microseconds=1), T0], T0),
    ],
)
def test_updated_at_is_the_latest(stamps: list[datetime | None], latest: datetime | None) -> None:
    groups = [Group("sent", None, None, 1, stamp) for stamp in stamps]
    assert Tally.of(groups).updated_at == latest


def test_figures() -> None:
    tally = _tally(
        Group("pending", None, None, 10),
        Group("queued", None, None, 5),
        Group("sent", None, None, 5),
        Group("delivered", None, None, 40),
        Group("read", None, None, 20),
        Group("failed", None, "rate_limit_exceeded", 6),
        Group("failed", None, "timeout", 2),
        Group("failed", None, "outcome_unknown", 3),
        Group("failed", None, "invalid_phone_number", 4),
        Group("failed", None, None, 1),
        Group("skipped", "opted_out", None, 4),
    )
    assert tally.recipients == 100
    assert tally.in_progress == 20
    assert tally.share("delivered") == 0.4
    assert tally.share("failed") == 0.16
    assert tally.share("nonsense") == 0.0
    assert tally.retryable == 8  # rate_limit_exceeded and timeout; not the unknown outcome


def test_in_progress_is_pending_queued_and_sent() -> None:
    assert {"pending", "queued", "sent"} == IN_PROGRESS
    for status in STATUSES:
        tally = _tally(Group(status, None, None, 3))
        assert tally.in_progress == (3 if status in IN_PROGRESS else 0)


@pytest.mark.parametrize(
    ("groups", "received", "expected", "finished"),
    [
        ([], 0, 0, True),
        ([], 0, 1, False),  # no chunk stored yet
        ([Group("delivered", None, None, 5)], 2, 3, False),  # a chunk is missing
        ([Group("delivered", None, None, 5)], 3, 3, True),
        ([Group("delivered", None, None, 5)], 4, 3, True),
        ([Group("failed", None, "timeout", 5), Group("skipped", "x", None, 1)], 1, 1, True),
        ([Group("read", None, None, 5), Group("pending", None, None, 1)], 1, 1, False),
        ([Group("read", None, None, 5), Group("queued", None, None, 1)], 1, 1, False),
        ([Group("read", None, None, 5), Group("sent", None, None, 1)], 1, 1, False),
        ([Group("read", None, None, 5), Group("sent", None, None, 0)], 1, 1, True),
    ],
)
def test_terminal(groups: list[Group], received: int, expected: int, finished: bool) -> None:
    assert terminal(Tally.of(groups), received, expected) is finished


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
def test_a_retryable_code_is_retried(code: str) -> None:
    bucket = FailureBucket(code, 1)
    assert bucket.kind == failure_kind(code) == "retryable"
    assert bucket.action == "retry"


@pytest.mark.parametrize("code", sorted(IN_DOUBT_CODES))
def test_an_in_doubt_code_may_have_been_sent(code: str) -> None:
    bucket = FailureBucket(code, 1)
    assert bucket.kind == failure_kind(code) == "unknown"
    assert bucket.action == "stop: may have been sent"


@pytest.mark.parametrize("code", PERMANENT_CODES)
def test_a_permanent_code_is_not_retried(code: str) -> None:
    bucket = FailureBucket(code, 1)
    assert bucket.kind == failure_kind(code) == "permanent"
    assert bucket.action == "permanent"


def test_every_kind_has_an_action() -> None:
    assert set(KIND_ACTION) == {"retryable", "permanent", "unknown"}


# --- properties ----------------------------------------------------------------------

_CODES = [None, "", *sorted(RETRYABLE_CODES), *sorted(IN_DOUBT_CODES), "blocked"]
groups = st.lists(
    st.builds(
        Group,
        # Pending and skipped twice as often: they are the ones with reasons.
        status=st.sampled_from(["pending", "skipped", *STATUSES, "archived"]),
        reason=st.sampled_from([None, "paused", "quota_wait"]),
        error_code=st.sampled_from(_CODES),
        count=st.integers(0, 3) | st.integers(0, 10**6),  # ties, and big campaigns
        updated_at=st.none() | st.integers(0, 10**6).map(lambda s: T0 + timedelta(seconds=s)),
    ),
    max_size=30,
)


@given(groups)
def test_every_recipient_is_counted_once(groups: list[Group]) -> None:
    tally = Tally.of(groups)
    assert tally.recipients == sum(g.count for g in groups)
    assert sum(tally.counts.values()) == tally.recipients
    assert set(STATUSES) <= set(tally.counts)
    assert sum(b.count for b in tally.failures) == tally.counts["failed"]
    for status in ("pending", "skipped"):
        shown = sum(n for (s, _), n in tally.reasons.items() if s == status)
        assert shown <= tally.counts[status]
    assert all(s in ("pending", "skipped") for s, _ in tally.reasons)
    assert tally.retryable <= tally.counts["failed"]
    if tally.recipients:
        assert sum(tally.share(s) for s in tally.counts) == pytest.approx(1.0)


@given(groups, st.randoms(use_true_random=False))
def test_the_order_of_groups_does_not_matter(groups: list[Group], rng: random.Random) -> None:
    shuffled = list(groups)
    rng.shuffle(shuffled)
    once, again = Tally.of(groups), Tally.of(shuffled)
    assert once == again
    # Equal as shown, too: the page lists reasons and failures in these orders.
    assert list(once.reasons.items()) == list(again.reasons.items())
    assert list(once.counts.items())[: len(STATUSES)] == list(again.counts.items())[: len(STATUSES)]


@given(groups)
def test_failures_are_most_first_then_by_code(groups: list[Group]) -> None:
    keys = [(-b.count, b.code) for b in Tally.of(groups).failures]
    assert keys == sorted(keys)
    assert len({b.code for b in Tally.of(groups).failures}) == len(keys)
