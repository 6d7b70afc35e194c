"""Quiet hours in the fit plan (cli/quiet_plan.py): who is inside them, when they open,
and an ETA that sends each group only in its open hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.plan import fit_plan
from cli.quiet_plan import DAY, Opening, eta_after_openings, open_day, quiet_eta, quiet_plan
from consumer.dispatch.tiers import UNLIMITED
from schemas.requests import QuietHours

NIGHT = QuietHours(start="21:00", end="08:00")
HOUR = 3_600.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def test_the_open_hours_of_a_day_from_the_start() -> None:
    # From 20:00 UTC: open until 21:00, closed until 08:00, open to the day's end.
    assert open_day((), NIGHT, utc(2026, 1, 15, 20)) == ((0.0, HOUR), (12 * HOUR, DAY))
    # From 03:00 in Jakarta (20:00 UTC): closed until 08:00 there, open until 21:00.
    assert open_day(("Asia/Jakarta",), NIGHT, utc(2026, 1, 15, 20)) == ((5 * HOUR, 18 * HOUR),)


def test_the_plan_says_who_is_quiet_now_and_when_they_open() -> None:
    start = utc(2026, 1, 15, 15)  # 22:00 in Jakarta, 16:00 in Berlin
    plan = quiet_plan(
        {
            ("Asia/Jakarta",): 1_000,
            ("Asia/Jakarta", "Asia/Makassar"): 200,
            ("Europe/Berlin",): 500,
            ("Asia/Tokyo",): 0,
        },
        NIGHT,
        start,
    )
    assert plan.quiet_now == 1_200
    assert plan.openings == [
        # Makassar (+8) opens at 00:00 UTC, but its numbers are Jakarta's too.
        Opening(utc(2026, 1, 16, 1), 1_200, ("Asia/Jakarta", "Asia/Makassar")),
    ]
    assert [g.zones for g in plan.groups if g.opens_at is None] == [("Europe/Berlin",)]


def test_zones_without_a_common_hour_are_planned_in_the_zone_that_decides() -> None:
    plan = quiet_plan(
        {("Etc/GMT-6", "Etc/GMT+6"): 10, ("Etc/GMT+6",): 5},
        QuietHours(start="20:00", end="09:00"),
        utc(2026, 1, 15, 3),
    )
    assert [(g.zones, g.recipients) for g in plan.groups] == [(("Etc/GMT+6",), 15)]


@pytest.mark.parametrize(
    ("counts", "start", "tier", "per_minute", "window", "eta"),
    [
        # An hour before the night: 3,600 go, 11 h of quiet, then the other 3,600.
        ({(): 7_200}, utc(2026, 1, 15, 20), UNLIMITED, 60, DAY, 13 * HOUR),
        # Everyone fits before the night: as without quiet hours.
        ({(): 600}, utc(2026, 1, 15, 20), UNLIMITED, 60, DAY, 600.0),
        # Berlin's 500 go now; Jakarta's 1,000 at its 08:00 (01:00 UTC, 10 h on).
        (
            {("Europe/Berlin",): 500, ("Asia/Jakarta",): 1_000},
            utc(2026, 1, 15, 15),
            UNLIMITED,
            60,
            DAY,
            10 * HOUR + 1_000,
        ),
        # Quota windows in open hours: 1,000 a window of a day, as without quiet hours.
        ({(): 2_500}, utc(2026, 1, 15, 10), 1_000, 6_000, DAY, 2 * DAY + 5),
        # Quiet now: the first window starts when the night ends, 5 h on.
        ({(): 2_500}, utc(2026, 1, 15, 3), 1_000, 6_000, DAY, 5 * HOUR + 2 * DAY + 5),
        # A one-hour window whose capacity returns at night waits for the morning.
        ({(): 200}, utc(2026, 1, 15, 20, 30), 100, 60, HOUR, 11.5 * HOUR + 100),
    ],
)
def test_quiet_eta(
    counts: dict[tuple[str, ...], int],
    start: float,
    tier: int,
    per_minute: int,
    window: float,
    eta: float,
) -> None:
    plan = quiet_plan(counts, NIGHT, start)
    found = quiet_eta(plan, tier=tier, write_per_minute=per_minute, window_seconds=window)
    assert found == pytest.approx(eta)


def test_the_fit_plan_uses_the_quiet_eta() -> None:
    plan = quiet_plan({(): 7_200}, NIGHT, utc(2026, 1, 15, 20))
    with_quiet = fit_plan(
        7_200, tier=UNLIMITED, write_per_minute=60, window_seconds=86_400, quiet=plan
    )
    without = fit_plan(7_200, tier=UNLIMITED, write_per_minute=60, window_seconds=86_400)
    assert (with_quiet.eta_seconds, without.eta_seconds) == (13 * HOUR, 2 * HOUR)
    assert with_quiet.quiet is plan
    assert with_quiet.windows == without.windows == 1
    # No rate: no ETA either way.
    assert (
        fit_plan(10, tier=250, write_per_minute=None, window_seconds=60, quiet=plan).eta_seconds
        is None
    )


ZONES = ("Asia/Jakarta", "Asia/Jayapura", "Europe/Berlin", "America/New_York", "Pacific/Chatham")
clock = st.integers(0, 1439).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")
windows = st.tuples(clock, clock).filter(lambda p: p[0] != p[1])
audiences = st.dictionaries(
    st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True).map(tuple),
    st.integers(1, 5_000),
    min_size=1,
    max_size=3,
)
facts = st.tuples(
    st.sampled_from([250, 1_000, 10_000, UNLIMITED]),
    st.sampled_from([60, 600, 6_000]),
    st.sampled_from([3_600.0, DAY]),
)


@settings(max_examples=150, deadline=None)
@given(audiences, windows, st.floats(utc(2026, 1, 1), utc(2027, 1, 1)), facts)
def test_quiet_hours_only_delay_and_more_recipients_never_finish_sooner(
    counts: dict[tuple[str, ...], int],
    window: tuple[str, str],
    start: float,
    limits: tuple[int, int, float],
) -> None:
    tier, per_minute, seconds = limits
    hours = QuietHours(start=window[0], end=window[1])
    plan = quiet_plan(counts, hours, start)
    eligible = sum(counts.values())
    eta = quiet_eta(plan, tier=tier, write_per_minute=per_minute, window_seconds=seconds)
    plain = fit_plan(eligible, tier=tier, write_per_minute=per_minute, window_seconds=int(seconds))
    assert eta is not None
    assert plain.eta_seconds is not None
    assert eta >= plain.eta_seconds - 1e-6
    assert plan.quiet_now == sum(g.recipients for g in plan.groups if g.opens_at is not None)
    assert sum(g.recipients for g in plan.groups) == eligible
    if tier < UNLIMITED:
        return  # quota blocks begin with their first send: one more may move them
    # One recipient more in the first group never makes the campaign finish sooner.
    first = next(iter(counts))
    more = quiet_plan({**counts, first: counts[first] + 1}, hours, start)
    later = quiet_eta(more, tier=tier, write_per_minute=per_minute, window_seconds=seconds)
    assert later is not None
    assert later >= eta - 1e-6


@pytest.mark.parametrize(
    ("awake", "openings", "rate", "expected"),
    [
        (10.0, [], 1.0, 10.0),  # nobody asleep: the plan as it was
        (10.0, [(100.0, 5)], 1.0, 105.0),  # they go when their hours end
        (200.0, [(100.0, 5)], 1.0, 205.0),  # ... or once the awake ones are sent
        (0.0, [(50.0, 10), (20.0, 10)], 2.0, 55.0),  # in the order they open
        (0.0, [(20.0, 100)], 0.0, None),  # no rate known: no ETA
    ],
)
def test_the_eta_waits_for_each_opening(
    awake: float, openings: list[tuple[float, int]], rate: float, expected: float | None
) -> None:
    assert eta_after_openings(awake, openings, rate) == expected
