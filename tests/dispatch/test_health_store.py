"""The template-health breaker against a real PostgreSQL (consumer/dispatch/health.py).

The rules are tested in test_breaker.py; here the counts that every instance shares:
sends and failures land in the minute of their send, a failure read twice counts once,
nothing counts for a paused campaign or for a message sent before a resume, the window
the database sums is the pure fold's, a trip pauses, NOTIFYs, clears and notes once
(also when two instances find it at once), a quality fall pauses only the guarded
campaigns of its number, and an operator's resume (intake's statement) starts the
window afresh.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from consumer.dispatch.breaker import Guard, Tally, Window, bucket_of, window_start
from consumer.dispatch.context import AccountBook, CampaignStates, DispatchContext
from consumer.dispatch.health import Q as HEALTH
from consumer.dispatch.health import TemplateHealth
from consumer.dispatch.pacing import RatePacer
from consumer.dispatch.reconcile import FailureReconciler
from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.store import AsyncFailure, DispatchStore, RowResult, at
from consumer.intake import control
from consumer.intake.control import CampaignState
from consumer.intake.store import Q as INTAKE
from consumer.kirim.client import KirimClient
from schemas.requests import QualityGuard
from tests.dispatch.harness import new_sender_id, phones, seed_campaign
from tests.dispatch.test_reconcile import fold_failure, queue

GUARD = Guard(window_seconds=600, min_sends=10, max_failure_rate=0.2)


def health(pool: asyncpg.Pool, defaults: Guard = GUARD) -> TemplateHealth:
    return TemplateHealth(context(pool, defaults))


def context(pool: asyncpg.Pool, defaults: Guard = GUARD) -> DispatchContext:
    return DispatchContext(
        settings=DispatchSettings(quality_guard=defaults),
        store=DispatchStore(pool),
        client=KirimClient("http://127.0.0.1:9/v1", "unused", timeout_seconds=1.0),
        pacer=RatePacer(limit_per_minute=60),
        campaigns=CampaignStates(),
        accounts=AccountBook(),
        clock=time.time,
        rng=random.Random(5),
    )


async def campaign_with(
    pool: asyncpg.Pool, sender: str, guard: QualityGuard | None = None, recipients: int = 3
) -> uuid.UUID:
    campaign = await seed_campaign(pool, sender, phones(recipients))
    if guard is not None:
        await pool.execute(
            "UPDATE campaigns SET quality_guard = $2 WHERE campaign_id = $1",
            campaign,
            msgspec.to_builtins(guard),
        )
    return campaign


async def activated_at(pool: asyncpg.Pool, campaign: uuid.UUID) -> float:
    moment: datetime = await pool.fetchval(
        "SELECT updated_at FROM campaigns WHERE campaign_id = $1", campaign
    )
    return moment.timestamp()


async def counts(pool: asyncpg.Pool, campaign: uuid.UUID) -> dict[float, tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT minute, sends, health_failures FROM quality_counts WHERE campaign_id = $1",
        campaign,
    )
    return {r["minute"].timestamp(): (r["sends"], r["health_failures"]) for r in rows}


async def state(pool: asyncpg.Pool, campaign: uuid.UUID) -> tuple[str, str | None]:
    row = await pool.fetchrow(
        "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
    )
    assert row is not None
    return row["state"], row["state_reason"]


def accepted(campaign: uuid.UUID, at_: float, n: int = 1) -> list[RowResult]:
    return [
        RowResult(campaign, f"+6281{i:08d}", "queued", message_id=f"m{i}", attempted_at=at_)
        for i in range(n)
    ]


def failure(
    campaign: uuid.UUID, sent_at: float | None, code: str = "ecosystem_engagement"
) -> AsyncFailure:
    return AsyncFailure(
        campaign_id=campaign,
        phone="+62810000000",
        generation=0,
        message_id=f"msg_{uuid.uuid4().hex[:26].upper()}",
        phone_number_id="1",
        error_code=code,
        provider_code=None,
        error_message=None,
        queued_at=sent_at,
    )


async def test_sends_and_failures_count_in_the_minute_of_the_send(db_pool: asyncpg.Pool) -> None:
    shell, campaign = health(db_pool), await campaign_with(db_pool, new_sender_id())
    start = await activated_at(db_pool, campaign) + 1
    minute = bucket_of(start)
    await shell.count_sends(accepted(campaign, start, 4))
    await shell.count_sends(
        [
            *accepted(campaign, start + 60, 2),
            # Not sends: a retry, a permanent failure of the data; a sync health failure is.
            RowResult(campaign, "+1", "pending", attempted_at=start, error_code="internal_error"),
            RowResult(campaign, "+2", "failed", attempted_at=start, error_code="invalid_request"),
            RowResult(campaign, "+3", "failed", attempted_at=start, error_code="recipient_blocked"),
        ]
    )
    late = [failure(campaign, start), failure(campaign, start, "recipient_blocked")]
    other = [failure(campaign, start + 60, "recipient_not_on_whatsapp")]
    await shell.after_failures([*late, *other], now=start + 90)
    assert await counts(db_pool, campaign) == {minute: (5, 3), minute + 60: (2, 0)}
    # Read again (a failure waiting for its grace period): counted once.
    await shell.after_failures(late, now=start + 95)
    assert await counts(db_pool, campaign) == {minute: (5, 3), minute + 60: (2, 0)}


async def test_nothing_counts_for_a_paused_campaign_or_a_message_sent_before_activation(
    db_pool: asyncpg.Pool,
) -> None:
    shell, campaign = health(db_pool), await campaign_with(db_pool, new_sender_id())
    since = await activated_at(db_pool, campaign)
    await shell.count_sends(accepted(campaign, since - 1, 3))  # before the activation
    await shell.after_failures([failure(campaign, since - 1)], now=since + 1)
    assert await counts(db_pool, campaign) == {}
    await db_pool.execute("UPDATE campaigns SET state = 'paused' WHERE campaign_id = $1", campaign)
    await shell.count_sends(accepted(campaign, since + 5, 3))
    await shell.after_failures([failure(campaign, since + 5)], now=since + 6)
    assert await counts(db_pool, campaign) == {}


async def test_the_window_the_database_sums_is_the_pure_fold(db_pool: asyncpg.Pool) -> None:
    rng = random.Random(13)
    # Unguarded, so that no trip clears the counts meanwhile.
    shell = health(db_pool)
    campaign = await campaign_with(db_pool, new_sender_id(), QualityGuard(enabled=False))
    since = await activated_at(db_pool, campaign)
    model = Window()
    for _ in range(300):
        sent_at = since + rng.uniform(0, 3 * 3600)
        if rng.random() < 0.8:
            n = rng.randint(1, 3)
            await shell.count_sends(accepted(campaign, sent_at, n))
            model.add(sent_at, n, 0)
        else:
            await shell.after_failures([failure(campaign, sent_at)], now=sent_at)
            model.add(sent_at, 0, 1)
    for _ in range(40):
        now, window = since + rng.uniform(0, 4 * 3600), rng.choice([60, 600, 3600, 7200])
        row = await db_pool.fetchrow(
            HEALTH["window_tallies"], [campaign], [at(window_start(now, window))]
        )
        assert row is not None
        assert Tally(row["sends"], row["failures"]) == model.tally(now, window, since)


async def test_a_trip_pauses_notifies_clears_and_notes_once(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    shell, campaign = health(db_pool), await campaign_with(db_pool, sender)
    quiet = await campaign_with(db_pool, sender)
    start = await activated_at(db_pool, campaign) + 1
    await shell.count_sends(accepted(campaign, start, 10))
    await shell.count_sends(accepted(quiet, start, 10))
    listener = await asyncpg.connect(database_url)
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("campaign_state", lambda *args: notified.put_nowait(args[3]))
    try:
        await shell.after_failures([failure(campaign, start) for _ in range(2)], now=start + 5)
        assert await state(db_pool, campaign) == ("active", None)  # 2 of 10: not over 20%
        await shell.after_failures([failure(campaign, start) for _ in range(2)], now=start + 6)
        assert await state(db_pool, campaign) == ("paused", "quality_guard")
        assert await state(db_pool, quiet) == ("active", None)
        assert await asyncio.wait_for(notified.get(), 5) == str(campaign)
    finally:
        await listener.close()
    assert await counts(db_pool, campaign) == {}  # resumed, it starts from zero
    assert await counts(db_pool, quiet) != {}
    noted = await db_pool.fetchrow("SELECT * FROM quality_trips WHERE campaign_id = $1", campaign)
    assert noted is not None
    assert (noted["rule"], noted["sends"], noted["health_failures"]) == ("failure_rate", 10, 4)
    assert (noted["window_seconds"], noted["max_failure_rate"]) == (600, 0.2)


async def test_two_instances_finding_one_trip_carry_it_out_once(db_pool: asyncpg.Pool) -> None:
    campaign = await campaign_with(db_pool, new_sender_id())
    one = health(db_pool)
    start = await activated_at(db_pool, campaign) + 1
    await one.count_sends(accepted(campaign, start, 10))
    await one.after_failures([failure(campaign, start) for _ in range(5)], now=start + 1)
    # Both saw it active (a claim each); only one statement pauses it.
    await db_pool.execute("UPDATE campaigns SET state = 'active' WHERE campaign_id = $1", campaign)
    await one.count_sends(accepted(campaign, start + 2, 10))
    await one.after_failures([failure(campaign, start + 2) for _ in range(5)], now=start + 3)
    rows = await asyncio.gather(
        *(
            db_pool.fetch(
                HEALTH["trip"],
                [campaign],
                ["failure_rate"],
                [600],
                [10],
                [5],
                [0.2],
                [None],
                [None],
            )
            for _ in range(4)
        )
    )
    assert sum(len(r) for r in rows) <= 1
    assert await state(db_pool, campaign) == ("paused", "quality_guard")


@pytest.mark.parametrize(
    ("option", "paused"),
    [
        (None, True),  # the defaults: guarded
        (QualityGuard(min_sends=100), False),  # 10 sends: too few to judge
        (QualityGuard(max_failure_rate=0.6), False),
        (QualityGuard(enabled=False), False),
        (QualityGuard(window_seconds=60), True),
    ],
)
async def test_a_claim_leaves_out_and_pauses_a_campaign_over_its_guard(
    db_pool: asyncpg.Pool, option: QualityGuard | None, paused: bool
) -> None:
    sender = new_sender_id()
    shell = health(db_pool)
    campaign = await campaign_with(db_pool, sender, option)
    start = await activated_at(db_pool, campaign) + 1
    await shell.count_sends(accepted(campaign, start, 10))
    # Counted by the reconciler, which judges only enabled guards too.
    await db_pool.execute(
        "INSERT INTO quality_counts (campaign_id, minute, health_failures) VALUES ($1, $2, 5)"
        " ON CONFLICT (campaign_id, minute) DO UPDATE SET health_failures = 5",
        campaign,
        at(bucket_of(start)),
    )
    claimed = await DispatchStore(db_pool).sender_campaigns(sender)
    admitted = await shell.admit(claimed, now=start + 2)
    assert [c.campaign_id for c in admitted] == ([] if paused else [campaign])
    assert await state(db_pool, campaign) == (
        ("paused", "quality_guard") if paused else ("active", None)
    )


async def test_a_resume_through_intake_starts_the_window_afresh(db_pool: asyncpg.Pool) -> None:
    sender = new_sender_id()
    shell, campaign = health(db_pool), await campaign_with(db_pool, sender)
    start = await activated_at(db_pool, campaign) + 0.001
    sent_before = [failure(campaign, start) for _ in range(20)]
    await shell.count_sends(accepted(campaign, start, 20))
    await shell.after_failures(sent_before[:10], now=start + 1)
    assert await state(db_pool, campaign) == ("paused", "quality_guard")
    # Answers in flight at the trip, and late failures, land while it is paused.
    await shell.count_sends(accepted(campaign, start + 0.002, 5))
    await shell.after_failures(sent_before[10:15], now=start + 1.5)
    # The operator's `broadcast resume`: intake's control fold, then its statement.
    after = control.apply(
        CampaignState("paused", "quality_guard"), "resume", reason=None, sender_problem=None
    )
    assert after == control.ACTIVE
    await asyncio.sleep(0.05)  # the resume comes after those sends
    await db_pool.execute(
        INTAKE["update_campaign_state"], campaign, after.state, after.reason, None
    )
    # Late failures of messages sent before the resume still arrive: none counts.
    await shell.after_failures(sent_before[15:], now=start + 2)
    claimed = await DispatchStore(db_pool).sender_campaigns(sender)
    assert [c.campaign_id for c in await shell.admit(claimed, now=start + 2)] == [campaign]
    assert await counts(db_pool, campaign) == {}
    # What is sent after the resume counts, and can trip it again.
    resumed = await activated_at(db_pool, campaign)
    await shell.count_sends(accepted(campaign, resumed + 0.1, 10))
    await shell.after_failures([failure(campaign, resumed + 0.1) for _ in range(3)], now=resumed)
    assert await state(db_pool, campaign) == ("paused", "quality_guard")


async def test_a_quality_fall_pauses_only_the_numbers_guarded_campaigns_once(
    db_pool: asyncpg.Pool,
) -> None:
    sender, elsewhere = new_sender_id(), new_sender_id()
    guarded = await campaign_with(db_pool, sender)
    at_red = await campaign_with(db_pool, sender, QualityGuard(pause_at_quality="RED"))
    off = await campaign_with(db_pool, sender, QualityGuard(enabled=False))
    other_number = await campaign_with(db_pool, elsewhere)
    instances = [health(db_pool) for _ in range(3)]
    # The first reading is no fall; neither is a rating that stays.
    await instances[0].quality_observed(sender, "YELLOW")
    await instances[0].quality_observed(elsewhere, "GREEN")
    await instances[0].quality_observed(sender, "yellow")
    await instances[1].quality_observed(sender, None)  # not reported: nothing changes
    assert (
        await db_pool.fetchval(
            "SELECT quality_rating FROM senders WHERE phone_number_id = $1", sender
        )
        == "YELLOW"
    )
    assert {await state(db_pool, c) for c in (guarded, at_red, off)} == {("active", None)}
    # YELLOW -> RED, read by three instances at once.
    await asyncio.gather(*(i.quality_observed(sender, "RED") for i in instances))
    assert await state(db_pool, guarded) == ("paused", "quality_guard")
    assert await state(db_pool, at_red) == ("paused", "quality_guard")
    assert await state(db_pool, off) == ("active", None)
    assert await state(db_pool, other_number) == ("active", None)
    noted = await db_pool.fetch(
        "SELECT campaign_id, rule, quality_before, quality_after FROM quality_trips"
        " WHERE campaign_id = ANY($1::uuid[])",
        [guarded, at_red, off],
    )
    assert {
        (r["campaign_id"], r["rule"], r["quality_before"], r["quality_after"]) for r in noted
    } == {
        (guarded, "quality_rating", "YELLOW", "RED"),
        (at_red, "quality_rating", "YELLOW", "RED"),
    }


async def test_a_campaign_started_on_a_yellow_number_goes_on_until_the_next_fall(
    db_pool: asyncpg.Pool,
) -> None:
    sender = new_sender_id()
    shell = health(db_pool)
    await shell.quality_observed(sender, "GREEN")
    await shell.quality_observed(sender, "YELLOW")  # no campaign yet
    campaign = await campaign_with(db_pool, sender)
    for _ in range(3):
        await shell.quality_observed(sender, "YELLOW")
    assert await state(db_pool, campaign) == ("active", None)
    await shell.quality_observed(sender, "GREEN")
    await shell.quality_observed(sender, "YELLOW")
    assert await state(db_pool, campaign) == ("paused", "quality_guard")


async def test_the_reconciler_counts_late_failures_at_first_sight_and_pauses(
    db_pool: asyncpg.Pool,
) -> None:
    sender = new_sender_id()
    audience = phones(12)
    campaign = await seed_campaign(db_pool, sender, audience)
    ids = {phone: f"msg_{uuid.uuid4().hex[:26].upper()}" for phone in audience}
    for phone in audience:
        await queue(db_pool, campaign, phone, ids[phone])
    await health(db_pool).count_sends(accepted(campaign, time.time(), 12))
    now = datetime.now(UTC)
    # 3 of 12 failed for engagement reasons (25% > 20%), one for another reason.
    failing: list[tuple[str | None, int]] = [
        ("ecosystem_engagement", 131049),
        (None, 1013),
        ("spam_rate_limited", 131048),
        ("recipient_not_on_whatsapp", 131026),
    ]
    for phone, (code, provider) in zip(audience, failing, strict=False):
        await fold_failure(db_pool, ids[phone], code, provider, now)  # type: ignore[arg-type]
    # A long grace period: the retries wait, yet the failures are counted at once.
    ctx = context(db_pool)
    ctx.settings = dataclasses.replace(ctx.settings, failure_recheck_seconds=3600.0)
    worker = FailureReconciler(ctx)
    while await worker.reconcile_once() > 0:
        pass
    assert await state(db_pool, campaign) == ("paused", "quality_guard")
    noted = await db_pool.fetchrow("SELECT * FROM quality_trips WHERE campaign_id = $1", campaign)
    assert noted is not None
    assert (noted["sends"], noted["health_failures"]) == (12, 3)
    # The retries still wait for their grace period, with the recipient queued.
    statuses = await db_pool.fetch(
        "SELECT phone, status FROM ledger WHERE campaign_id = $1", campaign
    )
    assert {r["status"] for r in statuses} <= {"queued", "failed"}


def test_utc_helpers_agree_with_the_buckets() -> None:
    moment = datetime(2026, 1, 1, 12, 34, 56, tzinfo=UTC).timestamp()
    assert at(bucket_of(moment)) == datetime(2026, 1, 1, 12, 34, tzinfo=UTC)
