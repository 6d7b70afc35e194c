"""The rolling-window unique-recipient quota, without HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.quota import Admitted, Exceeded, RollingUniques, TierQuota


def test_a_recipient_in_the_window_does_not_count_again() -> None:
    quota = TierQuota(window=100)
    assert quota.admit("n", "+1", 2, 0) == Admitted(first_contact=True)
    assert quota.admit("n", "+1", 2, 1) == Admitted(first_contact=False)
    assert quota.admit("n", "+2", 2, 2) == Admitted(first_contact=True)
    assert quota.admit("n", "+1", 2, 3) == Admitted(first_contact=False)
    assert isinstance(quota.admit("n", "+3", 2, 4), Exceeded)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (50.0, Exceeded(retry_after=50)),
        (99.5, Exceeded(retry_after=1)),
        (100.0, Admitted(first_contact=True)),  # the first contact at 0 left at 0 + window
    ],
)
def test_retry_after_is_when_the_oldest_first_contact_leaves(now: float, expected: object) -> None:
    quota = TierQuota(window=100)
    quota.admit("n", "+1", 2, 0)
    quota.admit("n", "+2", 2, 10)
    assert quota.admit("n", "+3", 2, now) == expected


def test_keys_are_independent_and_unlimited_never_refuses() -> None:
    quota = TierQuota(window=100)
    assert quota.admit("a", "+1", 1, 0) == Admitted(True)
    assert quota.admit("b", "+2", 1, 0) == Admitted(True)
    for index in range(500):
        assert isinstance(quota.admit("c", f"+{index}", None, 0), Admitted)


def test_a_first_contact_does_not_restart_its_window() -> None:
    quota = TierQuota(window=100)
    quota.admit("n", "+1", 1, 0)
    quota.admit("n", "+1", 1, 90)  # a repeat inside the window: not a new first contact
    assert quota.admit("n", "+2", 1, 100) == Admitted(True)


def test_shrinking_the_window_applies_to_counted_recipients() -> None:
    quota = TierQuota(window=100)
    quota.admit("n", "+1", 1, 0)
    quota.window = 5
    assert quota.admit("n", "+2", 1, 6) == Admitted(True)


events = st.lists(
    st.tuples(st.integers(0, 30), st.floats(0, 7, allow_nan=False)), min_size=1, max_size=120
)


@settings(deadline=None)
@given(events, st.integers(1, 8), st.floats(1, 40, allow_nan=False))
def test_never_more_than_tier_first_contacts_in_any_window(
    sends: list[tuple[int, float]], tier: int, window: float
) -> None:
    quota = TierQuota(window)
    now = 0.0
    counted: list[float] = []
    for recipient, gap in sends:
        now += gap
        decision = quota.admit("n", f"+{recipient}", tier, now)
        if isinstance(decision, Admitted) and decision.first_contact:
            counted.append(now)
    for start in counted:
        inside = [at for at in counted if start <= at < start + window]
        assert len(inside) <= tier


@settings(deadline=None)
@given(events, st.floats(1, 40, allow_nan=False))
def test_peak_matches_a_brute_force_count(sends: list[tuple[int, float]], window: float) -> None:
    uniques = RollingUniques(window)
    now = 0.0
    firsts: list[float] = []
    for recipient, gap in sends:
        now += gap
        if uniques.add(f"+{recipient}", now):
            firsts.append(now)
    brute = max(sum(1 for at in firsts if end - window < at <= end) for end in firsts)
    assert uniques.peak == brute
