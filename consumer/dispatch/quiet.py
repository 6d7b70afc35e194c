"""Quiet hours: when a recipient may be messaged, judged in their local time (pure).

A campaign's `quiet_hours` (`schemas.requests.QuietHours`) is a local wall-clock window,
`start` included, `end` excluded, usually across midnight (`21:00`-`08:00`). The rule:

- A phone's zones are its number's, from the `phonenumbers` time-zone data (`zones_of`).
  A number with no known zone is judged in the request's `time_zone` (UTC when absent).
- A number that maps to several zones is sendable only when it is outside the window in
  every one of them (quiet when any is).
- Zones whose allowed hours do not meet within `HORIZON_SECONDS` (two days: their offsets
  are further apart than the allowed hours are long, e.g. the 42 zones of a
  non-geographic +1 number, Guam to Pago Pago) are judged in the most western of them
  alone: the smallest UTC offset now, ties by name. One zone decides, so a message never
  waits for an instant that does not exist; the eastern zones may then get it in their
  quiet hours. `judged_zones` says which zones a decision used.
- Local time is zoneinfo's: in a DST gap the clock jumps (a window ending inside the gap
  ends at the jump), in an overlap the repeated hour counts twice.

`quiet_until(zones, hours, now)` is None when the recipient is sendable now, else the
first instant at which it is; no clock is read here. It looks only at the instants where
the answer can change (each zone's local `end` on the days around, in both folds, and
its UTC offset changes, found by sampling every `_SAMPLE_SECONDS` and bisecting), so a
decision costs microseconds; `quiet_deferrals` decides a claimed batch with one
`quiet_until` per distinct (quiet hours, zones) pair.

`zones_of` is cached two ways, both exact for the valid E.164 numbers the ledger holds
(intake refuses the rest): a country code whose every time-zone entry agrees (185 of the
215 codes, Germany's, India's...) answers from the code alone; the others (+1, +7, +62,
+61...) parse the number, behind a bounded LRU.
"""

from __future__ import annotations

import functools
import math
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Protocol, TypeVar

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA

from consumer.dispatch.settle import settle_before
from schemas.requests import QuietHours

