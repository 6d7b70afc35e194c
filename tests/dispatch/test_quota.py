"""The tier budget never lets a window exceed its limit, and defers rather than fails,
also when the tier changes between plans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.quota import (
    QuotaPlan,
    QuotaSnapshot,
    freeing_offset,
    plan_quota,
    window_start,
)
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


# Tier changes mid-campaign (issue 13). The planner is given the tier in force at each
# plan; a model of the budget's contacts (what `quota_contacts` holds, and what the
# store's snapshot reads from it) carries the window from one plan to the next.

WINDOW = 10.0
MARGIN = 1.0


def model_snapshot(
    contacts: dict[str, float], phones: list[str], limit: int, now: float
) -> QuotaSnapshot:
    """What `DispatchStore.reserve` reads: the window's contacts, latest contact each."""
    start = window_start(now, WINDOW, MARGIN)
    times = sorted(t for t in contacts.values() if t >= start)
    offset = freeing_offset(len(times), limit)
    return QuotaSnapshot(
        limit=limit,
        used=len(times),
        in_window=frozenset(p for p in phones if contacts.get(p, -1e18) >= start),
        oldest_contact_at=times[0] if times else None,
        freeing_contact_at=times[offset] if offset and offset < len(times) else None,
    )


def in_window(contacts: dict[str, float], now: float) -> int:
    start = window_start(now, WINDOW, MARGIN)
    return sum(1 for t in contacts.values() if t >= start)


def run_plan(
    contacts: dict[str, float], phones: list[str], limit: int, now: float
) -> tuple[QuotaPlan, int]:
    """Plan as the worker does and record the contacts as the store does; returns the
    plan and the window's count just before it."""
    before = in_window(contacts, now)
    plan = plan_quota(phones, model_snapshot(contacts, phones, limit, now), now, WINDOW, MARGIN)
    for phone in plan.send:
        contacts[phone] = now
    return plan, before


@pytest.mark.parametrize(
    ("used", "limit", "offset"),
    [
        (0, 250, 0),
        (249, 250, 0),
        (250, 250, 0),  # full: the oldest frees the next slot
        (251, 250, 1),
        (5_000, 1_000, 4_000),  # 100k -> 1k with 5k contacted: the 4,001st oldest
        (5_000, UNLIMITED, 0),
    ],
)
def test_freeing_offset(used: int, limit: int, offset: int) -> None:
    assert freeing_offset(used, limit) == offset


@pytest.mark.parametrize(
    ("tiers", "expected_new"),
    [
        ((250, 250), (250, 0)),  # no change: full after the first plan
        ((250, 1_000), (250, 750)),  # a rise lets 750 more through at the next plan
        ((1_000, 250), (1_000, 0)),  # a fall: nothing new until the window frees
        ((100, 250, 100, 250), (100, 150, 0, 0)),
        ((UNLIMITED, 250, 1_000), (1_500, 0, 0)),
    ],
)
def test_each_plan_uses_the_tier_then_in_force(
    tiers: tuple[int, ...], expected_new: tuple[int, ...]
) -> None:
    phones = [f"+62811{i:07d}" for i in range(1_500)]
    contacts: dict[str, float] = {}
    new: list[int] = []
    for step, limit in enumerate(tiers):
        pending = [p for p in phones if p not in contacts]
        plan, _ = run_plan(contacts, pending, limit, now=100.0 + step)
        new.append(plan.new_contacts)
    assert tuple(new) == expected_new


def test_a_fall_below_the_window_defers_until_enough_contacts_age_out() -> None:
    # 5,000 contacted one per millisecond under a 100k tier; the tier falls to 1k.
    contacts = {f"+62812{i:07d}": 100.0 + i / 1_000 for i in range(5_000)}
    now = 105.5  # every contact is still in the window (10 s + 1 s margin)
    later = [f"+62813{i:07d}" for i in range(20)]
    again = ["+628120000007"]  # in the window: costs nothing, still sent
    earlier = dict(contacts)
    plan, before = run_plan(contacts, again + later, 1_000, now)
    assert before == 5_000
    assert plan.send == tuple(again)
    assert plan.defer == tuple(later)  # deferred, never failed
    assert plan.new_contacts == 0
    # Not when the oldest ages out (111.0) but when the 4,001st does (115.0): the window
    # then holds 999 (< 1,000) contacts.
    assert plan.retry_at == pytest.approx(100.0 + 4_000 / 1_000 + WINDOW + MARGIN)
    assert plan.retry_at is not None
    assert in_window(earlier, plan.retry_at + 1e-6) == 999
    assert in_window(earlier, plan.retry_at - 0.005) >= 1_000
    # The re-contacted recipient now counts until later, so at that time the window is
    # still full: deferred again, not sent early; a moment later one fits.
    again_plan, _ = run_plan(contacts, later, 1_000, plan.retry_at + 1e-6)
    assert again_plan.new_contacts == 0
    assert again_plan.retry_at == pytest.approx(100.0 + 4_001 / 1_000 + WINDOW + MARGIN)
    assert again_plan.retry_at is not None
    retried, _ = run_plan(contacts, later, 1_000, again_plan.retry_at + 1e-6)
    assert retried.new_contacts == 1


# One step: time advanced since the last plan, the tier in force, and a batch drawn from
# a small audience (so recipients recur: some in the window, some aged out).
_step = st.tuples(
    st.floats(min_value=0.0, max_value=4.0),
    st.sampled_from([1, 2, 3, 5, 8, 13, 40, UNLIMITED]),
    st.lists(st.integers(min_value=0, max_value=60).map(lambda n: f"+{n}"), max_size=25),
)


@given(steps=st.lists(_step, min_size=1, max_size=30))
def test_any_sequence_of_tier_changes_keeps_every_plan_within_its_tier(
    steps: list[tuple[float, int, list[str]]],
) -> None:
    contacts: dict[str, float] = {}
    now = 1_000.0
    for advance, limit, phones in steps:
        now += advance
        snapshot = model_snapshot(contacts, phones, limit, now)
        earlier = dict(contacts)
        plan, before = run_plan(contacts, phones, limit, now)
        after = in_window(contacts, now)
        assert sorted(plan.send + plan.defer) == sorted(phones)  # nobody lost
        # Within the tier in force, beyond it only what earlier plans had reserved.
        assert after <= max(limit, before)
        # As much as the tier allows: a rise lets more through at once.
        fresh = {p for p in phones if p not in snapshot.in_window}
        assert plan.new_contacts == min(len(fresh), max(0, limit - before))
        if plan.defer:
            assert plan.retry_at is not None
            assert plan.retry_at >= now
            if plan.retry_at > now:  # no later than the window, left alone, has room
                assert in_window(contacts, plan.retry_at - 1e-6) >= limit
            if before >= limit:
                # Full or over (a fall): when the contacts made before this plan leave
                # room. A recipient it sent to again counts from now, so room may come
                # a little later: the rows are then deferred again, never sent early.
                assert in_window(earlier, plan.retry_at + 1e-6) < limit
