"""Values PostgreSQL cannot take, among good events, against the real broker and database.

Caught before the database: a NUL in a variable (that recipient is skipped as
`missing_variable`), a NUL in an `opt_in_source` (stored as U+FFFD, the recipient sent as
any other), an opt-in outside years 1-9999 in UTC (`not_opted_in`), such a
`send_at` (the chunk is dead-lettered as `unstorable_value`). Refused by the database (a
CHECK constraint the test adds, as an operator might): the chunk or control event is
dead-lettered as `ledger_rejected` with the SQLSTATE and a masked message, nothing of it
is stored, and intake goes on with the next events.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from schemas.deadletter import DeadLetter
from schemas.requests import BroadcastPaused, Recipient, RequestEvent
from tests.intake.builders import OPTED_IN, person, phone, request
from tests.intake.conftest import IntakeEnv, ledger_outcomes, publish, run_intake
from tests.topics import read_all

EARLY = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))


def dead_letters(reason: str) -> float:
    sample = REGISTRY.get_sample_value("broadcast_intake_dead_letters_total", {"reason": reason})
    return sample or 0.0


async def test_unstorable_values_never_stop_intake(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    base = uuid.uuid4().int % 10**7
    refused_phone = phone(base + 99)
    tag = uuid.uuid4().hex[:8]
    good, mixed, late, refused, scheduled = (uuid.uuid4() for _ in range(5))
    nul = Recipient(
        phone=phone(base + 2),
        opted_in_at=OPTED_IN,
        variables={"first_name": "a\x00", "discount": "1"},
    )
    early = Recipient(
        phone=phone(base + 3), opted_in_at=EARLY, variables={"first_name": "B", "discount": "1"}
    )
    nul_source = Recipient(
        phone=phone(base + 8),
        opted_in_at=OPTED_IN,
        opt_in_source="crm\x00import",
        variables={"first_name": "C", "discount": "1"},
    )
    events: list[RequestEvent] = [
        request(good, [person(phone(base + 1), "eligible")]),
        request(mixed, [person(phone(base + 4), "eligible"), nul, early, nul_source]),
        request(refused, [person(phone(base + 5), "eligible"), person(refused_phone, "eligible")]),
        request(scheduled, [person(phone(base + 6), "eligible")], send_at=EARLY),
        BroadcastPaused(campaign_id=uuid.uuid4(), reason=f"refuse {tag}"),
        request(late, [person(phone(base + 7), "eligible")]),
    ]
    rejected_before = dead_letters("ledger_rejected")
    await db_pool.execute(
        f"ALTER TABLE ledger ADD CONSTRAINT refuse_{tag} CHECK (phone <> '{refused_phone}') "
        "NOT VALID"
    )
    await db_pool.execute(
        f"ALTER TABLE intake_early_controls ADD CONSTRAINT refuse_{tag} "
        f"CHECK (reason IS DISTINCT FROM 'refuse {tag}') NOT VALID"
    )
    try:
        positions = await publish(producer, intake_env.topic, events)
        await run_intake(intake_env)
    finally:
        await db_pool.execute(f"ALTER TABLE ledger DROP CONSTRAINT refuse_{tag}")
        await db_pool.execute(f"ALTER TABLE intake_early_controls DROP CONSTRAINT refuse_{tag}")

    assert await ledger_outcomes(db_pool, good) == {phone(base + 1): ("pending", None)}
    assert await ledger_outcomes(db_pool, late) == {phone(base + 7): ("pending", None)}
    assert await ledger_outcomes(db_pool, mixed) == {
        phone(base + 4): ("pending", None),
        phone(base + 2): ("skipped", "missing_variable"),
        phone(base + 3): ("skipped", "not_opted_in"),
        phone(base + 8): ("pending", None),
    }
    assert (
        await db_pool.fetchval(
            "SELECT opt_in_source FROM ledger WHERE campaign_id = $1 AND phone = $2",
            mixed,
            phone(base + 8),
        )
        == "crm\ufffdimport"
    )
    assert (
        await db_pool.fetchval(
            "SELECT opted_in_at FROM ledger WHERE campaign_id = $1 AND phone = $2",
            mixed,
            phone(base + 3),
        )
        is None
    )
    # Nothing half-written: the refused chunk created no campaign and no rows.
    for campaign in (refused, scheduled):
        assert await ledger_outcomes(db_pool, campaign) == {}
        assert (
            await db_pool.fetchval(
                "SELECT count(*) FROM campaigns WHERE campaign_id = $1", campaign
            )
            == 0
        )

    letters = {
        (letter.source_partition, letter.source_offset): letter
        for record in await read_all(intake_env.settings.bootstrap_servers, intake_env.dlq)
        if (letter := DeadLetter.from_headers(record.headers))
    }
    assert len(letters) == 3
    chunk, scheduled_letter, control = (letters[positions[i]] for i in (2, 3, 4))
    assert (chunk.reason, control.reason) == ("ledger_rejected", "ledger_rejected")
    assert chunk.detail.startswith("23514 CheckViolationError: ")
    assert f"refuse_{tag}" in chunk.detail
    assert refused_phone not in chunk.detail  # masked
    assert control.detail.startswith("23514 ")
    assert scheduled_letter.reason == "unstorable_value"
    assert dead_letters("ledger_rejected") - rejected_before == 2
