"""Intake end to end against the real broker and PostgreSQL, in-process, drain-and-exit."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from consumer.app import run
from devstack.procs import free_port
from schemas.deadletter import DeadLetter
from schemas.requests import (
    BroadcastCancelled,
    BroadcastPaused,
    BroadcastResumed,
    Recipient,
    Sender,
    encode_request_event,
)
from tests.intake.builders import (
    OPTED_IN,
    SENDER_ID,
    designed_campaign,
    person,
    phone,
    request,
    template,
)
from tests.intake.conftest import (
    WAIT_SECONDS,
    IntakeEnv,
    ledger_outcomes,
    ledger_rows,
    publish,
    run_intake,
    suppress,
)
from tests.topics import read_all


async def test_a_designed_campaign_lands_exactly_as_designed(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    design = designed_campaign(chunks=6, per_chunk=250, seed=1)
    await suppress(db_pool, design.suppressed)
    await publish(producer, intake_env.topic, design.chunks)

    await run_intake(intake_env)

    assert await ledger_outcomes(db_pool, design.campaign_id) == design.expected
    campaign = await db_pool.fetchrow(
        "SELECT * FROM campaign_overview WHERE campaign_id = $1", design.campaign_id
    )
    assert campaign is not None
    assert (campaign["state"], campaign["phone_number_id"]) == ("active", SENDER_ID)
    assert (campaign["chunk_count"], campaign["chunks_received"]) == (6, 6)
    rendered = await db_pool.fetchval(
        "SELECT components FROM ledger WHERE campaign_id = $1 AND status = 'pending' "
        "AND reason IS NULL LIMIT 1",
        design.campaign_id,
    )
    assert rendered[0]["parameters"][0]["text"] in ("Hi Budi, 20% off", "Hi Ani, 20% off")
    assert await read_all(intake_env.settings.bootstrap_servers, intake_env.dlq) == []


async def test_chunks_published_twice_and_out_of_order_give_an_identical_ledger(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    design = designed_campaign(chunks=8, per_chunk=200, seed=2)
    await suppress(db_pool, design.suppressed)
    twin = uuid.uuid4()
    shuffled = [msgspec.structs.replace(c, campaign_id=twin) for c in design.chunks * 2]
    random.Random(3).shuffle(shuffled)
    await publish(producer, intake_env.topic, design.chunks)
    await publish(producer, intake_env.topic, shuffled)

    await run_intake(intake_env)

    in_order = await ledger_rows(db_pool, design.campaign_id)
    out_of_order = await ledger_rows(db_pool, twin)
    assert len(in_order) == len(design.expected)
    assert out_of_order == in_order
    # Publishing everything again changes nothing at all.
    await publish(producer, intake_env.topic, shuffled)
    await run_intake(intake_env)
    assert await ledger_rows(db_pool, twin) == in_order


async def test_a_conflicting_chunk_is_dead_lettered_and_the_campaign_kept(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    campaign = uuid.uuid4()
    people = [Recipient(phone=phone(random.randrange(10**8)), opted_in_at=OPTED_IN)]
    first = request(campaign, people, index=0, count=3, tmpl=template(variables=False))
    other_template = request(campaign, people, index=1, count=3)
    other_count = request(campaign, people, index=2, count=4, tmpl=template(variables=False))
    same_index_other_content = request(
        campaign, [person(phone(7), "eligible")], index=0, count=3, tmpl=template(variables=False)
    )
    await publish(
        producer, intake_env.topic, [first, other_template, other_count, same_index_other_content]
    )

    await run_intake(intake_env)

    dead = await read_all(intake_env.settings.bootstrap_servers, intake_env.dlq)
    letters = [DeadLetter.from_headers(record.headers) for record in dead]
    assert [letter.reason for letter in letters] == ["chunk_conflict"] * 3
    assert [letter.source_offset for letter in letters] == [1, 2, 3]
    assert [record.value for record in dead] == [
        encode_request_event(e) for e in (other_template, other_count, same_index_other_content)
    ]
    assert len(await ledger_rows(db_pool, campaign)) == 1


async def test_control_events_before_and_after_the_first_chunk(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    early_cancel, early_pause, paused_then_resumed, late_cancel = (uuid.uuid4() for _ in "abcd")
    base = random.randrange(10**8)
    people = [person(phone(base + i), "eligible") for i in range(5)]
    people.append(person(phone(base + 9), "not_opted_in"))
    await publish(
        producer,
        intake_env.topic,
        [
            BroadcastCancelled(campaign_id=early_cancel),
            request(early_cancel, people, index=1, count=2),
            BroadcastPaused(campaign_id=early_pause, reason="wait for stock"),
            request(early_pause, people),
            BroadcastPaused(campaign_id=paused_then_resumed),
            BroadcastResumed(campaign_id=paused_then_resumed),
            request(paused_then_resumed, people),
            request(late_cancel, people, index=0, count=2),
            BroadcastCancelled(campaign_id=late_cancel, reason="typo in the offer"),
            BroadcastResumed(campaign_id=late_cancel),  # cancel is final
            request(late_cancel, [person(phone(base + 20), "eligible")], index=1, count=2),
        ],
    )

    await run_intake(intake_env)

    async def state(campaign: uuid.UUID) -> tuple[str, str | None]:
        row = await db_pool.fetchrow(
            "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
        )
        assert row is not None
        return row["state"], row["state_reason"]

    assert await state(early_cancel) == ("cancelled", "requested")
    assert await state(early_pause) == ("paused", "wait for stock")
    assert await state(paused_then_resumed) == ("active", None)
    assert await state(late_cancel) == ("cancelled", "typo in the offer")
    for campaign in (early_cancel, late_cancel):
        outcomes = await ledger_outcomes(db_pool, campaign)
        assert set(outcomes.values()) == {("skipped", "cancelled"), ("skipped", "not_opted_in")}
    assert len(await ledger_outcomes(db_pool, late_cancel)) == 7
    progress = await db_pool.fetch(
        "SELECT status, reason FROM campaign_recipient_status WHERE campaign_id = $1",
        early_pause,
    )
    assert {(r["status"], r["reason"]) for r in progress} == {
        ("pending", "paused"),
        ("skipped", "not_opted_in"),
    }
    remembered = await db_pool.fetchval(
        "SELECT count(*) FROM intake_early_controls WHERE campaign_id = ANY($1::uuid[])",
        [early_cancel, early_pause, paused_then_resumed],
    )
    assert remembered == 0


async def test_state_changes_are_notified_on_campaign_state(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, database_url: str
) -> None:
    campaign = uuid.uuid4()
    listener = await asyncpg.connect(database_url)
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for channel in ("campaign_state", "ledger_pending"):
        await listener.add_listener(
            channel, lambda _c, _p, ch, payload: heard.put_nowait((ch, payload))
        )
    try:
        await publish(
            producer,
            intake_env.topic,
            [
                request(campaign, [person(phone(1), "eligible")]),
                BroadcastPaused(campaign_id=campaign),
            ],
        )
        await run_intake(intake_env)
        got: set[tuple[str, str]] = set()
        async with asyncio.timeout(WAIT_SECONDS):
            while len(got) < 2:
                got.add(await heard.get())
    finally:
        await listener.close()
    assert got == {("campaign_state", str(campaign)), ("ledger_pending", str(campaign))}


async def test_sender_problems_pause_the_campaign_instead_of_failing_recipients(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    unknown, auto = uuid.uuid4(), uuid.uuid4()
    people = [person(phone(random.randrange(10**8)), "eligible")]
    await publish(
        producer,
        intake_env.topic,
        [
            request(unknown, people, sender=Sender(phone_number_id="999999999")),
            request(auto, people, sender=Sender(auto=True)),
            BroadcastResumed(campaign_id=unknown),  # still unknown: stays paused
        ],
    )

    await run_intake(intake_env)

    rows = {
        row["campaign_id"]: (row["state"], row["state_reason"], row["phone_number_id"])
        for row in await db_pool.fetch(
            "SELECT campaign_id, state, state_reason, phone_number_id FROM campaigns "
            "WHERE campaign_id = ANY($1::uuid[])",
            [unknown, auto],
        )
    }
    assert rows == {
        unknown: ("paused", "sender_unknown", "999999999"),
        auto: ("active", None, SENDER_ID),
    }
    assert set((await ledger_outcomes(db_pool, unknown)).values()) == {("pending", None)}


async def test_no_connected_account_pauses_an_auto_campaign(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    campaign = uuid.uuid4()
    await publish(
        producer,
        intake_env.topic,
        [request(campaign, [person(phone(5), "eligible")], sender=Sender(auto=True))],
    )

    def none_connected(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"data": [{"phone_number_id": "1234567", "status": "pending"}]}
        )

    async with asyncio.timeout(WAIT_SECONDS):
        await run(
            intake_env.settings,
            asyncio.Event(),
            accounts_transport=httpx.MockTransport(none_connected),
        )

    row = await db_pool.fetchrow(
        "SELECT state, state_reason, phone_number_id FROM campaigns WHERE campaign_id = $1",
        campaign,
    )
    assert row is not None
    assert tuple(row) == ("paused", "no_connected_sender", None)


async def test_metrics_and_health_are_served(
    intake_env: IntakeEnv, producer: AIOKafkaProducer
) -> None:
    port = free_port()
    env = intake_env.with_(intake_until_idle=False, metrics_port=port)
    stop = asyncio.Event()
    running = asyncio.create_task(run(env.settings, stop))
    try:
        await publish(producer, env.topic, [request(uuid.uuid4(), [person(phone(3), "eligible")])])
        async with httpx.AsyncClient() as client:
            async with asyncio.timeout(WAIT_SECONDS):
                while 'events_total{outcome="stored",type="requested"}' not in (
                    metrics := await _get(client, f"http://127.0.0.1:{port}/metrics")
                ):
                    await asyncio.sleep(0.05)
                # /metrics answers from the start (and the registry is the process's):
                # the intake checks exist once /readyz says the start is done.
                while (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop.set()
        await running
    assert health.status_code == 200
    assert set(health.json()["checks"]) == {"intake_progress", "intake_fetch", "accounts"}
    for name in (
        "broadcast_intake_recipients_total",
        "broadcast_intake_dead_letters_total",
        "broadcast_intake_consumer_lag",
        "broadcast_intake_last_progress_age_seconds",
    ):
        assert name in metrics


async def _get(client: httpx.AsyncClient, url: str) -> str:
    """The body at `url`, or '' while the server is not listening yet."""
    try:
        return (await client.get(url)).text
    except httpx.ConnectError:
        return ""
