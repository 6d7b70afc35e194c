"""The template-health breaker's shell: counts kept in PostgreSQL, trips carried out.

The decisions are `consumer.dispatch.breaker`'s; this module feeds them and acts:

- a sender's worker adds its accepted sends after each result flush (`count_sends`)
  and judges its campaigns on every claim (`admit`: one statement);
- the reconciler, on whichever instance holds its lock, adds the health failures of
  each pass and judges the campaigns they belong to (`after_failures`);
- the accounts refresh records each number's quality rating and judges the number's
  campaigns when it falls (`quality_observed`).

Every instance reads and writes the same counts (`quality_counts`), so a failure
counted by the reconciler on one instance pauses a campaign sent by another. A trip
pauses the campaign as an operator's pause does and NOTIFYs `campaign_state`, so
every instance's workers stop sending it within a second; resuming it is an
operator's `broadcast resume`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from consumer.dispatch import metrics
from consumer.dispatch.breaker import (
    Guard,
    Tally,
    Trip,
    bucket_of,
    effective_guard,
    failure_trips,
    is_health_failure,
    quality_trip,
    rating_of,
    result_counts,
    window_start,
)
from consumer.dispatch.store import AsyncFailure, Campaign, RowResult, at
from runtime.db import TRANSIENT_ERRORS
from runtime.logs import get_logger
from runtime.sqlfiles import load_queries
from schemas.requests import QualityGuard

if TYPE_CHECKING:
    from consumer.dispatch.context import DispatchContext

Q = load_queries(Path(__file__).with_name("sql") / "health.sql")
log = get_logger(__name__)

REASON = "quality_guard"


class TemplateHealth:
    def __init__(self, ctx: DispatchContext) -> None:
        self._ctx = ctx

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._ctx.store.pool

    def guard_of(self, option: QualityGuard | None) -> Guard:
        return effective_guard(option, self._ctx.settings.quality_guard)

    async def count_sends(self, results: Sequence[RowResult]) -> None:
        """Add a flush's accepted sends. Best effort: a count lost to a passing outage
        (or to a campaign pruned meanwhile) must not hold up the results, which are
        already written."""
        campaigns, sent_at, minutes, sends, failures = [], [], [], [], []
        for result in results:
            added, failed = result_counts(result.status, result.error_code)
            if not added or result.attempted_at is None:
                continue
            campaigns.append(result.campaign_id)
            sent_at.append(at(result.attempted_at))
            minutes.append(at(bucket_of(result.attempted_at)))
            sends.append(added)
            failures.append(failed)
        if not campaigns:
            return
        try:
            await self._pool.execute(Q["count_sends"], campaigns, sent_at, minutes, sends, failures)
        except (*TRANSIENT_ERRORS, asyncpg.ForeignKeyViolationError) as error:  # type: ignore[misc]
            log.warning("quality_count_lost", sends=len(campaigns), error=repr(error))

    async def admit(self, campaigns: Sequence[Campaign], now: float) -> list[Campaign]:
        """The campaigns of a claim that may still send: those whose window trips are
        paused here and left out."""
        guards = {c.campaign_id: self.guard_of(c.quality_guard) for c in campaigns}
        tripped = await self._judge(guards, now)
        return [c for c in campaigns if c.campaign_id not in tripped]

    async def after_failures(self, failures: Sequence[AsyncFailure], now: float) -> None:
        """Count the health failures among a reconciler pass's failures (each message
        once, however often it is read) and judge the campaigns they grew."""
        health = [f for f in failures if is_health_failure(f.error_code, f.provider_code)]
        if not health:
            return
        # A row recorded before queued_at existed counts as sent now.
        sent = [f.queued_at if f.queued_at is not None else now for f in health]
        rows = await self._pool.fetch(
            Q["count_failures"],
            [f.message_id for f in health],
            [f.campaign_id for f in health],
            [at(moment) for moment in sent],
            [at(bucket_of(moment)) for moment in sent],
        )
        grown = sorted({r["campaign_id"] for r in rows})
        if not grown:
            return
        options = await self._pool.fetch(Q["campaign_guards"], grown)
        guards = {
            r["campaign_id"]: self.guard_of(_guard_option(r["quality_guard"])) for r in options
        }
        await self._judge(guards, now)

    async def quality_observed(self, phone_number_id: str, reported: str | None) -> None:
        """Record the number's rating; on a fall, pause its campaigns whose guard says so."""
        rating = rating_of(reported)
        if rating is None:
            return  # not reported: the last known rating stands
        row = await self._pool.fetchrow(Q["record_quality"], phone_number_id, rating)
        if row is None or row["before"] is None:
            return  # unchanged, another instance saw the change, or the first reading
        before: str = row["before"]
        log.info("quality_changed", sender=phone_number_id, before=before, after=rating)
        campaigns = await self._ctx.store.sender_campaigns(phone_number_id)
        trips: dict[uuid.UUID, Trip] = {}
        for campaign in campaigns:
            trip = quality_trip(self.guard_of(campaign.quality_guard), before, rating)
            if trip is not None:
                trips[campaign.campaign_id] = trip
        await self._trip(trips)

    async def _judge(self, guards: Mapping[uuid.UUID, Guard], now: float) -> set[uuid.UUID]:
        """Judge the failure rule for these campaigns; returns those that tripped."""
        judged = {campaign_id: guard for campaign_id, guard in guards.items() if guard.enabled}
        if not judged:
            return set()
        rows = await self._pool.fetch(
            Q["window_tallies"],
            list(judged),
            [at(window_start(now, guard.window_seconds)) for guard in judged.values()],
        )
        tallies = {r["campaign_id"]: Tally(r["sends"], r["failures"]) for r in rows}
        trips = failure_trips(judged, tallies)
        await self._trip(trips)
        return set(trips)

    async def _trip(self, trips: Mapping[uuid.UUID, Trip]) -> None:
        if not trips:
            return
        ids = list(trips)
        chosen = [trips[campaign_id] for campaign_id in ids]
        rows = await self._pool.fetch(
            Q["trip"],
            ids,
            [t.rule for t in chosen],
            [t.guard.window_seconds for t in chosen],
            [t.tally.sends for t in chosen],
            [t.tally.failures for t in chosen],
            [t.guard.max_failure_rate for t in chosen],
            [t.quality_before for t in chosen],
            [t.quality_after for t in chosen],
        )
        paused = [r["campaign_id"] for r in rows]
        # Another instance (or an operator) changed the others first: its NOTIFY says how.
        self._ctx.campaigns.update(dict.fromkeys(paused, "paused"))
        for campaign_id in paused:
            _report(campaign_id, trips[campaign_id])


def _report(campaign_id: uuid.UUID, trip: Trip) -> None:
    metrics.QUALITY_GUARD_TRIPS.labels(trip.rule).inc()
    guard, tally = trip.guard, trip.tally
    figures: dict[str, Any] = (
        {
            "sends": tally.sends,
            "health_failures": tally.failures,
            "failure_rate": round(tally.failure_rate, 4),
            "window_seconds": guard.window_seconds,
            "min_sends": guard.min_sends,
            "max_failure_rate": guard.max_failure_rate,
        }
        if trip.rule == "failure_rate"
        else {
            "quality_before": trip.quality_before,
            "quality_after": trip.quality_after,
            "pause_at_quality": guard.pause_at_quality,
        }
    )
    log.warning("quality_guard_tripped", campaign_id=str(campaign_id), rule=trip.rule, **figures)


def _guard_option(stored: object) -> QualityGuard | None:
    return None if stored is None else msgspec.convert(stored, QualityGuard)
