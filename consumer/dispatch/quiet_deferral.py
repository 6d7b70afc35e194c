"""Claimed recipients inside their campaign's quiet hours wait for their morning.

The claim (worker.py) hands its due rows here before the quota plan, so a quiet
recipient costs no quota and holds no slot: the decision is `quiet.quiet_deferrals`,
and the rows it names are deferred (`reason = quiet_hours`, `next_attempt_at` = when
their window opens) in one statement. A re-send after a late failure, a retry or an
operator's `broadcast retry` goes back to pending and through the same claim, so it
respects quiet hours too.

A campaign claimed at night would otherwise be deferred a claim's worth at a time (ten
rows at a small tier's rate). So when every row a claim took of a campaign was quiet,
up to `SWEEP_ROWS` more of that campaign's due rows are read and the quiet ones deferred
in the same claim, `SWEEP_BATCH` at a time, until a sendable row shows up (its zone's
day has come: the normal claims take it from there). The claim runs while the previous
batch is being sent, and each claim still takes every other campaign's share first, so
a sleeping audience neither starves the others nor spins: a million rows are deferred
in a few hundred claims, then the worker idles until the first window opens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from consumer.dispatch import metrics
from consumer.dispatch.context import DispatchContext
from consumer.dispatch.quiet import quiet_deferrals
from consumer.dispatch.store import Campaign, DueRow
from schemas.requests import QuietHours

SWEEP_ROWS: Final = 2_000
SWEEP_BATCH: Final = 1_000


class QuietDeferral:
    def __init__(self, ctx: DispatchContext, phone_number_id: str, token: uuid.UUID) -> None:
        self.ctx = ctx
        self.phone_number_id = phone_number_id
        self.token = token

    async def admit(
        self, rows: list[DueRow], campaigns: Iterable[Campaign], now: float
    ) -> list[DueRow]:
        """`rows` without the quiet ones, which are deferred (see the module)."""
        hours = {c.campaign_id: c.quiet_hours for c in campaigns if c.quiet_hours is not None}
        if not hours:
            return rows
        deferred = await self._defer(rows, hours, now)
        if not deferred:
            return rows
        kept = [row for row in rows if (row.campaign_id, row.phone) not in deferred]
        silent = {campaign_id for campaign_id, _ in deferred} - {r.campaign_id for r in kept}
        await self._sweep(sorted(silent), hours, now)
        return kept

    async def _defer(
        self, rows: Sequence[DueRow], hours: Mapping[uuid.UUID, QuietHours], now: float
    ) -> set[tuple[uuid.UUID, str]]:
        deferred = quiet_deferrals(rows, hours, now, self.ctx.settings.idempotency_ttl_seconds)
        if deferred:
            await self.ctx.store.defer_quiet(deferred)
            metrics.QUIET_DEFERRED.labels(self.phone_number_id).inc(len(deferred))
        return {(row.campaign_id, row.phone) for row, _ in deferred}

    async def _sweep(
        self, campaign_ids: Sequence[uuid.UUID], hours: Mapping[uuid.UUID, QuietHours], now: float
    ) -> None:
        left = SWEEP_ROWS
        for campaign_id in campaign_ids:
            while left > 0:
                asked = min(left, SWEEP_BATCH)
                rows = await self.ctx.store.due_rows([campaign_id], asked, now, self.token)
                left -= len(rows)
                deferred = await self._defer(rows, hours, now) if rows else set()
                if len(rows) < asked or len(deferred) < len(rows):
                    break  # no more due, or the campaign's next recipients may go now