HORIZON_SECONDS: Final = 48 * 3600.0
DEFAULT_ZONE: Final = "UTC"
# No zone changes its UTC offset twice within six hours (tzdata's transitions are weeks
# apart), so sampling the offset this often finds every change.
_SAMPLE_SECONDS: Final = 6 * 3600
_BY_NUMBER_CACHE: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class Window:
    """Quiet hours as minutes after local midnight: quiet in [start, end), modulo a day."""

    start: int
    end: int
    fallback: str = DEFAULT_ZONE

    def quiet_at(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@functools.lru_cache(maxsize=1024)
def window_of(hours: QuietHours) -> Window:
    return Window(_minutes(hours.start), _minutes(hours.end), hours.time_zone or DEFAULT_ZONE)


# --- a phone's zones ------------------------------------------------------------------


def _country_code(phone: str) -> int | None:
    """The calling code of an E.164 string (codes are prefix-free: the first that is one)."""
    digits = phone[1:4]
    for length in (1, 2, 3):
        code = digits[:length]
        if code.isdigit() and int(code) in COUNTRY_CODE_TO_REGION_CODE:
            return int(code)
    return None


@functools.cache
def _uniform_zones() -> dict[int, tuple[str, ...]]:
    """Country codes for which every valid number has the same zones, and those zones.

    phonenumbers answers a valid number from the longest prefix of its digits found in
    TIMEZONE_DATA (geographic types), else from the country code's own entry (the rest).
    When the code has an entry and every longer entry under it holds the same zones, both
    paths give that entry, whatever the number.
    """
    entries: dict[int, set[tuple[str, ...]]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        code = _country_code("+" + prefix)
        if code is not None and prefix.startswith(str(code)):
            entries.setdefault(code, set()).add(zones)
    return {
        code: TIMEZONE_DATA[str(code)]
        for code, found in entries.items()
        if str(code) in TIMEZONE_DATA and found == {TIMEZONE_DATA[str(code)]}
    }


@functools.lru_cache(maxsize=_BY_NUMBER_CACHE)
def _zones_by_number(phone: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(zone for zone in time_zones_for_number(parsed) if zone != UNKNOWN_TIMEZONE)


def zones_of(phone: str) -> tuple[str, ...]:
    """The IANA zones of an E.164 number per phonenumbers; () when it knows none."""
    code = _country_code(phone)
    if code is None:
        return ()
    uniform = _uniform_zones().get(code)
    return uniform if uniform is not None else _zones_by_number(phone)


@functools.cache
def _zone(name: str) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _resolved(zones: Sequence[str], window: Window) -> list[tuple[str, tzinfo]]:
    """The zones that zoneinfo knows, or the fallback zone when none is (or none given)."""
    known = [(name, zone) for name in zones if (zone := _zone(name)) is not None]
    if known:
        return known
    fallback = _zone(window.fallback) or UTC
    return [(window.fallback, fallback)]


# --- instants -------------------------------------------------------------------------


def _minute_at(zone: tzinfo, at: float) -> int:
    local = datetime.fromtimestamp(at, zone)
    return local.hour * 60 + local.minute


def _sendable(zones: Sequence[tuple[str, tzinfo]], window: Window, at: float) -> bool:
    return not any(window.quiet_at(_minute_at(zone, at)) for _, zone in zones)


def _offset(zone: tzinfo, at: float) -> timedelta | None:
    return datetime.fromtimestamp(at, zone).utcoffset()


def _offset_changes(zone: tzinfo, lo: float, hi: float) -> list[float]:
    """The instants in (lo, hi] (to the second) where the zone's UTC offset changes."""
    found: list[float] = []
    left, before = lo, _offset(zone, lo)
    while left < hi:
        right = min(left + _SAMPLE_SECONDS, hi)
        after = _offset(zone, right)
        if after != before:
            # The first whole second with the new offset (tzdata changes on whole seconds).
            low, high = math.floor(left), math.ceil(right)
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(zone, middle) == before:
                    low = middle
                else:
                    high = middle
            found.append(float(high))
        left, before = right, after
    return found


def _crossings(zone: tzinfo, minute: int, lo: float, hi: float) -> list[float]:
    """Instants in (lo, hi] at which the zone's clock reads `minute` (both folds)."""
    found: list[float] = []
    day: date = datetime.fromtimestamp(lo, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(hi, zone).date() + timedelta(days=1)
    hour, rest = divmod(minute, 60)
    while day <= last:
        for fold in (0, 1):
            local = datetime(day.year, day.month, day.day, hour, rest, tzinfo=zone, fold=fold)
            at = local.timestamp()
            if lo < at <= hi:
                found.append(at)
        day += timedelta(days=1)
    return found


def _first(
    zones: Sequence[tuple[str, tzinfo]], window: Window, now: float, *, sendable: bool
) -> float | None:
    """The first instant in [now, now + HORIZON] at which sendability is `sendable`.

    Sendability changes only where some zone's clock reaches `end` (quiet ends) or
    `start` (quiet begins), or where a zone's offset changes (its clock jumps); each
    such instant is a candidate, checked in order. Candidates that change nothing are
    harmless, so the list only needs to be complete.
    """
    if _sendable(zones, window, now) == sendable:
        return now
    hi = now + HORIZON_SECONDS
    minute = window.end if sendable else window.start
    candidates: set[float] = set()
    for _, zone in zones:
        candidates.update(_crossings(zone, minute, now, hi))
        candidates.update(_offset_changes(zone, now, hi))
    for at in sorted(candidates):
        if _sendable(zones, window, at) == sendable:
            return at
    return None


def _western(zones: Sequence[tuple[str, tzinfo]], now: float) -> tuple[str, tzinfo]:
    return min(zones, key=lambda named: (_offset(named[1], now) or timedelta(0), named[0]))


def _judged(
    zones: Sequence[str], window: Window, now: float
) -> tuple[list[tuple[str, tzinfo]], float | None]:
    """(the zones the decision uses, the first instant from now sendable in them)."""
    resolved = _resolved(zones, window)
    opens = _first(resolved, window, now, sendable=True)
    if opens is None and len(resolved) > 1:
        resolved = [_western(resolved, now)]
        opens = _first(resolved, window, now, sendable=True)
    return resolved, opens


def judged_zones(zones: Sequence[str], hours: QuietHours, now: float) -> tuple[str, ...]:
    """The zones quiet hours are judged in for a phone with `zones` (see the module)."""
    judged, _ = _judged(zones, window_of(hours), now)
    return tuple(name for name, _ in judged)


def quiet_until(zones: Sequence[str], hours: QuietHours, now: float) -> float | None:
    """None when a phone with `zones` may be messaged at `now`; else the first instant
    after it at which it may (sendable in every judged zone), within two days."""
    _, opens = _judged(zones, window_of(hours), now)
    if opens is None:
        # Unreachable with tzdata: one zone's clock reaches `end` every day.
        return now + HORIZON_SECONDS
    return None if opens == now else opens


def quiet_from(zones: Sequence[str], hours: QuietHours, now: float) -> float:
    """The first instant from `now` at which a phone with `zones` is inside its quiet
    hours (`now` itself when it is), judged in the same zones as `quiet_until`."""
    window = window_of(hours)
    judged, _ = _judged(zones, window, now)
    begins = _first(judged, window, now, sendable=False)
    return now + HORIZON_SECONDS if begins is None else begins


# --- a claimed batch ------------------------------------------------------------------


class QuietRow(Protocol):
    @property
    def campaign_id(self) -> uuid.UUID: ...
    @property
    def phone(self) -> str: ...
    @property
    def uncertain_since(self) -> float | None: ...


R = TypeVar("R", bound=QuietRow)


def deferral_until(
    opens: float, uncertain_since: float | None, key_ttl_seconds: float, now: float
) -> float | None:
    """When to look at a quiet recipient again: when its window opens, except that a send
    in doubt (it may have landed) is repeated while the API still replays its key (the
    repeat then sends nothing new): at nine tenths of the key's lifetime at the latest,
    and at once (None: send now) when that moment has come."""
    latest = settle_before(uncertain_since, key_ttl_seconds, key_ttl_seconds / 10)
    if latest is None:
        return opens
    if latest <= now:
        return None
    return min(opens, latest)


def quiet_deferrals(
    rows: Sequence[R],
    hours_by_campaign: Mapping[uuid.UUID, QuietHours | None],
    now: float,
    key_ttl_seconds: float,
) -> list[tuple[R, float]]:
    """The rows to defer for quiet hours, each with when to look at it again (> now).

    Rows of campaigns without quiet hours, and rows sendable now, are not in the list.
    """
    opening: dict[tuple[QuietHours, tuple[str, ...]], float | None] = {}
    deferred: list[tuple[R, float]] = []
    for row in rows:
        hours = hours_by_campaign.get(row.campaign_id)
        if hours is None:
            continue
        key = (hours, zones_of(row.phone))
        if key not in opening:
            opening[key] = quiet_until(key[1], hours, now)
        opens = opening[key]
        if opens is None:
            continue
        until = deferral_until(opens, row.uncertain_since, key_ttl_seconds, now)
        if until is not None:
            deferred.append((row, until))
    return deferred
