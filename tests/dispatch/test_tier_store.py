"""Tier changes mid-campaign, the store's half: what PostgreSQL reads and writes for them.

The planner's rules are tested in test_quota.py; here, against a real database, the
snapshot after a fall names the contact whose ageing out makes room (not the oldest),
and a rise makes the rows deferred for the old tier's window due at once.
"""

from __future__ import annotations

import time
import uuid

import asyncpg

from consumer.dispatch.quota import QuotaPlan, QuotaSnapshot, plan_quota, window_start
from consumer.dispatch.store import Budget, DispatchStore, DueRow, at
from tests.dispatch.harness import new_sender_id, phones, seed_campaign

WINDOW, MARGIN = 60.0, 1.0


def _due(campaign_id: uuid.UUID, phone: str) -> DueRow:
    return DueRow(campaign_id, phone, None, 0, 0, None)


async def _reserve(
    store: DispatchStore, sender: str, rows: list[DueRow], limit: int, now: float
) -> tuple[QuotaPlan, QuotaSnapshot]:
    seen: list[QuotaSnapshot] = []

    def decide(snapshot: QuotaSnapshot) -> QuotaPlan:
        seen.append(snapshot)
        return plan_quota([r.phone for r in rows], snapshot, now, WINDOW, MARGIN)

    budget = Budget(
        key=f"number:{sender}",
        limit=limit,
        window_start=window_start(now, WINDOW, MARGIN),
        hold_until=0.0,
    )
    plan = await store.reserve(budget, rows, decide, token=uuid.uuid4(), now=now)
    return plan, seen[0]


async def test_after_a_fall_the_rest_waits_until_enough_contacts_age_out(
    db_pool: asyncpg.Pool,
) -> None:
    store, sender, now = DispatchStore(db_pool), new_sender_id(), time.time()
    # 30 recipients contacted a second apart under the old tier; the tier is now 10.
    contacted = phones(30, prefix="+62813")
    await db_pool.executemany(
        "INSERT INTO quota_contacts (budget_key, phone, last_contact_at) VALUES ($1, $2, $3)",
        [(f"number:{sender}", p, at(now - 40 + i)) for i, p in enumerate(contacted)],
    )
    waiting = phones(5, prefix="+62814")
    campaign = await seed_campaign(db_pool, sender, waiting)
    plan, snapshot = await _reserve(store, sender, [_due(campaign, p) for p in waiting], 10, now)
    assert (snapshot.used, plan.send, plan.new_contacts) == (30, (), 0)
    # The 21st oldest contact (index 20, made at now - 20) must age out before 10 fit.
    assert plan.retry_at is not None
    assert abs(plan.retry_at - (now - 20 + WINDOW + MARGIN)) < 1e-3
    rows = await db_pool.fetch(
        "SELECT reason, next_attempt_at FROM ledger WHERE campaign_id = $1", campaign
    )
    assert {r["reason"] for r in rows} == {"deferred_quota"}
    assert {r["next_attempt_at"] for r in rows} == {at(plan.retry_at)}


async def test_a_rise_makes_the_deferred_due_at_once_and_lifts_the_hold(
    db_pool: asyncpg.Pool,
) -> None:
    store, sender, now = DispatchStore(db_pool), new_sender_id(), time.time()
    assert await store.record_tier(sender, 250) is None  # nothing recorded before
    campaign = await seed_campaign(db_pool, sender, phones(8, prefix="+62815"))
    later = at(now + 3_600)
    await db_pool.execute(
        "UPDATE ledger SET reason = 'deferred_quota', next_attempt_at = $2 WHERE campaign_id = $1",
        campaign,
        later,
    )
    await store.hold_sender(sender, now + 3_600)
    assert await store.record_tier(sender, 1_000) == 250  # the dispatcher sees a rise
    await store.tier_rose(sender, 5, now)
    rows = await db_pool.fetch(
        "SELECT next_attempt_at FROM ledger WHERE campaign_id = $1 ORDER BY phone", campaign
    )
    # Up to the new limit per campaign (5 here) are due now; the planner re-plans them.
    assert sorted(r["next_attempt_at"] == at(now) for r in rows) == [False] * 3 + [True] * 5
    assert (await store.sender_state(sender)).hold_until == 0.0
