"""Accepted messages that failed later: each code gets its action, once, against real Postgres."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from consumer.dispatch.context import AccountBook, CampaignStates, DispatchContext
from consumer.dispatch.pacing import RatePacer
from consumer.dispatch.policy import Scope
from consumer.dispatch.reconcile import FailureReconciler, predates_resume
from consumer.dispatch.request import idempotency_key
from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.store import AsyncFailure, DispatchStore
from consumer.kirim.client import KirimClient
from tests.dispatch.harness import new_sender_id, phones, seed_campaign

# phone index -> (Kirim code, Meta code, extra statuses folded besides the failure)
CASES = {
    0: ("recipient_not_on_whatsapp", 131026, ()),
    1: ("whatsapp_upstream_error", 131000, ()),
    2: ("quota_exceeded", 131048, ()),
    3: ("template_paused", 132015, ()),
    4: ("recipient_blocked", 1013, ("delivered",)),  # multi-device: delivered wins
    5: (None, None, ("delivered", "read")),  # never failed
}


def reconciler(pool: asyncpg.Pool) -> FailureReconciler:
    settings = DispatchSettings(failure_recheck_seconds=0.0)
    ctx = DispatchContext(
        settings=settings,
        store=DispatchStore(pool),
        client=KirimClient("http://127.0.0.1:9/v1", "unused"),
        pacer=RatePacer(limit_per_minute=60),
        campaigns=CampaignStates(),
        accounts=AccountBook(),
        clock=time.time,
        rng=random.Random(3),
    )
    return FailureReconciler(ctx)


async def test_each_asynchronous_failure_gets_its_action_once(db_pool: asyncpg.Pool) -> None:
    sender = new_sender_id()
    audience = phones(len(CASES))
    campaign = await seed_campaign(db_pool, sender, audience)
    now = datetime.now(UTC)
    for index, (code, provider, extra) in CASES.items():
        message_id = f"msg_{uuid.uuid4().hex[:26].upper()}"
        await db_pool.execute(
            "UPDATE ledger SET status = 'queued', message_id = $3"
            " WHERE campaign_id = $1 AND phone = $2",
            campaign,
            audience[index],
            message_id,
        )
        await db_pool.execute(
            """INSERT INTO message_statuses (message_id, sent_at, delivered_at, read_at, failed_at,
                   error_code, provider_code, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $2)""",
            message_id,
            now,
            now if "delivered" in extra else None,
            now if "read" in extra else None,
            now if code else None,
            code,
            provider,
        )

    worker = reconciler(db_pool)
    assert await worker.reconcile_once() >= 4
    assert await worker.reconcile_once() == 0  # every action moved its row out of 'queued'

    rows = {
        r["phone"]: r
        for r in await db_pool.fetch("SELECT * FROM ledger WHERE campaign_id = $1", campaign)
    }
    gone, upstream, quota, paused, multi, fine = (rows[p] for p in audience)
    assert (gone["status"], gone["error_code"]) == ("failed", "recipient_not_on_whatsapp")
    assert (
        await db_pool.fetchval("SELECT reason FROM suppressions WHERE phone = $1", audience[0])
        == "recipient_not_on_whatsapp"
    )
    # Sent again under the next key generation: the first key would only replay the failure.
    for row, reason in ((upstream, "retry_backoff"), (quota, "deferred_quota")):
        assert (row["status"], row["generation"], row["message_id"]) == ("pending", 1, None)
        assert row["reason"] == reason
        assert idempotency_key(str(campaign), row["phone"], row["generation"]) != idempotency_key(
            str(campaign), row["phone"]
        )
    assert await db_pool.fetchval(
        "SELECT quota_hold_until > now() FROM senders WHERE phone_number_id = $1", sender
    )
    # The campaign stops; its recipient waits, unsent, for an operator.
    assert (paused["status"], paused["generation"]) == ("pending", 1)
    state = await db_pool.fetchrow(
        "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
    )
    assert state is not None
    assert (state["state"], state["state_reason"]) == ("stopped", "template_paused")
    assert multi["status"] == fine["status"] == "queued"
    view = {
        r["phone"]: (r["status"], r["reason"])
        for r in await db_pool.fetch(
            "SELECT phone, status, reason FROM campaign_recipient_status WHERE campaign_id = $1",
            campaign,
        )
    }
    assert view[audience[0]] == ("failed", None)
    assert view[audience[3]] == ("pending", "paused")
    assert view[audience[4]] == ("delivered", None)
    assert view[audience[5]] == ("read", None)


@pytest.mark.parametrize(
    ("scope", "queued_at", "campaign_changed", "sender_changed", "stale"),
    [
        (Scope.CAMPAIGN, 100.0, 50.0, None, False),  # sent after the last change: real news
        (Scope.CAMPAIGN, 100.0, 150.0, None, True),  # sent before a resume: old news
        (Scope.ORGANISATION, 100.0, 150.0, None, False),  # the sender never changed state
        (Scope.ORGANISATION, 100.0, 50.0, 150.0, True),
        (Scope.SENDER, 200.0, 50.0, 150.0, False),
        (Scope.CAMPAIGN, None, 150.0, None, False),  # unknown send time: take it seriously
    ],
)
def test_a_late_failure_from_before_a_resume_does_not_stop_again(
    scope: Scope,
    queued_at: float | None,
    campaign_changed: float | None,
    sender_changed: float | None,
    stale: bool,
) -> None:
    failure = AsyncFailure(
        campaign_id=uuid.uuid4(),
        phone="+628120000000",
        generation=0,
        message_id="msg_X",
        phone_number_id="106540352242922",
        error_code="template_paused",
        provider_code=132015,
        error_message=None,
        queued_at=queued_at,
        campaign_changed_at=campaign_changed,
        sender_changed_at=sender_changed,
    )
    assert predates_resume(scope, failure) is stale
