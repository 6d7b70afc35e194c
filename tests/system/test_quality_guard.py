"""The template-health breaker (issue 13) through real processes: sandbox -> signed
webhooks -> bridge -> Kafka -> projector -> the consumer's reconciler and workers.

(a) A template whose sends fail 131049 (ecosystem engagement) asynchronously at about
    20% pauses its campaign (`paused`, reason `quality_guard`) before the campaign
    ends; what is sent after the guard judged is about what was in flight; once the
    operator resumes it (the control event through intake) it goes on to the end, and
    no recipient is sent twice.
(b) The sender's quality rating falling GREEN -> YELLOW (the sandbox's run-time patch)
    pauses the number's guarded campaign within the accounts refresh interval, while
    (c) a campaign with `enabled: false` on the same number keeps sending to the end,
    and so does one whose sends fail as in (a).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from devstack.procs import free_port
from runtime import defaults
from sandbox.config import (
    Account,
    Faults,
    Latency,
    Outcomes,
    RateLimits,
    RuntimeConfig,
    Template,
    Webhooks,
)
from schemas.requests import (
    BroadcastResumed,
    QualityGuard,
    Recipient,
    Sender,
    encode_request_event,
)
from tests.children import Child, spawn_service, stop_all
from tests.conftest import MakeTopic
from tests.intake.builders import OPTED_IN, request
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import System, accepted_messages, audience, eventually

# Two in flight at 50 ms an answer: about 40 sends a second per number, so a campaign
# of a few hundred is still being sent when its guard trips.
CONCURRENCY = 2
LATENCY_MS = 50.0
SEND_RATE = CONCURRENCY / (LATENCY_MS / 1000)
GUARD = QualityGuard(window_seconds=60, min_sends=40, max_failure_rate=0.1)
FAILING = {"ecosystem_engagement": 0.2}
REFRESH_SECONDS = 0.5


def _config(senders: Sequence[str], mix: dict[str, float], bridge_port: int) -> RuntimeConfig:
    return RuntimeConfig(
        accounts={s: Account(messaging_tier=100_000) for s in senders},
        rate_limits=RateLimits(write_per_minute=60_000, read_per_minute=60_000),
        faults=Faults(latency=Latency(fixed_ms=LATENCY_MS)),
        # Statuses 20x faster than real time.
        time_scale=20.0,
        templates={defaults.DEFAULT_TEMPLATE: Template(outcome_mix=mix)},
        outcomes=Outcomes(read_share=1.0),
        webhooks=Webhooks(
            url=f"http://127.0.0.1:{bridge_port}{defaults.WEBHOOK_PATH}",
            schedule_seconds=(0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0),
        ),
    )


@asynccontextmanager
async def _pipeline(
    system: System, make_topic: MakeTopic, bridge_port: int
) -> AsyncIterator[list[Child]]:
    """The bridge and the projector beside the test's consumer (started by the test)."""
    status_topic = await make_topic("status", partitions=3)
    system.extra.update(
        {
            "DISPATCH_CONCURRENCY": f"100000:{CONCURRENCY}",
            "DISPATCH_ACCOUNTS_REFRESH_SECONDS": str(REFRESH_SECONDS),
        }
    )
    shared = {
        "PATH": "/usr/bin:/bin",
        "KAFKA_BOOTSTRAP_SERVERS": system.bootstrap,
        "STATUS_TOPIC": status_topic,
        "KIRIM_WEBHOOK_SECRETS": defaults.KIRIM_WEBHOOK_SECRETS,
    }
    children = [
        await spawn_service(
            "bridge",
            "webhook_bridge",
            {**shared, "WEBHOOK_BRIDGE_PORT": str(bridge_port)},
            system.log_dir,
        ),
        await spawn_service(
            "projector",
            "projector",
            {
                **shared,
                "DATABASE_URL": system.database_url,
                "PROJECTOR_GROUP": f"p-{uuid.uuid4().hex[:8]}",
                "PROJECTOR_METRICS_PORT": str(free_port()),
            },
            system.log_dir,
        ),
    ]
    try:
        yield children
    finally:
        await stop_all(children)


