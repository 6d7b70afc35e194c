"""Priority lanes (issue 13) through a real `python -m consumer` process and the sandbox.

A bulk campaign is being paced out at the organisation's write budget (the sandbox's
bucket emptied once the consumer is ready, so the rate binds from its first send); a
transactional one is published once bulk is sending. From the sandbox's record of
accepted sends: every transactional send comes soon after its rows landed in the ledger
(the test LISTENs for intake's `ledger_pending`) and before bulk finishes, bulk keeps
sending meanwhile at about its minimum share (`DISPATCH_BULK_MIN_SHARE`), and every
recipient of both is sent exactly once. Once on one number, once with bulk on another
number sharing the organisation's rate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from sandbox.config import Account, Faults, Latency, RateLimits, RuntimeConfig
from schemas.requests import Priority, Recipient, Sender, encode_request_event
from tests.children import stop_all
from tests.intake.builders import OPTED_IN, request
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import (
    System,
    accepted_messages,
    audience,
    audit,
    eventually,
)

# 100 a second: binding at 20 ms an answer and 50 in flight, and with room to spare on a
# loaded 2-core machine. At 200 a second, with the other test worker busy, transactional
# once did not keep up with the tokens (178 sends/s in all against a 200/s refill), so
# the free ones went to bulk as they should (37% of the sends, transactional at 112/s):
# the scenario, not the lanes, had stopped holding.
WRITE_PER_MINUTE = 6_000
SHARE = 0.1
BULK, URGENT = 1500, 100


def _config(*senders: str) -> RuntimeConfig:
    return RuntimeConfig(
        accounts={s: Account(messaging_tier=100_000) for s in senders},
        rate_limits=RateLimits(write_per_minute=WRITE_PER_MINUTE, read_per_minute=60_000),
        faults=Faults(latency=Latency(fixed_ms=20.0)),
    )


async def _empty_the_bucket(system: System) -> None:
    """The bucket starts full (a minute of sends); a plan of 1/min and back keeps one token."""
    async with httpx.AsyncClient() as client:
        for per_minute in (1, WRITE_PER_MINUTE):
            response = await client.patch(
                system.sandbox.control_url + "/config",
                json={"rate_limits": {"write_per_minute": per_minute}},
            )
            response.raise_for_status()


async def _publish(
    system: System, sender: str, phones: Sequence[str], priority: Priority
) -> uuid.UUID:
    campaign = uuid.uuid4()
    size = 1000
    chunks = [phones[i : i + size] for i in range(0, len(phones), size)]
    producer = AIOKafkaProducer(bootstrap_servers=system.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for index, chunk in enumerate(chunks):
            people = [
                Recipient(
                    phone=p,
                    opted_in_at=OPTED_IN,
                    variables={"first_name": "Budi", "discount": "5%"},
                )
                for p in chunk
            ]
            event = request(
                campaign,
                people,
                index=index,
                count=len(chunks),
                sender=Sender(phone_number_id=sender),
            )
            event = msgspec.structs.replace(event, priority=priority)
            await producer.send_and_wait(
                system.requests_topic, encode_request_event(event), key=str(campaign).encode()
            )
    finally:
        await producer.stop()
    return campaign


def _at(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["created_at"].replace("Z", "+00:00")).timestamp()


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _accepted_at_least(system: System, count: int) -> bool:
    return int((await audit(system))["totals"]["accepted_sends"]) >= count


async def _none_pending(pool: asyncpg.Pool, *campaigns: uuid.UUID) -> bool:
    return not await pool.fetchval(
        "SELECT count(*) FROM ledger WHERE campaign_id = ANY($1::uuid[]) AND status = 'pending'",
        list(campaigns),
    )


@pytest.mark.parametrize("numbers", ["one number", "two numbers"])
async def test_transactional_overtakes_a_bulk_campaign_being_paced_out(
    system: SystemFactory, db_pool: asyncpg.Pool, database_url: str, numbers: str
) -> None:
    bulk_sender = new_sender()
    urgent_sender = bulk_sender if numbers == "one number" else new_sender()
    senders = sorted({bulk_sender, urgent_sender})
    bulk_phones, urgent_phones = audience(BULK, seed=141), audience(URGENT, seed=142)
    landed: dict[str, float] = {}
    listener = await asyncpg.connect(database_url)

    def on_pending(_c: object, _pid: int, _channel: str, payload: object) -> None:
        landed.setdefault(str(payload), time.time())

    await listener.add_listener("ledger_pending", on_pending)
    try:
        async with system(_config(*senders), senders) as sys_:
            sys_.extra["DISPATCH_BULK_MIN_SHARE"] = str(SHARE)
            consumer, port = await sys_.start_consumer("consumer")
            try:
                await eventually(lambda: _ready(port), within=30)
                # Emptied while the consumer is idle, so the rate binds from its first send.
                await _empty_the_bucket(sys_)
                bulk = await _publish(sys_, bulk_sender, bulk_phones, "bulk")
                await eventually(lambda: _accepted_at_least(sys_, 500), within=30, step=0.02)
                published = time.time()
                urgent = await _publish(sys_, urgent_sender, urgent_phones, "transactional")
                await eventually(lambda: _none_pending(db_pool, bulk, urgent), within=45, step=0.2)
                assert consumer.process.returncode is None, consumer.describe()
            finally:
                await stop_all([consumer])
            messages = [m for s in senders for m in await accepted_messages(sys_, s)]
            report = await audit(sys_)
    finally:
        await listener.close()
    # Exactly once: the ledger of both campaigns says what the API accepted, nobody twice.
    rows = await db_pool.fetch(
        "SELECT phone, status, message_id FROM ledger WHERE campaign_id = ANY($1::uuid[])",
        [bulk, urgent],
    )
    assert len(rows) == BULK + URGENT
    assert {r["status"] for r in rows} == {"queued"}
    assert sorted(m["to"] for m in messages) == sorted(bulk_phones + urgent_phones)
    assert {r["phone"]: r["message_id"] for r in rows} == {m["to"]: m["id"] for m in messages}
    wanted = set(urgent_phones)
    urgent_times = sorted(_at(m) for m in messages if m["to"] in wanted)
    bulk_times = sorted(_at(m) for m in messages if m["to"] not in wanted)
    assert len(urgent_times) == URGENT
    assert len(bulk_times) == BULK
    first, last = urgent_times[0], urgent_times[-1]
    rows_landed = landed[str(urgent)]
    during = sum(1 for t in bulk_times if first <= t <= last)
    share = during / (during + URGENT)
    print(
        f"{numbers}: first transactional send {first - published:.3f}s after its publish, "
        f"{first - rows_landed:.3f}s after its rows landed; all {URGENT} in {last - first:.2f}s; "
        f"bulk {during} sends meanwhile ({share:.1%}); "
        f"bulk ended {bulk_times[-1] - last:.1f}s later"
    )
    assert first - rows_landed < 1.0
    assert first - published < 3.0  # intake's part: consumer poll, validation, ledger commit
    assert last < bulk_times[-1]
    # Bulk was not starved: at least about its share of the sends while both had work.
    assert share >= SHARE / 2
    # More than its share only from tokens to spare (the API's bucket held more than the
    # pacer's estimate, which errs low), never from transactional's part: transactional
    # then still went at least at what the lanes promise it while both contend, all but
    # bulk's share of the refill. (Not "at the bucket's full rate": measured over 100 sends,
    # one scheduling hiccup puts a full-rate run under it; CI once saw 22.5% bulk with
    # transactional at 193/s, 129 sends in 0.51 s against a 200/s refill.)
    urgent_rate = (URGENT - 1) / (last - first)
    assert share <= 2 * SHARE or urgent_rate >= (1 - SHARE) * WRITE_PER_MINUTE / 60
    assert report["totals"]["duplicate_accepts"] == 0
    assert report["totals"]["rate_limited"] == 0
