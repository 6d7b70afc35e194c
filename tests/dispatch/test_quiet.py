"""Quiet hours in the recipient's local time (consumer/dispatch/quiet.py): tables for the
rule's cases (midnight, DST gaps and overlaps, several zones, unknown zones, zones with
no common hour) and Hypothesis properties against a minute-by-minute oracle."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number

from consumer.dispatch.quiet import (
    HORIZON_SECONDS,
    Window,
    deferral_until,
    judged_zones,
    quiet_deferrals,
    quiet_from,
    quiet_until,
    zones_of,
)
from schemas.requests import QuietHours

NIGHT = QuietHours(start="21:00", end="08:00")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def hours(start: str, end: str, zone: str | None = None) -> QuietHours:
    return QuietHours(start=start, end=end, time_zone=zone)


# --- tables ---------------------------------------------------------------------------

JAKARTA = ("Asia/Jakarta",)  # UTC+7, no DST
NEW_YORK = ("America/New_York",)  # DST 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00
APART = ("Etc/GMT-6", "Etc/GMT+6")  # UTC+6 and UTC-6


@pytest.mark.parametrize(
    ("zones", "quiet", "now", "expected"),
    [
        # 22:00 in Jakarta: quiet until 08:00 there, 01:00 UTC the next day.
        (JAKARTA, NIGHT, utc(2026, 1, 15, 15), utc(2026, 1, 16, 1)),
        # Noon in Jakarta: sendable.
        (JAKARTA, NIGHT, utc(2026, 1, 15, 5), None),
        # 08:00 sharp is outside (end excluded), 21:00 sharp inside (start included).
        (JAKARTA, NIGHT, utc(2026, 1, 16, 1), None),
        (JAKARTA, NIGHT, utc(2026, 1, 16, 0, 59, 59), utc(2026, 1, 16, 1)),
        (JAKARTA, NIGHT, utc(2026, 1, 15, 14), utc(2026, 1, 16, 1)),
        (JAKARTA, NIGHT, utc(2026, 1, 15, 13, 59, 59), None),
        # A window inside one day (a lunch break).
        (JAKARTA, hours("12:00", "13:00"), utc(2026, 1, 15, 5, 30), utc(2026, 1, 15, 6)),
        (JAKARTA, hours("12:00", "13:00"), utc(2026, 1, 15, 6), None),
        # After midnight, before the end: the same night's end.
        (JAKARTA, NIGHT, utc(2026, 1, 15, 20), utc(2026, 1, 16, 1)),
        # Two zones (+7, +9): quiet from 21:00 in the eastern (12:00 UTC) to 08:00 in
        # the western (01:00 UTC): Jayapura's morning at 23:00 UTC is still Jakarta's night.
        (("Asia/Jakarta", "Asia/Jayapura"), NIGHT, utc(2026, 1, 15, 12, 30), utc(2026, 1, 16, 1)),
        (("Asia/Jakarta", "Asia/Jayapura"), NIGHT, utc(2026, 1, 15, 11, 59), None),
        (("Asia/Jakarta", "Asia/Jayapura"), NIGHT, utc(2026, 1, 16, 0, 30), utc(2026, 1, 16, 1)),
        # DST gap: a window ending at 02:30 on the night the clock jumps 02:00 -> 03:00
        # ends at the jump (07:00 UTC), not an hour after it.
        (NEW_YORK, hours("01:00", "02:30"), utc(2026, 3, 8, 6, 10), utc(2026, 3, 8, 7)),
        # DST overlap: 00:30-01:30 ends at 01:30 EDT (05:30 UTC); at 06:00 UTC the clock
        # is back at 01:00 EST, quiet again until 01:30 EST (06:30 UTC).
        (NEW_YORK, hours("00:30", "01:30"), utc(2026, 11, 1, 5, 10), utc(2026, 11, 1, 5, 30)),
        (NEW_YORK, hours("00:30", "01:30"), utc(2026, 11, 1, 5, 45), None),
        (NEW_YORK, hours("00:30", "01:30"), utc(2026, 11, 1, 6), utc(2026, 11, 1, 6, 30)),
        # The jump back leaves a 01:30-02:30 window below its start: sendable at 06:00 UTC.
        (NEW_YORK, hours("01:30", "02:30"), utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6)),
        # No known zone: the request's time_zone, else UTC.
        ((), NIGHT, utc(2026, 1, 15, 22), utc(2026, 1, 16, 8)),
        ((), hours("21:00", "08:00", "Asia/Tokyo"), utc(2026, 1, 15, 13), utc(2026, 1, 15, 23)),
        (("Not/A_Zone",), NIGHT, utc(2026, 1, 15, 12), None),
        (("Not/A_Zone",), NIGHT, utc(2026, 1, 15, 22), utc(2026, 1, 16, 8)),
        # Twelve hours apart with eleven allowed hours: no common instant, so the most
        # western zone (UTC-6) alone decides: quiet 20:00-09:00 there is 02:00-15:00 UTC.
        (
            ("Etc/GMT-6", "Etc/GMT+6"),
            hours("20:00", "09:00"),
            utc(2026, 1, 15, 3),
            utc(2026, 1, 15, 15),
        ),
        (("Etc/GMT-6", "Etc/GMT+6"), hours("20:00", "09:00"), utc(2026, 1, 15, 16), None),
        # The longest window: a minute's sending a day.
        (JAKARTA, hours("00:01", "00:00"), utc(2026, 1, 15, 18), utc(2026, 1, 15, 17)),
    ],
)
def test_quiet_until(
    zones: tuple[str, ...], quiet: QuietHours, now: float, expected: float | None
) -> None:
    if expected is not None and expected < now:
        expected += 86_400  # the next day's (written as the day's, for reading)
    assert quiet_until(zones, quiet, now) == expected


def test_zones_without_a_common_hour_are_judged_in_the_most_western() -> None:
    quiet = hours("20:00", "09:00")
    assert judged_zones(("Etc/GMT-6", "Etc/GMT+6"), quiet, utc(2026, 1, 15)) == ("Etc/GMT+6",)
    # With a common hour, every zone counts.
    assert judged_zones(("Asia/Jakarta", "Asia/Jayapura"), NIGHT, utc(2026, 1, 15)) == (
        "Asia/Jakarta",
        "Asia/Jayapura",
    )
    assert judged_zones((), hours("21:00", "08:00", "Asia/Tokyo"), 0.0) == ("Asia/Tokyo",)


@pytest.mark.parametrize(
    ("zones", "quiet", "now", "expected"),
    [
        (JAKARTA, NIGHT, utc(2026, 1, 15, 5), utc(2026, 1, 15, 14)),
        (JAKARTA, NIGHT, utc(2026, 1, 15, 15), utc(2026, 1, 15, 15)),  # quiet now: now
        (("Asia/Jakarta", "Asia/Jayapura"), NIGHT, utc(2026, 1, 15, 5), utc(2026, 1, 15, 12)),
        # The jump back at 06:00 UTC puts the clock at 01:00 EST, inside 00:30-01:30.
        (NEW_YORK, hours("00:30", "01:30"), utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6)),
    ],
)
def test_quiet_from(zones: tuple[str, ...], quiet: QuietHours, now: float, expected: float) -> None:
    assert quiet_from(zones, quiet, now) == expected


@pytest.mark.parametrize(
    ("opens", "uncertain_since", "now", "expected"),
    [
        (1_000.0, None, 0.0, 1_000.0),  # not in doubt: when the window opens
        (1_000.0, 500.0, 600.0, 1_000.0),  # in doubt, the key outlives the wait
        (100_000.0, 500.0, 600.0, 500.0 + 900.0),  # key ttl 1,000: repeated at 9/10 of it
        (100_000.0, 500.0, 1_400.0, None),  # that moment has come: send now
    ],
)
def test_a_send_in_doubt_is_repeated_within_its_key_window(
    opens: float, uncertain_since: float | None, now: float, expected: float | None
) -> None:
    assert deferral_until(opens, uncertain_since, 1_000.0, now) == expected


@dataclass(frozen=True)
class Row:
    campaign_id: uuid.UUID
    phone: str
    uncertain_since: float | None = None


def test_a_batch_defers_only_the_quiet_rows_of_campaigns_with_quiet_hours() -> None:
    quiet, plain = uuid.uuid4(), uuid.uuid4()
    now = utc(2026, 1, 15, 15)  # 22:00 in Jakarta, 16:00 in Berlin
    jakarta, berlin = "+6281112223333", "+4915112345678"
    rows = [
        Row(quiet, jakarta),
        Row(quiet, berlin),
        Row(plain, jakarta),
        Row(quiet, "+6285712345678", uncertain_since=now - 23 * 3600),
    ]
    deferred = quiet_deferrals(rows, {quiet: NIGHT, plain: None}, now, 23 * 3600.0)
    # Jakarta's +6281... is also Makassar's (+8): quiet until 08:00 in Jakarta.
    assert deferred == [(rows[0], utc(2026, 1, 16, 1))]
    assert quiet_deferrals(rows, {}, now, 23 * 3600.0) == []


# --- a phone's zones --------------------------------------------------------------------


def _phonenumbers_zones(phone: str) -> tuple[str, ...]:
    zones = time_zones_for_number(phonenumbers.parse(phone, None))
    return tuple(zone for zone in zones if zone != UNKNOWN_TIMEZONE)


def _examples() -> list[str]:
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in range(12):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None and phonenumbers.is_valid_number(example):
                found.add(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            found.add(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


def test_zones_of_every_example_number_are_phonenumbers_own() -> None:
    examples = _examples()
    assert len(examples) > 1_000
    assert {p: zones_of(p) for p in examples} == {p: _phonenumbers_zones(p) for p in examples}


@pytest.mark.parametrize(
    ("phone", "zones"),
    [
        ("+4915112345678", ("Europe/Berlin",)),
        ("+628151234567", ("Asia/Jakarta",)),
        ("+6281112223333", ("Asia/Jakarta", "Asia/Makassar")),
        ("+14155550100", ("America/Los_Angeles",)),
        ("+12125550100", ("America/New_York",)),
        ("+919812345678", ("Asia/Calcutta",)),
        ("+99", ()),
        ("+", ()),
    ],
)
def test_zones_of(phone: str, zones: tuple[str, ...]) -> None:
    assert zones_of(phone) == zones


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    """Valid numbers of any region: an example number with some of its digits replaced."""
    base = draw(st.sampled_from(_EXAMPLES))
    digits = list(base[1:])
    code = len(str(phonenumbers.parse(base, None).country_code))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(code, len(digits) - 1))
        digits[index] = str(draw(st.integers(0, 9)))
    phone = "+" + "".join(digits)
    assume(phonenumbers.is_valid_number(phonenumbers.parse(phone, None)))
    return phone


_EXAMPLES = _examples()


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much])
@given(valid_numbers())
def test_zones_of_any_valid_number_are_phonenumbers_own(phone: str) -> None:
    assert zones_of(phone) == _phonenumbers_zones(phone)


# --- properties against a minute-by-minute oracle ---------------------------------------

ZONES = (
    "UTC",
    "Asia/Jakarta",
    "Asia/Makassar",
    "Asia/Jayapura",
    "Asia/Kathmandu",  # +05:45
    "Asia/Tehran",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # -03:30 with DST
    "America/Santiago",  # southern DST
    "Europe/London",
    "Europe/Berlin",
    "Africa/Casablanca",  # DST off during Ramadan
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Australia/Adelaide",
    "Pacific/Chatham",  # +12:45 with DST
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "Etc/GMT+6",
    "Etc/GMT-6",
)


def _transitions(years: range) -> list[float]:
    """Every UTC offset change of ZONES in `years`, to the minute (the oracle's own)."""
    found = []
    for name in ZONES:
        zone = zoneinfo.ZoneInfo(name)
        at = datetime(years.start, 1, 1, tzinfo=UTC)
        end = datetime(years.stop, 1, 1, tzinfo=UTC)
        before = at.astimezone(zone).utcoffset()
        while at < end:
            step = at + timedelta(hours=1)
            if step.astimezone(zone).utcoffset() != before:
                before = step.astimezone(zone).utcoffset()
                found.append(step.timestamp())
            at = step
    return found


TRANSITIONS = _transitions(range(2025, 2028))


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _pair(start: int, length: int) -> tuple[str, str]:
    return _clock(start), _clock((start + length) % 1440)


# Any start, any length from a minute to a minute short of a day; often an end (or a
# start) in the small hours, where the clocks change.
quiet_hours = st.one_of(
    st.builds(
        lambda start, length: hours(*_pair(start, length)),
        st.integers(0, 1439),
        st.integers(1, 1439),
    ),
    st.builds(
        lambda small, length, swap: hours(
            *reversed(_pair(small, length)) if swap else _pair(small, length)
        ),
        st.integers(0, 4 * 60),
        st.integers(1, 1439),
        st.booleans(),
    ),
)
instants = st.one_of(
    st.floats(utc(2025, 1, 1), utc(2028, 1, 1)),
    # Near a DST change, where the gaps and overlaps are.
    st.builds(
        lambda at, shift: at + shift,
        st.sampled_from(TRANSITIONS),
        st.floats(-36 * 3600.0, 12 * 3600.0),
    ),
)
zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=4, unique=True).map(tuple)


