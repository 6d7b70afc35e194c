"""The template-health breaker's decisions (consumer/dispatch/breaker.py), exhaustively.

Tables for each rule and the guard's defaults; Hypothesis properties for the window
(it counts exactly the minutes overlapping the window, never before the campaign's
activation), the failure rule (never below min_sends, monotone in failures, exactly
the share over the max), the quality rule (only a fall seen while the campaign runs),
and a campaign's life through trips and resumes: a resumed campaign never trips again
on what was counted before its trip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.breaker import (
    BUCKET_SECONDS,
    HEALTH_CODES,
    Guard,
    Tally,
    Trip,
    Window,
    bucket_of,
    counts_toward,
    effective_guard,
    failure_trip,
    failure_trips,
    is_health_failure,
    quality_fell,
    quality_trip,
    rating_of,
    result_counts,
    window_start,
)
from consumer.dispatch.settings import quality_guard_from_env
from runtime.env import SettingsError
from schemas.requests import QualityGuard

DEFAULTS = Guard(
    enabled=True, window_seconds=600, min_sends=50, max_failure_rate=0.2, pause_at_quality="YELLOW"
)
RATINGS = ("GREEN", "YELLOW", "RED")


# --- the effective guard -------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (None, DEFAULTS),
        (QualityGuard(), DEFAULTS),
        (QualityGuard(enabled=False), Guard(False, 600, 50, 0.2, "YELLOW")),
        (QualityGuard(window_seconds=60), Guard(True, 60, 50, 0.2, "YELLOW")),
        (QualityGuard(min_sends=1), Guard(True, 600, 1, 0.2, "YELLOW")),
        (QualityGuard(max_failure_rate=1.0), Guard(True, 600, 50, 1.0, "YELLOW")),
        (QualityGuard(pause_at_quality="RED"), Guard(True, 600, 50, 0.2, "RED")),
        (
            QualityGuard(
                enabled=True,
                window_seconds=3600,
                min_sends=200,
                max_failure_rate=0.05,
                pause_at_quality="GREEN",
            ),
            Guard(True, 3600, 200, 0.05, "GREEN"),
        ),
    ],
)
def test_each_field_left_out_takes_the_default(
    option: QualityGuard | None, expected: Guard
) -> None:
    assert effective_guard(option, DEFAULTS) == expected


def test_no_guard_object_takes_the_defaults_even_when_they_are_off() -> None:
    off = Guard(enabled=False)
    assert effective_guard(None, off) == off
    # A request that gives a guard object asks to be guarded.
    assert effective_guard(QualityGuard(min_sends=10), off).enabled


options = st.builds(
    QualityGuard,
    enabled=st.booleans(),
    window_seconds=st.none() | st.integers(60, 7 * 86_400),
    min_sends=st.none() | st.integers(1, 1_000_000),
    max_failure_rate=st.none() | st.floats(0.001, 1.0),
    pause_at_quality=st.none() | st.sampled_from(RATINGS),
)
guards = st.builds(
    Guard,
    enabled=st.booleans(),
    window_seconds=st.integers(60, 7 * 86_400),
    min_sends=st.integers(1, 10_000),
    max_failure_rate=st.floats(0.001, 1.0),
    pause_at_quality=st.sampled_from(RATINGS),
)


@given(options, guards)
def test_a_given_field_wins_and_a_missing_one_is_the_default(
    option: QualityGuard, defaults: Guard
) -> None:
    guard = effective_guard(option, defaults)
    assert guard.enabled == option.enabled
    for name in ("window_seconds", "min_sends", "max_failure_rate", "pause_at_quality"):
        given_value = getattr(option, name)
        assert getattr(guard, name) == (
            getattr(defaults, name) if given_value is None else given_value
        )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Guard(True, 3600, 100, 0.1, "YELLOW")),
        (
            {
                "DISPATCH_QUALITY_GUARD_ENABLED": "false",
                "DISPATCH_QUALITY_GUARD_WINDOW_SECONDS": "900",
                "DISPATCH_QUALITY_GUARD_MIN_SENDS": "20",
                "DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE": "0.25",
                "DISPATCH_QUALITY_GUARD_PAUSE_AT_QUALITY": "red",
            },
            Guard(False, 900, 20, 0.25, "RED"),
        ),
        ({"DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE": "1"}, Guard(True, 3600, 100, 1.0, "YELLOW")),
    ],
)
def test_the_defaults_come_from_the_environment(env: dict[str, str], expected: Guard) -> None:
    assert quality_guard_from_env(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"DISPATCH_QUALITY_GUARD_WINDOW_SECONDS": "59"},
        {"DISPATCH_QUALITY_GUARD_WINDOW_SECONDS": str(7 * 86_400 + 1)},
        {"DISPATCH_QUALITY_GUARD_MIN_SENDS": "0"},
        {"DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE": "0"},
        {"DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE": "1.5"},
        {"DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE": "ten"},
        {"DISPATCH_QUALITY_GUARD_PAUSE_AT_QUALITY": "ORANGE"},
        {"DISPATCH_QUALITY_GUARD_ENABLED": "maybe"},
    ],
)
def test_a_bad_default_fails_at_start_with_the_variable_name(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        quality_guard_from_env(env)


# --- what counts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "provider_code", "health"),
    [
        ("ecosystem_engagement", 131049, True),
        (None, 131049, True),
        ("recipient_blocked", 1013, True),
        (None, 1013, True),
        ("spam_rate_limited", 131048, True),
        # 131048 alone is quota_exceeded: the tier, not the template's health.
        (None, 131048, False),
        ("quota_exceeded", 131048, False),
        ("recipient_not_on_whatsapp", 131026, False),
        ("template_paused", 132015, False),
        ("whatsapp_upstream_error", 131000, False),
        ("pair_rate_limited", 131056, False),
        ("something_new", None, False),
        (None, None, False),
    ],
)
def test_health_failures_are_the_ones_meta_counts_against_quality(
    code: str | None, provider_code: int | None, health: bool
) -> None:
    assert is_health_failure(code, provider_code) is health


@pytest.mark.parametrize(
    ("status", "error_code", "counts"),
    [
        ("queued", None, (1, 0)),
        ("failed", "recipient_blocked", (1, 1)),
        ("pending", "spam_rate_limited", (1, 1)),
        ("failed", "invalid_phone_number", (0, 0)),
        ("pending", "rate_limit_exceeded", (0, 0)),
        ("pending", "quota_exceeded", (0, 0)),
        ("pending", None, (0, 0)),
    ],
)
def test_what_one_send_result_adds(
    status: str, error_code: str | None, counts: tuple[int, int]
) -> None:
    assert result_counts(status, error_code) == counts


def test_the_health_codes() -> None:
    assert {"ecosystem_engagement", "recipient_blocked", "spam_rate_limited"} == HEALTH_CODES


@pytest.mark.parametrize(
    ("sent_at", "active", "since", "counted"),
    [
        (100.0, True, 100.0, True),
        (100.0, True, 99.0, True),
        (99.9, True, 100.0, False),  # sent before the resume
        (200.0, False, 100.0, False),  # answered after a trip (or a pause)
    ],
)
def test_only_what_an_active_campaign_sent_since_its_activation_counts(
    sent_at: float, active: bool, since: float, counted: bool
) -> None:
    assert counts_toward(sent_at, active, since) is counted


# --- the window ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "window", "since", "start"),
    [
        (3600.0, 600, None, 3000.0),
        (3630.0, 600, None, 3000.0),  # 3030 lies in the minute from 3000
        (3659.9, 60, None, 3540.0),
        (3600.0, 600, 3300.0, 3300.0),  # resumed inside the window
        (3600.0, 600, 3310.0, 3300.0),  # the resume's own minute counts
        (3600.0, 600, 100.0, 3000.0),  # resumed long ago
    ],
)
def test_window_start(now: float, window: int, since: float | None, start: float) -> None:
    assert window_start(now, window, since) == start


events = st.lists(
    st.tuples(st.floats(0, 20_000), st.integers(0, 5), st.integers(0, 5)), max_size=60
)


@given(
    events,
    st.floats(0, 25_000),
    st.integers(60, 7200),
    st.none() | st.floats(0, 25_000),
)
def test_the_window_counts_exactly_the_minutes_it_overlaps(
    happened: list[tuple[float, int, int]], now: float, window: int, since: float | None
) -> None:
    folded = Window()
    for moment, sends, failures in happened:
        folded.add(moment, sends, failures)
    start = window_start(now, window, since)
    expected = Tally(
        sum(s for t, s, _ in happened if bucket_of(t) >= start),
        sum(f for t, _, f in happened if bucket_of(t) >= start),
    )
    assert folded.tally(now, window, since) == expected
    # So it holds at least the last `window` seconds (since the activation) and at most
    # a minute more.
    inside = [(t, s) for t, s, _ in happened if now - window < t and (since is None or t >= since)]
    assert folded.tally(now, window, since).sends >= sum(s for t, s in inside if t <= now)
    assert all(t > now - window - BUCKET_SECONDS for t, s, _ in happened if bucket_of(t) >= start)


@given(events)
def test_the_fold_is_order_insensitive(happened: list[tuple[float, int, int]]) -> None:
    forward, backward = Window(), Window()
    for moment, sends, failures in happened:
        forward.add(moment, sends, failures)
    for moment, sends, failures in reversed(happened):
        backward.add(moment, sends, failures)
    assert forward.buckets == backward.buckets


# --- the failure rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sends", "failures", "tripped"),
    [
        (0, 0, False),
        (49, 49, False),  # below min_sends, however bad
        (50, 10, False),  # exactly the max share: not over it
        (50, 11, True),
        (100, 20, False),
        (100, 21, True),
        (1000, 1000, True),
        (60, 5, False),
    ],
)
def test_the_failure_rule(sends: int, failures: int, tripped: bool) -> None:
    trip = failure_trip(DEFAULTS, Tally(sends, failures))
    assert (trip is not None) is tripped
    if trip is not None:
        assert trip == Trip("failure_rate", DEFAULTS, Tally(sends, failures))
    assert failure_trip(Guard(enabled=False), Tally(sends, failures)) is None


@given(guards, st.integers(0, 20_000), st.integers(0, 20_000))
def test_the_failure_rule_trips_on_the_share_over_the_max_once_min_sends_are_in(
    guard: Guard, sends: int, failures: int
) -> None:
    trip = failure_trip(guard, Tally(sends, failures))
    assert (trip is not None) == (
        guard.enabled and sends >= guard.min_sends and failures > guard.max_failure_rate * sends
    )
    if trip is not None:
        # Monotone: more failures, or the same share over more sends, trip as well.
        assert failure_trip(guard, Tally(sends, failures + 1)) is not None
        assert failure_trip(guard, Tally(sends * 2, failures * 2)) is not None
    else:
        assert failure_trip(guard, Tally(sends, max(failures - 1, 0))) is None


def test_failure_trips_judges_each_campaign_with_its_own_guard() -> None:
    strict, lenient = (
        Guard(min_sends=10, max_failure_rate=0.1),
        Guard(min_sends=10, max_failure_rate=0.5),
    )
    tallies = {"a": Tally(20, 5), "b": Tally(20, 5)}
    trips = failure_trips({"a": strict, "b": lenient, "c": strict}, tallies)
    assert set(trips) == {"a"}
    assert trips["a"].tally == Tally(20, 5)


# --- the quality rule ----------------------------------------------------------------


def _rank(rating: str) -> int:
    return RATINGS[::-1].index(rating)


@pytest.mark.parametrize("pause_at", RATINGS)
@pytest.mark.parametrize("before", RATINGS)
@pytest.mark.parametrize("after", RATINGS)
def test_the_quality_rule_for_every_pair_of_ratings(pause_at: str, before: str, after: str) -> None:
    fell = _rank(after) < _rank(before) and _rank(after) <= _rank(pause_at)
    assert quality_fell(before, after, pause_at) is fell  # type: ignore[arg-type]
    guard = Guard(pause_at_quality=pause_at)  # type: ignore[arg-type]
    trip = quality_trip(guard, before, after)
    assert (trip is not None) is fell
    if trip is not None:
        assert (trip.rule, trip.quality_before, trip.quality_after) == (
            "quality_rating",
            before,
            after,
        )
    assert quality_trip(Guard(enabled=False, pause_at_quality=pause_at), before, after) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "tripped"),
    [
        ("GREEN", "YELLOW", True),
        ("YELLOW", "RED", True),
        ("GREEN", "RED", True),
        # Started (or resumed) on a number already YELLOW: no fall while it runs.
        ("YELLOW", "YELLOW", False),
        ("RED", "RED", False),
        ("YELLOW", "GREEN", False),
        ("RED", "YELLOW", False),
        # The API's spelling varies; an absent or unknown rating says nothing.
        ("green", "yellow", True),
        (None, "RED", False),
        ("GREEN", None, False),
        ("GREEN", "UNKNOWN", False),
        ("NA", "RED", False),
    ],
)
def test_only_a_fall_to_the_guard_level_trips(
    before: str | None, after: str | None, tripped: bool
) -> None:
    assert (quality_trip(DEFAULTS, before, after) is not None) is tripped


@pytest.mark.parametrize(
    ("raw", "rating"),
    [("GREEN", "GREEN"), (" yellow ", "YELLOW"), ("Red", "RED"), ("", None), (None, None)],
)
def test_rating_of(raw: str | None, rating: str | None) -> None:
    assert rating_of(raw) == rating


@given(st.lists(st.sampled_from(RATINGS), min_size=1, max_size=30), st.sampled_from(RATINGS))
def test_a_rating_that_never_falls_never_trips(readings: list[str], pause_at: str) -> None:
    guard = Guard(pause_at_quality=pause_at)  # type: ignore[arg-type]
    steady = sorted(readings, key=_rank)  # only rises (or stays)
    for before, after in itertools.pairwise(steady):
        assert quality_trip(guard, before, after) is None


# --- a campaign's life: trips and resumes --------------------------------------------


@dataclass
class _Campaign:
    """A model of one campaign as the shell runs it: counts gated by `counts_toward`,
    cleared by a trip, judged at each step."""

    guard: Guard
    active: bool = True
    active_since: float = 0.0
    window: Window = field(default_factory=Window)
    trips: list[float] = field(default_factory=list)

    def record(self, now: float, sent_at: float, sends: int, failures: int) -> None:
        if counts_toward(sent_at, self.active, self.active_since):
            self.window.add(sent_at, sends, failures)
        self.judge(now)

    def judge(self, now: float) -> None:
        if not self.active:
            return
        tally = self.window.tally(now, self.guard.window_seconds, self.active_since)
        if failure_trip(self.guard, tally) is not None:
            self.active = False
            self.window.clear()
            self.trips.append(now)

    def resume(self, now: float) -> None:
        self.active, self.active_since = True, now


steps = st.lists(
    st.one_of(
        # (kind, seconds later, how long before now it was sent, sends, failures)
        st.tuples(
            st.just("send"), st.floats(0, 30), st.floats(0, 120), st.integers(0, 3), st.just(0)
        ),
        st.tuples(
            st.just("fail"), st.floats(0, 30), st.floats(0, 120), st.just(0), st.integers(0, 3)
        ),
        st.tuples(st.just("resume"), st.floats(0, 300), st.just(0.0), st.just(0), st.just(0)),
    ),
    max_size=80,
)


@given(steps, st.integers(1, 20), st.floats(0.05, 1.0))
def test_a_resumed_campaign_starts_from_zero_and_never_trips_on_old_failures(
    history: list[tuple[str, float, float, int, int]], min_sends: int, rate: float
) -> None:
    guard = Guard(window_seconds=600, min_sends=min_sends, max_failure_rate=rate)
    campaign, now = _Campaign(guard), 0.0
    # An oracle: what was sent since the campaign last became active, and counted.
    since_activation: list[tuple[float, int, int]] = []
    for kind, later, age, sends, failures in history:
        now += later
        if kind == "resume":
            if not campaign.active:
                campaign.resume(now)
                since_activation = []
                # Right after a resume the window is empty: nothing old can trip it.
                assert campaign.window.tally(now, 600, now) == Tally()
            continue
        was_active = campaign.active
        sent_at = now - age
        if was_active and sent_at >= campaign.active_since:
            since_activation.append((sent_at, sends, failures))
        campaign.record(now, sent_at, sends, failures)
        if was_active and not campaign.active:
            # A trip judged only what was sent since the last activation, min_sends of it.
            assert sum(s for _, s, _ in since_activation) >= min_sends
            assert sum(f for _, _, f in since_activation) > 0
        if not campaign.active:
            assert campaign.window.buckets == {}


@given(st.integers(1, 50), st.floats(0.05, 0.9), st.integers(0, 500))
def test_what_tripped_a_campaign_does_not_trip_it_again_after_the_resume(
    min_sends: int, rate: float, late_failures: int
) -> None:
    guard = Guard(window_seconds=600, min_sends=min_sends, max_failure_rate=rate)
    campaign = _Campaign(guard)
    # Every send fails: it trips once min_sends are in.
    for i in range(min_sends):
        campaign.record(float(i), float(i), 1, 1)
    assert not campaign.active
    tripped_at = campaign.trips[0]
    # Late failures of messages sent before the trip arrive while it is paused...
    for i in range(late_failures // 2):
        campaign.record(tripped_at + 1 + i * 0.01, float(i % min_sends), 0, 1)
    campaign.resume(tripped_at + 5)
    # ... and after the resume: none counts, so the campaign stays active.
    for i in range(late_failures - late_failures // 2):
        campaign.record(tripped_at + 6 + i * 0.01, float(i % min_sends), 0, 1)
    assert campaign.active
    assert campaign.trips == [tripped_at]
    assert campaign.window.tally(tripped_at + 10, 600, campaign.active_since) == Tally()
