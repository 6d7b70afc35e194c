"""The template-health breaker's decisions: when a campaign pauses itself (pure).

A campaign pauses itself (`paused`, reason `quality_guard`) to protect its sender
before Meta lowers the number's tier; resuming is an operator's decision. Its guard
is the request's `quality_guard` over the dispatcher's defaults (`effective_guard`).
Two rules trip it:

- `failure_rate`: in the window, at least `min_sends` messages were accepted and
  more than `max_failure_rate` of them were reported failed for engagement reasons
  (`HEALTH_CODES`: what lowers a number's quality rating).
- `quality_rating`: the sender's rating is seen to fall to `pause_at_quality` or
  below (GREEN -> YELLOW, YELLOW -> RED, GREEN -> RED). Only a fall seen while the
  campaign runs trips it: a campaign started (or resumed) on a number already at
  that rating goes on, and pauses at the next fall.

Counts are kept per campaign and minute (`bucket_of`; the table `quality_counts`).
A failure counts in the minute of its message's send, so the share is of the
messages sent in the window. The window is the buckets overlapping the last
`window_seconds` (so it spans `window_seconds` to a minute more), and never
reaches back past the campaign's last activation: nothing is counted while a
campaign is not active or for a message sent before it became active
(`counts_toward`), and a trip clears the campaign's counts, so a resumed campaign
starts from zero and does not trip again at once on the failures that paused it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar, get_args

from consumer.dispatch.policy import async_code_of
from schemas.requests import QualityGuard, QualityRating

BUCKET_SECONDS: Final = 60
# Failures that Meta counts against a number's quality. 131048 is also quota_exceeded,
# so spam_rate_limited is known by its Kirim name only (policy.async_code_of).
HEALTH_CODES: Final = frozenset({"ecosystem_engagement", "recipient_blocked", "spam_rate_limited"})
# Higher is better; a rating the API does not name gives no information.
_RANK: Final[Mapping[str, int]] = {"GREEN": 2, "YELLOW": 1, "RED": 0}
RATINGS: Final[tuple[QualityRating, ...]] = get_args(QualityRating)

Rule = Literal["failure_rate", "quality_rating"]
_T = TypeVar("_T")
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class Guard:
    """A campaign's effective guard (and, in the settings, the defaults)."""

    enabled: bool = True
    window_seconds: int = 3600
    min_sends: int = 100
    max_failure_rate: float = 0.1
    pause_at_quality: QualityRating = "YELLOW"


def effective_guard(option: QualityGuard | None, defaults: Guard) -> Guard:
    """The request's guard with each field it left out taken from the defaults. A request
    that gives a guard object is guarded unless it says `enabled: false`."""
    if option is None:
        return defaults
    return Guard(
        enabled=option.enabled,
        window_seconds=_given(option.window_seconds, defaults.window_seconds),
        min_sends=_given(option.min_sends, defaults.min_sends),
        max_failure_rate=_given(option.max_failure_rate, defaults.max_failure_rate),
        pause_at_quality=_given(option.pause_at_quality, defaults.pause_at_quality),
    )


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def bucket_of(moment: float) -> float:
    """The start of the minute holding `moment` (Unix seconds)."""
    return math.floor(moment / BUCKET_SECONDS) * BUCKET_SECONDS


def window_start(now: float, window_seconds: float, active_since: float | None = None) -> float:
    """The first bucket of the window: the buckets overlapping (now - window, now], from
    the bucket of the campaign's last activation on."""
    start = bucket_of(now - window_seconds)
    return start if active_since is None else max(start, bucket_of(active_since))


def counts_toward(sent_at: float, active: bool, active_since: float) -> bool:
    """Whether a send (or its failure) is counted: only for an active campaign, and only
    for a message sent since the campaign became active (created or resumed)."""
    return active and sent_at >= active_since


def is_health_failure(code: str | None, provider_code: int | None) -> bool:
    return async_code_of(code, provider_code) in HEALTH_CODES


def result_counts(status: str, error_code: str | None) -> tuple[int, int]:
    """(sends, health failures) that one send result adds: an accepted message is a send;
    an answer refusing it at once for an engagement reason (the contract has none today,
    Meta reports them later) is a send that failed."""
    if status == "queued":
        return 1, 0
    if error_code in HEALTH_CODES:
        return 1, 1
    return 0, 0


@dataclass(frozen=True, slots=True)
class Tally:
    """Sends and health failures of one campaign in its window."""

    sends: int = 0
    failures: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.sends if self.sends else 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.sends + other.sends, self.failures + other.failures)


@dataclass(slots=True)
class Window:
    """A campaign's counts by minute, as `quality_counts` holds them: the fold that the
    shell's statements carry out in PostgreSQL, kept here to say what they compute."""

    buckets: dict[float, Tally] = field(default_factory=dict)

    def add(self, sent_at: float, sends: int, failures: int) -> None:
        minute = bucket_of(sent_at)
        self.buckets[minute] = self.buckets.get(minute, Tally()) + Tally(sends, failures)

    def clear(self) -> None:
        """A trip: the campaign starts from zero once resumed."""
        self.buckets.clear()

    def tally(self, now: float, window_seconds: float, active_since: float | None = None) -> Tally:
        start = window_start(now, window_seconds, active_since)
        return sum((t for minute, t in self.buckets.items() if minute >= start), Tally())


@dataclass(frozen=True, slots=True)
class Trip:
    """Why a campaign paused itself, with the figures judged."""

    rule: Rule
    guard: Guard
    tally: Tally = Tally()
    quality_before: str | None = None
    quality_after: str | None = None


def failure_trip(guard: Guard, tally: Tally) -> Trip | None:
    """A trip when the window holds `min_sends` sends and its failure share is over the max."""
    if not guard.enabled or tally.sends < guard.min_sends:
        return None
    # Compared without dividing: exact for any counts, and a share of exactly the max
    # does not trip.
    if tally.failures > guard.max_failure_rate * tally.sends:
        return Trip("failure_rate", guard, tally)
    return None


def rating_of(raw: str | None) -> QualityRating | None:
    """The API's quality rating, None when absent or not one it documents."""
    rating = (raw or "").strip().upper()
    return next((known for known in RATINGS if known == rating), None)


def quality_fell(before: str | None, after: str | None, pause_at: QualityRating) -> bool:
    """True when the rating fell from `before` to `after`, and `after` is at or below
    `pause_at`. An unknown rating on either side is no fall."""
    old, new = rating_of(before), rating_of(after)
    if old is None or new is None:
        return False
    return _RANK[new] < _RANK[old] and _RANK[new] <= _RANK[pause_at]


def quality_trip(guard: Guard, before: str | None, after: str | None) -> Trip | None:
    """A trip when the sender's rating is seen to fall to the guard's level or below."""
    if not guard.enabled or not quality_fell(before, after, guard.pause_at_quality):
        return None
    return Trip("quality_rating", guard, quality_before=before, quality_after=after)


def failure_trips(guards: Mapping[_K, Guard], tallies: Mapping[_K, Tally]) -> dict[_K, Trip]:
    """The campaigns (keys of `guards`) whose window trips the failure rule; a campaign
    with no counts has an empty tally."""
    found: dict[_K, Trip] = {}
    for key, guard in guards.items():
        trip = failure_trip(guard, tallies.get(key, Tally()))
        if trip is not None:
            found[key] = trip
    return found
