"""The tier budget never lets a window exceed its limit, and defers rather than fails."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.quota import QuotaSnapshot, plan_quota
from consumer.dispatch.tiers import UNLIMITED, concurrency_for, parse_tier


def snap(
    limit: int,
    used: int = 0,
    in_window: set[str] | None = None,
    oldest: float | None = None,
    hold: float = 0.0,
) -> QuotaSnapshot:
    return QuotaSnapshot(
        limit=limit,
        used=used,
        in_window=frozenset(in_window or ()),
        oldest_contact_at=oldest,
        hold_until=hold,
    )


def test_fills_the_budget_then_defers_until_the_oldest_contact_ages_out() -> None:
    phones = [f"+62811{i:07d}" for i in range(400)]
    plan = plan_quota(phones, snap(250), now=100.0, window_seconds=10.0)
    assert len(plan.send) == 250
    assert plan.send == tuple(phones[:250])
    assert plan.defer == tuple(phones[250:])
    assert plan.new_contacts == 250
    assert plan.retry_at == 100.0  # nothing in the window yet: look again right away

    later = plan_quota(
        phones[250:],
        snap(250, used=250, oldest=100.0),
        now=101.0,
        window_seconds=10.0,
        margin_seconds=1.0,
    )
    assert later.send == ()
    assert later.retry_at == 111.0


def test_recipients_already_in_the_window_cost_nothing() -> None:
    plan = plan_quota(
        ["+a", "+b", "+c"],
        snap(2, used=2, in_window={"+b"}, oldest=5.0),
        now=6.0,
        window_seconds=10.0,
    )
    assert plan.send == ("+b",)
    assert plan.defer == ("+a", "+c")
    assert plan.new_contacts == 0


def test_a_phone_twice_in_one_batch_counts_once() -> None:
    plan = plan_quota(["+a", "+a", "+b"], snap(1), now=0.0, window_seconds=10.0)
    assert plan.send == ("+a", "+a")
    assert plan.defer == ("+b",)


def test_a_hold_after_quota_exceeded_stops_only_new_contacts() -> None:
    plan = plan_quota(
        ["+a", "+b"],
        snap(100, used=1, in_window={"+a"}, oldest=0.0, hold=50.0),
        now=10.0,
        window_seconds=100.0,
    )
    assert plan.send == ("+a",)
    assert plan.defer == ("+b",)
    assert plan.retry_at == 100.0


@given(
    limit=st.integers(min_value=0, max_value=50),
    used=st.integers(min_value=0, max_value=60),
    phones=st.lists(st.integers(min_value=0, max_value=80).map(lambda n: f"+{n}"), max_size=120),
    known=st.sets(st.integers(min_value=0, max_value=80).map(lambda n: f"+{n}"), max_size=30),
)
def test_never_exceeds_the_limit_and_loses_no_one(
    limit: int, used: int, phones: list[str], known: set[str]
) -> None:
    in_window = {p for p in known if p in phones}
    plan = plan_quota(
        phones,
        snap(limit, used=used, in_window=in_window, oldest=0.0),
        now=1.0,
        window_seconds=10.0,
    )
    assert sorted(plan.send + plan.defer) == sorted(phones)
    new = {p for p in plan.send if p not in in_window}
    assert len(new) == plan.new_contacts
    assert used + len(new) <= max(limit, used)
    assert all(p in in_window or p in new for p in plan.send)
    if plan.defer:
        assert plan.retry_at is not None
        assert plan.retry_at >= 1.0


def test_tier_encodings() -> None:
    assert [parse_tier(v) for v in (250, "1000", "TIER_2K", "tier_10k", "TIER_100K")] == [
        250,
        1000,
        2000,
        10_000,
        100_000,
    ]
    assert parse_tier("TIER_UNLIMITED") == parse_tier("unlimited") == UNLIMITED
    assert [parse_tier(v) for v in (None, True, "", "gold", -5, 0, [1])] == [None] * 7
    # Beyond any real tier (and beyond a bigint): unlimited, not an overflow.
    assert parse_tier(10**30) == parse_tier("9" * 40) == parse_tier(1e300) == UNLIMITED


def test_concurrency_by_tier() -> None:
    assert [concurrency_for(t) for t in (250, 1000, 2000, 10_000, 100_000, UNLIMITED)] == [
        5,
        10,
        10,
        20,
        50,
        50,
    ]