def oracle_sendable(zones: tuple[str, ...], quiet: QuietHours, at: float) -> bool:
    start = int(quiet.start[:2]) * 60 + int(quiet.start[3:])
    end = int(quiet.end[:2]) * 60 + int(quiet.end[3:])
    for name in zones:
        local = datetime.fromtimestamp(at, zoneinfo.ZoneInfo(name))
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start < end else not end <= minute < start
        if inside:
            return False
    return True


def oracle_first_sendable(zones: tuple[str, ...], quiet: QuietHours, now: float) -> float | None:
    """The first whole UTC minute after `now` sendable in every zone, within the horizon:
    every offset and DST change of these zones is on a whole minute, so sendability is
    constant within each minute."""
    minute = (int(now) // 60 + 1) * 60
    while minute <= now + HORIZON_SECONDS:
        if oracle_sendable(zones, quiet, minute):
            return float(minute)
        minute += 60
    return None


@settings(max_examples=600, deadline=None)
@given(zone_sets, quiet_hours, instants)
def test_quiet_until_is_the_first_sendable_instant(
    zones: tuple[str, ...], quiet: QuietHours, now: float
) -> None:
    judged = judged_zones(zones, quiet, now)
    until = quiet_until(zones, quiet, now)
    assert (until is None) == oracle_sendable(judged, quiet, now)
    event("sendable now" if until is None else "quiet now")
    event("judged in one zone" if judged != zones else "judged in every zone")
    if until is None:
        return
    assert now < until < now + HORIZON_SECONDS
    assert oracle_sendable(judged, quiet, until)
    # No earlier sendable instant: every minute between is quiet.
    assert oracle_first_sendable(judged, quiet, now) == until
    # Once there, it may be sent (the dispatcher claims it again at `until`).
    assert quiet_until(zones, quiet, until) is None


@settings(max_examples=150, deadline=None)
@given(zone_sets, quiet_hours, instants)
def test_every_zone_counts_unless_they_share_no_sendable_instant(
    zones: tuple[str, ...], quiet: QuietHours, now: float
) -> None:
    judged = judged_zones(zones, quiet, now)
    if judged == zones:
        return
    # Judged in one zone only when the set has no common instant within the horizon.
    assert len(judged) == 1
    assert judged[0] in zones
    assert not oracle_sendable(zones, quiet, now)
    assert oracle_first_sendable(zones, quiet, now) is None
    offsets = {
        z: datetime.fromtimestamp(now, zoneinfo.ZoneInfo(z)).utcoffset() or timedelta(0)
        for z in zones
    }
    assert offsets[judged[0]] == min(offsets.values())


@settings(max_examples=200, deadline=None)
@given(zone_sets, quiet_hours, instants)
def test_quiet_from_is_the_first_quiet_instant(
    zones: tuple[str, ...], quiet: QuietHours, now: float
) -> None:
    judged = judged_zones(zones, quiet, now)
    begins = quiet_from(zones, quiet, now)
    if not oracle_sendable(judged, quiet, now):
        assert begins == now
        return
    assert now < begins < now + HORIZON_SECONDS
    assert not oracle_sendable(judged, quiet, begins)
    minute = (int(now) // 60 + 1) * 60
    while minute < begins:
        assert oracle_sendable(judged, quiet, minute)
        minute += 60


def test_window_minutes() -> None:
    assert Window(21 * 60, 8 * 60).quiet_at(0)
    assert not Window(21 * 60, 8 * 60).quiet_at(8 * 60)
    assert Window(12 * 60, 13 * 60).quiet_at(12 * 60)
    assert not Window(12 * 60, 13 * 60).quiet_at(13 * 60)
