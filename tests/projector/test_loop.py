"""The projector's loop against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from projector.fold import fold, status_of
from projector.records import updates_of
from projector.service import run
from schemas.webhooks import StatusUpdate
from tests.bridge.kirim import status_body
from tests.conftest import MakeTopic
from tests.projector.conftest import (
    STATUS_HEADERS,
    Headers,
    overview_terminal,
    produce,
    progress,
    projector_settings,
    seed_campaign,
)
from tests.projector.test_store import stored_row
from tests.projector.updates import update

T = 1_700_000_000


def invalid_count() -> float:
    return (
        REGISTRY.get_sample_value("broadcast_projector_events_total", {"outcome": "invalid"}) or 0.0
    )


def lifecycle(message_id: str, recipient: str, rng: random.Random) -> list[StatusUpdate]:
    wamid = "wamid." + message_id
    events = [update("sent", T, message_id=message_id, wamid=wamid, recipient_id=recipient)]
    ending = rng.choice(["read", "delivered", "failed", "sent"])
    if ending in ("delivered", "read"):
        events.append(
            update("delivered", T + 2, message_id=message_id, wamid=wamid, recipient_id=recipient)
        )
    if ending == "read":
        events.append(
            update("read", T + 5, message_id=message_id, wamid=wamid, recipient_id=recipient)
        )
    if ending == "failed":
        events.append(
            update(
                "failed",
                T + 1,
                message_id=message_id,
                wamid=wamid,
                recipient_id=recipient,
                error_code="recipient_not_on_whatsapp",
                provider_code=131026,
            )
        )
    return events


def record_of(event: StatusUpdate) -> tuple[bytes | None, bytes | None, Headers]:
    body = status_body(
        message_id=event.message_id,
        wamid=event.wamid,
        status=event.status,
        timestamp=event.occurred_at,
        recipient_id=event.recipient_id or "",
        error_code=event.error_code,
        provider_code=event.provider_code,
    )
    return (event.message_id or event.wamid).encode(), body, STATUS_HEADERS


async def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return sum([await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3)])
    finally:
        await consumer.stop()


async def test_statuses_fold_into_the_views_and_offsets_follow_the_database(
    kafka_bootstrap: str, make_topic: MakeTopic, database_url: str, db_pool: asyncpg.Pool
) -> None:
    topic = await make_topic("status")
    rng = random.Random(11)
    run_id = uuid.uuid4().hex[:8]
    phones = [f"+62{rng.randrange(10**9, 10**10)}" for _ in range(200)]
    message_ids = {phone: f"msg_{run_id}_{i:04d}" for i, phone in enumerate(phones)}
    events = [
        event
        for phone in phones
        for event in lifecycle(message_ids[phone], phone.removeprefix("+"), rng)
    ]
    delivered_twice = rng.sample(events, 60)
    shuffled = events + delivered_twice
    rng.shuffle(shuffled)
    records = [record_of(event) for event in shuffled]
    # Records that must not stop the line.
    junk: list[tuple[bytes | None, bytes | None, Headers]] = [
        (b"x", b"not json", STATUS_HEADERS),
        (b"x", b'{"entry": 7}', STATUS_HEADERS),
        (b"x", None, STATUS_HEADERS),
        (b"x", b'{"object":"x"}', [("X-Kirim-Event", b"message.received")]),
        (
            b"x",
            b'{"entry":[{"changes":[{"value":{"statuses":[{"id":"w","status":"sent",'
            b'"timestamp":"99999999999999999"}]}}]}]}',
            STATUS_HEADERS,
        ),
    ]
    half = len(records) // 2
    await produce(kafka_bootstrap, topic, records[:half] + junk + records[half:])

    # Half of the campaign is already in the ledger, the rest arrives after its statuses.
    campaign_id = await seed_campaign(
        db_pool, [(phone, "queued", message_ids[phone]) for phone in phones[:100]]
    )
    invalid_before = invalid_count()
    settings = projector_settings(kafka_bootstrap, database_url, topic)
    await asyncio.wait_for(run(settings, asyncio.Event(), until_idle=True, serve_metrics=False), 60)
    assert invalid_count() - invalid_before == 4
    assert await committed(kafka_bootstrap, settings.group_id, topic) == len(records) + len(junk)

    # The loop's result is the pure fold of what the records say.
    expected = fold(u for _, body, _ in records if body is not None for u in updates_of(body))
    assert set(expected) == set(message_ids.values())
    stored = await db_pool.fetch(
        "SELECT * FROM message_statuses WHERE message_id = ANY($1::text[])", list(expected)
    )
    assert {row["message_id"]: stored_row(row) for row in stored} == expected

    await db_pool.execute(
        """INSERT INTO ledger (campaign_id, phone, status, chunk_index, message_id)
           SELECT $1, r.phone, 'queued', 0, r.message_id
           FROM unnest($2::text[], $3::text[]) AS r (phone, message_id)""",
        campaign_id,
        phones[100:],
        [message_ids[phone] for phone in phones[100:]],
    )
    view = await db_pool.fetch(
        "SELECT phone, status, error_code FROM campaign_recipient_status WHERE campaign_id = $1",
        campaign_id,
    )
    assert len(view) == 200
    for row in view:
        row_expected = expected[message_ids[row["phone"]]]
        assert row["status"] == status_of(row_expected)
        assert row["error_code"] == row_expected.error_code
    counts = await progress(db_pool, campaign_id)
    assert sum(counts.values()) == 200
    assert await overview_terminal(db_pool, campaign_id) == ("sent" not in counts)

    failed = [phone for phone in phones if expected[message_ids[phone]].failed_at is not None]
    suppressed = await db_pool.fetchval(
        "SELECT count(*) FROM suppressions WHERE phone = ANY($1::text[]) AND source = 'webhook'",
        failed,
    )
    assert failed
    assert suppressed == len(failed)

    # A second run of the same group reads nothing again: the commits held.
    before = await db_pool.fetch(
        "SELECT * FROM message_statuses WHERE message_id = ANY($1::text[]) ORDER BY message_id",
        list(expected),
    )
    folded_before = REGISTRY.get_sample_value(
        "broadcast_projector_events_total", {"outcome": "folded"}
    )
    await asyncio.wait_for(run(settings, asyncio.Event(), until_idle=True, serve_metrics=False), 60)
    assert (
        REGISTRY.get_sample_value("broadcast_projector_events_total", {"outcome": "folded"})
        == folded_before
    )
    after = await db_pool.fetch(
        "SELECT * FROM message_statuses WHERE message_id = ANY($1::text[]) ORDER BY message_id",
        list(expected),
    )
    assert before == after


async def test_a_stop_commits_what_was_stored(
    kafka_bootstrap: str, make_topic: MakeTopic, database_url: str, db_pool: asyncpg.Pool
) -> None:
    topic = await make_topic("status")
    run_id = uuid.uuid4().hex[:8]
    events = [update("sent", T, message_id=f"msg_{run_id}_{i}", wamid=f"w{i}") for i in range(50)]
    await produce(kafka_bootstrap, topic, [record_of(event) for event in events])
    settings = projector_settings(kafka_bootstrap, database_url, topic)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop, serve_metrics=False))
    async with asyncio.timeout(60):
        while (
            await db_pool.fetchval(
                "SELECT count(*) FROM message_statuses WHERE message_id LIKE $1", f"msg_{run_id}_%"
            )
            < 50
        ):
            await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert await committed(kafka_bootstrap, settings.group_id, topic) == 50
