"""Quiet hours (issue 13) through a real `python -m consumer` process and the sandbox.

Half the audience is in Jakarta (+62815, UTC+7), half in Berlin (+49151, five or six
hours behind). The request's quiet hours end in Jakarta at the next minute boundary at
least 20 s away and began three hours before, so Jakarta is inside them and Berlin is
not: Berlin is sent at once, Jakarta is deferred (`quiet_hours`, until the window's end)
and sent only once it has ended, every recipient exactly once.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from cli.status import fetch_status
from sandbox.config import Account, Faults, Latency, RateLimits, RuntimeConfig
from schemas.requests import QuietHours, Recipient, Sender, encode_request_event
from tests.children import stop_all
from tests.intake.builders import OPTED_IN, request
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import (
    VARIABLES,
    System,
    accepted_messages,
    assert_exactly_once,
    audience,
    eventually,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
PER_COUNTRY = 20


def _config(sender: str) -> RuntimeConfig:
    return RuntimeConfig(
        accounts={sender: Account(messaging_tier=1_000)},
        rate_limits=RateLimits(write_per_minute=600, read_per_minute=60_000),
        faults=Faults(latency=Latency(fixed_ms=20.0)),
    )


def _night_ending_soon(now: float) -> tuple[QuietHours, float]:
    """Quiet hours in Jakarta's time from three hours before to the next minute boundary
    at least 20 s from `now`, and that boundary."""
    ends_at = math.ceil((now + 20) / 60) * 60.0
    end = datetime.fromtimestamp(ends_at, JAKARTA)
    start = end - timedelta(hours=3)
    return QuietHours(start=f"{start:%H:%M}", end=f"{end:%H:%M}"), ends_at


async def _publish(system: System, sender: str, phones: list[str], hours: QuietHours) -> uuid.UUID:
    campaign = uuid.uuid4()
    event = request(
        campaign,
        [Recipient(phone=p, opted_in_at=OPTED_IN, variables=VARIABLES) for p in phones],
        sender=Sender(phone_number_id=sender),
    )
    event = msgspec.structs.replace(event, quiet_hours=hours)
    producer = AIOKafkaProducer(bootstrap_servers=system.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            system.requests_topic, encode_request_event(event), key=str(campaign).encode()
        )
    finally:
        await producer.stop()
    return campaign


async def _answers(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code < 500
    except httpx.HTTPError:
        return False


async def _metric(port: int, name: str, sender: str) -> float:
    async with httpx.AsyncClient(timeout=2) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{sender="{sender}"}} '):
            return float(line.split()[1])
    return 0.0


async def _ledger(pool: asyncpg.Pool, campaign: uuid.UUID) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch(
        "SELECT phone, status, reason, extract(epoch FROM next_attempt_at) AS next_at"
        " FROM ledger WHERE campaign_id = $1",
        campaign,
    )
    return {r["phone"]: r for r in rows}


def _created(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["created_at"].replace("Z", "+00:00")).timestamp()


async def test_recipients_in_their_quiet_hours_are_sent_when_the_window_ends(
    system: SystemFactory, db_pool: asyncpg.Pool
) -> None:
    sender = new_sender()
    asleep = audience(PER_COUNTRY, seed=171)
    awake = [f"+49151{random.randrange(10**8):08d}" for _ in range(PER_COUNTRY)]
    async with system(_config(sender), [sender]) as sys_:
        consumer, port = await sys_.start_consumer("consumer")
        try:
            await eventually(lambda: _answers(port), within=30)
            hours, ends_at = _night_ending_soon(time.time())
            campaign = await _publish(sys_, sender, asleep + awake, hours)

            async def _settled_before_the_end() -> bool:
                rows = await _ledger(db_pool, campaign)
                return (
                    len(rows) == 2 * PER_COUNTRY
                    and all(rows[p]["status"] == "queued" for p in awake)
                    and all(rows[p]["reason"] == "quiet_hours" for p in asleep)
                )

            await eventually(_settled_before_the_end, within=15)
            seen_at = time.time()
            rows = await _ledger(db_pool, campaign)
            async with db_pool.acquire() as connection:
                status = await fetch_status(connection, campaign)  # type: ignore[arg-type]
            await eventually(
                lambda: _all_queued(db_pool, campaign), within=ends_at - time.time() + 20
            )
            sent_at = time.time()
            deferred = await _metric(port, "broadcast_dispatch_quiet_deferred_total", sender)
            assert consumer.process.returncode is None, consumer.describe()
        finally:
            await stop_all([consumer])
        messages = await accepted_messages(sys_, sender)
        await assert_exactly_once(sys_, db_pool, campaign, sender, 2 * PER_COUNTRY)
    print(
        f"quiet hours {hours.start}-{hours.end} in Jakarta: Berlin sent and Jakarta deferred "
        f"{ends_at - seen_at:.1f}s before the end; Jakarta all sent {sent_at - ends_at:.1f}s "
        "after it"
    )
    # Seen while the window was still on: everyone in Jakarta waits for its end.
    assert seen_at < ends_at
    assert {float(rows[p]["next_at"]) for p in asleep} == {ends_at}
    assert {rows[p]["status"] for p in asleep} == {"pending"}
    # `broadcast status` names the reason and when they may go.
    assert ("pending", "quiet_hours", PER_COUNTRY) in status.reasons
    assert status.quiet == [(ends_at, PER_COUNTRY)]
    # The sandbox's own clock: Berlin before the end, Jakarta only after it.
    created = {m["to"]: _created(m) for m in messages}
    assert max(created[p] for p in awake) < ends_at
    assert min(created[p] for p in asleep) >= ends_at
    assert sent_at - ends_at < 10
    assert deferred == PER_COUNTRY  # each deferred once, never claimed again meanwhile


async def _all_queued(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    rows = await _ledger(pool, campaign)
    return len(rows) == 2 * PER_COUNTRY and all(r["status"] == "queued" for r in rows.values())
