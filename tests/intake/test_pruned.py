"""A chunk of a campaign `broadcast prune` removed (a rewound consumer group, a request
topic kept longer than the retention) is dead-lettered as `campaign_pruned`: it never
brings the campaign back to be sent again."""

from __future__ import annotations

import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas.deadletter import DeadLetter
from tests.intake.builders import person, phone, request
from tests.intake.conftest import IntakeEnv, ledger_outcomes, publish, run_intake
from tests.topics import read_all


async def test_a_pruned_campaign_does_not_come_back(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    base = uuid.uuid4().int % 10**7
    pruned, fresh = uuid.uuid4(), uuid.uuid4()
    await db_pool.execute(
        "INSERT INTO pruned_campaigns (campaign_id, phone_number_id, state, recipients)"
        " VALUES ($1, '106540352242922', 'active', 1)",
        pruned,
    )
    positions = await publish(
        producer,
        intake_env.topic,
        [
            request(pruned, [person(phone(base + 1), "eligible")]),
            request(fresh, [person(phone(base + 2), "eligible")]),
        ],
    )
    await run_intake(intake_env)
    assert await ledger_outcomes(db_pool, pruned) == {}
    assert (
        await db_pool.fetchval("SELECT count(*) FROM campaigns WHERE campaign_id = $1", pruned) == 0
    )
    assert await ledger_outcomes(db_pool, fresh) == {phone(base + 2): ("pending", None)}
    letters = [
        letter
        for record in await read_all(intake_env.settings.bootstrap_servers, intake_env.dlq)
        if (letter := DeadLetter.from_headers(record.headers))
    ]
    assert [(d.reason, (d.source_partition, d.source_offset)) for d in letters] == [
        ("campaign_pruned", positions[0])
    ]