async def _publish(system: System, events: Sequence[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=system.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                system.requests_topic,
                encode_request_event(event),
                key=str(event.campaign_id).encode(),
            )
    finally:
        await producer.stop()


async def _campaign(
    system: System, sender: str, phones: Sequence[str], guard: QualityGuard | None
) -> uuid.UUID:
    campaign = uuid.uuid4()
    event = request(
        campaign,
        [
            Recipient(
                phone=p, opted_in_at=OPTED_IN, variables={"first_name": "Budi", "discount": "5%"}
            )
            for p in phones
        ],
        sender=Sender(phone_number_id=sender),
    )
    await _publish(system, [msgspec.structs.replace(event, quality_guard=guard)])
    return campaign


async def _state(pool: asyncpg.Pool, campaign: uuid.UUID) -> tuple[str, str | None] | None:
    row = await pool.fetchrow(
        "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
    )
    return None if row is None else (row["state"], row["state_reason"])


async def _paused_by_guard(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    return await _state(pool, campaign) == ("paused", "quality_guard")


async def _sent(system: System, sender: str, phones: Sequence[str]) -> list[dict[str, Any]]:
    wanted = set(phones)
    return [m for m in await accepted_messages(system, sender) if m["to"] in wanted]


async def _unfinished(pool: asyncpg.Pool, campaign: uuid.UUID) -> int:
    """Recipients not yet in a final shape: delivered or read, or failed with 131049 and
    waiting for the day the policy sends it again (no sooner than 24 h)."""
    count = await pool.fetchval(
        """SELECT count(*) FROM ledger AS l
           LEFT JOIN message_statuses AS ms ON ms.message_id = l.message_id
           WHERE l.campaign_id = $1
             AND NOT COALESCE(
                 (l.status = 'queued' AND (ms.delivered_at IS NOT NULL
                                           OR ms.read_at IS NOT NULL))
                 OR (l.status = 'pending' AND l.error_code = 'ecosystem_engagement'
                     AND l.next_attempt_at > now() + interval '23 hours'),
                 false)""",
        campaign,
    )
    return int(count)


def _assert_once(messages: Sequence[dict[str, Any]], phones: Sequence[str]) -> None:
    """Every recipient was sent exactly one message."""
    by_phone: dict[str, int] = {}
    for message in messages:
        by_phone[message["to"]] = by_phone.get(message["to"], 0) + 1
    assert set(by_phone) == set(phones)
    assert {n for n in by_phone.values()} == {1}


async def _trip(pool: asyncpg.Pool, campaign: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM quality_trips WHERE campaign_id = $1", campaign
    )
    return row


async def test_failing_sends_pause_the_campaign_until_the_operator_resumes_it(
    system: SystemFactory, db_pool: asyncpg.Pool, make_topic: MakeTopic
) -> None:
    guarded_sender, free_sender, bridge_port = new_sender(), new_sender(), free_port()
    recipients = 600
    guarded_phones = audience(recipients, seed=1301)
    free_phones = audience(200, seed=1302)
    config = _config([guarded_sender, free_sender], FAILING, bridge_port)
    async with (
        system(config, [guarded_sender, free_sender]) as sys_,
        _pipeline(sys_, make_topic, bridge_port) as children,
    ):
        guarded = await _campaign(sys_, guarded_sender, guarded_phones, GUARD)
        # (c) The same failures on another number, for a campaign that turned its guard off.
        free = await _campaign(
            sys_, free_sender, free_phones, QualityGuard(enabled=False, min_sends=10)
        )
        consumer, _ = await sys_.start_consumer("consumer")
        children.append(consumer)
        started = time.time()
        try:
            await eventually(lambda: _paused_by_guard(db_pool, guarded), within=40, step=0.05)
            paused_after = time.time() - started
            await asyncio.sleep(1.5)  # what was in flight lands; nothing more may go
            at_pause = await _sent(sys_, guarded_sender, guarded_phones)
            await asyncio.sleep(1.0)
            assert len(await _sent(sys_, guarded_sender, guarded_phones)) == len(at_pause)
            trip = await _trip(db_pool, guarded)
            # The operator looks, the template is fixed, and the campaign is resumed.
            async with httpx.AsyncClient() as client:
                fixed = await client.patch(
                    sys_.sandbox.control_url + "/config",
                    json={"templates": {defaults.DEFAULT_TEMPLATE: {"outcome_mix": None}}},
                )
                fixed.raise_for_status()
            await _publish(sys_, [BroadcastResumed(campaign_id=guarded, reason="template fixed")])
            await eventually(lambda: _none_unfinished(db_pool, guarded), within=60, step=0.5)
            await eventually(lambda: _none_unfinished(db_pool, free), within=30, step=0.5)
            assert await _state(db_pool, guarded) == ("active", None)
            assert await _state(db_pool, free) == ("active", None)
            for child in children:
                assert child.process.returncode is None, child.describe()
        finally:
            await stop_all([consumer])
        guarded_sent = await _sent(sys_, guarded_sender, guarded_phones)
        free_sent = await _sent(sys_, free_sender, free_phones)
    assert trip is not None
    failed_before = sum(1 for m in at_pause if m["error_code"] == "ecosystem_engagement")
    # Sent after the guard judged: what its figures did not count yet, i.e. what was in
    # flight, what a flush had not written, and what went out before the NOTIFY landed.
    after_trip = len(at_pause) - trip["sends"]
    bound = CONCURRENCY + math.ceil(SEND_RATE * 0.5)
    print(
        f"guard tripped after {paused_after:.2f}s at {trip['health_failures']}/{trip['sends']} "
        f"({trip['health_failures'] / trip['sends']:.0%}); {len(at_pause)} of {recipients} "
        f"sent when paused ({failed_before} failed 131049), {after_trip} after the trip "
        f"(bound {bound})"
    )
    assert trip["rule"] == "failure_rate"
    assert trip["sends"] >= GUARD.min_sends
    assert trip["health_failures"] > 0.1 * trip["sends"]
    assert len(at_pause) < recipients / 2  # paused well before the end
    assert 0 <= after_trip <= bound
    # Resumed, it went on to the end: each recipient sent exactly once.
    _assert_once(guarded_sent, guarded_phones)
    _assert_once(free_sent, free_phones)
    assert await _trip(db_pool, free) is None
    assert sum(1 for m in free_sent if m["error_code"] == "ecosystem_engagement") > 10


async def _none_unfinished(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    return await _unfinished(pool, campaign) == 0


async def test_a_quality_fall_pauses_the_guarded_campaigns_of_the_number(
    system: SystemFactory, db_pool: asyncpg.Pool, make_topic: MakeTopic
) -> None:
    sender, bridge_port = new_sender(), free_port()
    guarded_phones, free_phones = audience(800, seed=1303), audience(300, seed=1304)
    config = _config([sender], {}, bridge_port)
    async with (
        system(config, [sender]) as sys_,
        _pipeline(sys_, make_topic, bridge_port) as children,
    ):
        # The defaults: pause at YELLOW.
        guarded = await _campaign(sys_, sender, guarded_phones, None)
        free = await _campaign(sys_, sender, free_phones, QualityGuard(enabled=False))
        consumer, _ = await sys_.start_consumer("consumer")
        children.append(consumer)
        try:
            await eventually(
                lambda: _sent_at_least(sys_, sender, guarded_phones, 50), within=30, step=0.05
            )
            async with httpx.AsyncClient() as client:
                response = await client.patch(
                    sys_.sandbox.control_url + "/config",
                    json={"accounts": {sender: {"quality_rating": "YELLOW"}}},
                )
                response.raise_for_status()
            fell_at = time.time()
            await eventually(lambda: _paused_by_guard(db_pool, guarded), within=10, step=0.02)
            paused_after = time.time() - fell_at
            await asyncio.sleep(1.0)
            at_pause = len(await _sent(sys_, sender, guarded_phones))
            # (c) The unguarded campaign on the same number goes on to the end.
            await eventually(lambda: _none_unfinished(db_pool, free), within=40, step=0.5)
            assert len(await _sent(sys_, sender, guarded_phones)) == at_pause
            assert await _paused_by_guard(db_pool, guarded)
            for child in children:
                assert child.process.returncode is None, child.describe()
        finally:
            await stop_all([consumer])
        free_sent = await _sent(sys_, sender, free_phones)
    trip = await _trip(db_pool, guarded)
    print(
        f"quality GREEN -> YELLOW: guarded campaign paused {paused_after:.2f}s later "
        f"(refresh every {REFRESH_SECONDS}s) with {at_pause} of {len(guarded_phones)} sent"
    )
    assert paused_after <= REFRESH_SECONDS + 1.5
    assert at_pause < len(guarded_phones)
    assert trip is not None
    assert (trip["rule"], trip["quality_before"], trip["quality_after"]) == (
        "quality_rating",
        "GREEN",
        "YELLOW",
    )
    assert await _state(db_pool, free) == ("active", None)
    _assert_once(free_sent, free_phones)


async def _sent_at_least(system: System, sender: str, phones: Sequence[str], count: int) -> bool:
    return len(await _sent(system, sender, phones)) >= count
