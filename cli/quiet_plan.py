"""Quiet hours in the fit plan: who is inside them now, when they open, the ETA (pure).

The eligible recipients are grouped by the zones their quiet hours are judged in
(`consumer.dispatch.quiet`, the dispatcher's own rule). A group is *open* outside its
quiet hours; the plan says how many recipients are in a closed group now and when each
group opens.

The ETA is a simulation of the dispatcher under the same assumptions as the plain fit
plan (cli/plan.py: the organisation's write rate is this campaign's alone; the tier's
capacity comes back a window after the window's first contact), plus: only open groups
are sent; the rate goes to the open group whose hours close first (so the ETA is still
a best case); each group's hours over the next day repeat daily (a DST change later in
the campaign shifts them by an hour, which the plan ignores). A campaign the simulation
does not see finish within `MAX_DAYS` gets no ETA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from cli.errors import UsageError
from consumer.dispatch.quiet import judged_zones, quiet_from, quiet_until
from consumer.dispatch.tiers import UNLIMITED
from schemas.errors import InvalidEvent
from schemas.requests import QuietHours

DAY: Final = 86_400.0
MAX_DAYS: Final = 3 * 365
_MAX_STEPS: Final = 200_000
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class ZoneGroup:
    """Recipients whose quiet hours are judged in the same zones."""

    zones: tuple[str, ...]
    recipients: int
    # None: open now; else when its quiet hours end.
    opens_at: float | None
    # The open intervals [start, end) of the day from the plan's start (seconds since it).
    day: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Opening:
    """Recipients whose quiet hours end at one instant."""

    at: float
    recipients: int
    zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuietPlan:
    hours: QuietHours
    start: float
    groups: tuple[ZoneGroup, ...]

    @property
    def quiet_now(self) -> int:
        return sum(g.recipients for g in self.groups if g.opens_at is not None)

    @property
    def openings(self) -> list[Opening]:
        """When the groups closed now open, soonest first (groups opening together merged)."""
        merged: dict[float, tuple[int, tuple[str, ...]]] = {}
        for group in self.groups:
            if group.opens_at is None:
                continue
            count, zones = merged.get(group.opens_at, (0, ()))
            merged[group.opens_at] = (count + group.recipients, zones + group.zones)
        return [
            Opening(at, count, tuple(dict.fromkeys(zones)))
            for at, (count, zones) in sorted(merged.items())
        ]


def open_day(
    zones: Sequence[str], hours: QuietHours, start: float
) -> tuple[tuple[float, float], ...]:
    """The open intervals of one day from the first instant at or after `start` outside
    the quiet hours (within two days), relative to `start`: the pattern the plan repeats."""
    first = quiet_until(zones, hours, start)
    at = start if first is None else first
    intervals: list[tuple[float, float]] = []
    end = at + DAY
    while at < end:
        opens = quiet_until(zones, hours, at)
        begin = at if opens is None else opens
        if begin >= end:
            break
        close = min(quiet_from(zones, hours, begin), end)
        intervals.append((begin - start, close - start))
        at = close
    return tuple(intervals)


def quiet_plan(
    zone_counts: Mapping[tuple[str, ...], int], hours: QuietHours, start: float
) -> QuietPlan:
    """Group `zone_counts` (recipients by their numbers' zones, `quiet.zones_of`) by the
    zones they are judged in, as of `start` (the campaign's first possible send)."""
    judged: dict[tuple[str, ...], int] = {}
    for zones, count in zone_counts.items():
        if count > 0:
            key = judged_zones(zones, hours, start)
            judged[key] = judged.get(key, 0) + count
    groups = tuple(
        ZoneGroup(
            zones=zones,
            recipients=count,
            opens_at=quiet_until(zones, hours, start),
            day=open_day(zones, hours, start),
        )
        for zones, count in sorted(judged.items())
    )
    return QuietPlan(hours=hours, start=start, groups=groups)


class _Hours:
    """A group's open intervals: closed until the first, then one day's pattern daily."""

    def __init__(self, day: tuple[tuple[float, float], ...]) -> None:
        self.anchor = day[0][0]
        self.day = [(begin - self.anchor, end - self.anchor) for begin, end in day]

    def state(self, at: float) -> tuple[bool, float]:
        """(open at `at`, the next instant that changes it); relative to the plan's start."""
        if at < self.anchor:
            return False, self.anchor
        base = self.anchor + math.floor((at - self.anchor) / DAY) * DAY
        offset = at - base
        for begin, end in self.day:
            if offset < begin:
                return False, base + begin
            if offset < end:
                # Open to the end of the pattern's day: on into the next day's first interval.
                close = base + DAY + self.day[0][1] if end >= DAY else base + end
                return True, close
        return False, base + DAY


def quiet_eta(
    plan: QuietPlan, *, tier: int, write_per_minute: int, window_seconds: float
) -> float | None:
    """Seconds from `plan.start` until the last recipient is sent (module docstring)."""
    rate = write_per_minute / 60.0
    groups = [(_Hours(g.day), float(g.recipients)) for g in plan.groups if g.day]
    if len(groups) < sum(1 for g in plan.groups if g.recipients):
        return None  # a group that is never open (cannot happen with start != end)
    remaining = [count for _, count in groups]
    capacity = math.inf if tier >= UNLIMITED else float(tier)
    left, window_began = capacity, None
    at = 0.0
    for _ in range(_MAX_STEPS):
        if at > MAX_DAYS * DAY:
            return None
        waiting = [i for i, count in enumerate(remaining) if count > _EPSILON]
        if not waiting:
            return at
        states = {i: groups[i][0].state(at) for i in waiting}
        open_now = [i for i in waiting if states[i][0]]
        if not open_now:
            at = min(states[i][1] for i in waiting)
            continue
        if left <= _EPSILON:
            assert window_began is not None
            at, left, window_began = max(at, window_began + window_seconds), capacity, None
            continue
        if window_began is None:
            window_began = at
        first = min(open_now, key=lambda i: states[i][1])
        close = states[first][1]
        sent = min(remaining[first], left, rate * (close - at))
        remaining[first] -= sent
        left -= sent
        # Whichever came first: the group's hours closed, or it (or the quota) ran out.
        at = close if sent >= rate * (close - at) else at + sent / rate
    return None


def eta_after_openings(
    awake_seconds: float, openings: Sequence[tuple[float, int]], rate_per_second: float
) -> float | None:
    """Seconds until the last recipient is sent when `awake_seconds` is what the
    recipients outside their quiet hours take, and `openings` are (seconds until they
    may go, how many) for the rest: each group goes when it opens, once the ones before
    it are sent, at the write rate (the console's ETA for a running campaign)."""
    if rate_per_second <= 0:
        return None
    finish = awake_seconds
    for opens_in, count in sorted(openings):
        finish = max(finish, opens_in) + count / rate_per_second
    return finish


def quiet_hours_flag(raw: str | None, zone: str | None) -> QuietHours | None:
    """`--quiet-hours HH:MM-HH:MM` (and `--quiet-hours-zone`) as the request's option;
    `UsageError` for what intake would refuse."""
    if raw is None:
        if zone is not None:
            raise UsageError("--quiet-hours-zone goes with --quiet-hours")
        return None
    refused = UsageError(
        f"--quiet-hours {raw!r}{f' --quiet-hours-zone {zone!r}' if zone else ''}: expected "
        "two different local times HH:MM-HH:MM (e.g. 21:00-08:00) and a known IANA zone"
    )
    start, dash, end = raw.strip().partition("-")
    if not dash:
        raise refused
    try:
        return msgspec.convert(
            {"start": start.strip(), "end": end.strip(), "time_zone": zone}, QuietHours
        )
    except (msgspec.ValidationError, InvalidEvent):
        raise refused from None
