"""The whole pipeline as real processes: Kafka -> consumer -> sandbox -> signed webhooks ->
bridge -> Kafka -> projector -> read model -> the dispatcher's reconciler.

A template paused mid-campaign makes the API fail the messages it accepts; the
dispatcher learns it from the webhooks, stops the campaign with the reason, keeps every
recipient, and once the template is back and the campaign resumed, finishes it.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from devstack.procs import free_port
from runtime import defaults
from sandbox.config import Account, Faults, Latency, Outcomes, RateLimits, RuntimeConfig, Webhooks
from schemas.requests import BroadcastResumed, encode_request_event
from tests.children import Child, spawn_service, stop_all
from tests.conftest import MakeTopic
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import accepted_messages, audience, eventually, publish_campaign

RECIPIENTS = 1200


async def test_a_template_paused_mid_campaign_stops_it_and_loses_no_one(
    system: SystemFactory, db_pool: asyncpg.Pool, make_topic: MakeTopic
) -> None:
    sender = new_sender()
    bridge_port = free_port()
    status_topic = await make_topic("status", partitions=3)
    config = RuntimeConfig(
        accounts={sender: Account(messaging_tier=100_000)},
        rate_limits=RateLimits(write_per_minute=60_000, read_per_minute=60_000),
        faults=Faults(latency=Latency(fixed_ms=20.0)),
        # Statuses 20x faster than real time; retries a second apart.
        time_scale=20.0,
        outcomes=Outcomes(read_share=1.0),
        webhooks=Webhooks(
            url=f"http://127.0.0.1:{bridge_port}{defaults.WEBHOOK_PATH}",
            schedule_seconds=(0.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0),
        ),
    )
    children: list[Child] = []
    async with system(config, [sender]) as sys_:
        sys_.extra["DISPATCH_CONCURRENCY"] = "100000:2"
        shared = {
            "PATH": "/usr/bin:/bin",
            "KAFKA_BOOTSTRAP_SERVERS": sys_.bootstrap,
            "STATUS_TOPIC": status_topic,
            "KIRIM_WEBHOOK_SECRETS": defaults.KIRIM_WEBHOOK_SECRETS,
        }
        children.append(
            await spawn_service(
                "bridge",
                "webhook_bridge",
                {**shared, "WEBHOOK_BRIDGE_PORT": str(bridge_port)},
                sys_.log_dir,
            )
        )
        children.append(
            await spawn_service(
                "projector",
                "projector",
                {
                    **shared,
                    "DATABASE_URL": sys_.database_url,
                    "PROJECTOR_GROUP": f"p-{uuid.uuid4().hex[:8]}",
                    "PROJECTOR_METRICS_PORT": str(free_port()),
                },
                sys_.log_dir,
            )
        )
        campaign = await publish_campaign(sys_, sender, audience(RECIPIENTS, seed=30))
        try:
            consumer, _ = await sys_.start_consumer("consumer")
            children.append(consumer)
            await eventually(lambda: _queued_at_least(db_pool, campaign, 300), within=60)
            await _template(sys_.sandbox.control_url, "paused")
            await eventually(lambda: _stopped(db_pool, campaign), within=60, step=0.2)
            during, reasons = await _view(db_pool, campaign)
            await _template(sys_.sandbox.control_url, "approved")
            await _resume(sys_.bootstrap, sys_.requests_topic, campaign)
            try:
                await eventually(lambda: _terminal(db_pool, campaign), within=120, step=0.5)
            except TimeoutError:
                raise AssertionError(f"not terminal: {await _state(db_pool, campaign)}") from None
            for child in children:
                assert child.process.returncode is None, child.describe()
        finally:
            await stop_all(children)
        messages = await accepted_messages(sys_, sender)
    # While stopped: nobody lost, the unsent wait as 'paused'; the paused template's
    # failures were put back as pending (sent again later under a new key generation).
    assert sum(during.values()) == RECIPIENTS
    assert during.get("pending", 0) > 0
    assert reasons == {"paused"}
    failed_first = {m["to"] for m in messages if m["error_code"] == "template_paused"}
    assert failed_first, "the paused template failed no message: nothing was tested"
    delivered: dict[str, int] = {}
    for message in messages:
        if message["status"] != "failed":
            delivered[message["to"]] = delivered.get(message["to"], 0) + 1
    # Every recipient ends with exactly one message that was not failed.
    assert len(delivered) == RECIPIENTS
    assert set(delivered.values()) == {1}
    final, _ = await _view(db_pool, campaign)
    assert set(final) <= {"delivered", "read"}
    assert sum(final.values()) == RECIPIENTS


async def _view(pool: asyncpg.Pool, campaign: uuid.UUID) -> tuple[dict[str, int], set[str | None]]:
    """Recipients by status in the operators' view, and the reasons given for pending ones."""
    rows = await pool.fetch(
        "SELECT status, reason, count(*) AS n FROM campaign_recipient_status"
        " WHERE campaign_id = $1 GROUP BY status, reason",
        campaign,
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
    return counts, {row["reason"] for row in rows if row["status"] == "pending"}


async def _template(control_url: str, status: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.patch(
            control_url + "/config",
            json={"templates": {defaults.DEFAULT_TEMPLATE: {"status": status}}},
        )
        response.raise_for_status()


async def _resume(bootstrap: str, topic: str, campaign: uuid.UUID) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        event = BroadcastResumed(campaign_id=campaign, reason="template re-approved")
        await producer.send_and_wait(topic, encode_request_event(event), key=str(campaign).encode())
    finally:
        await producer.stop()


async def _queued_at_least(pool: asyncpg.Pool, campaign: uuid.UUID, count: int) -> bool:
    queued = await pool.fetchval(
        "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'queued'", campaign
    )
    return int(queued) >= count


async def _stopped(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    row = await pool.fetchrow(
        "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
    )
    return row is not None and (row["state"], row["state_reason"]) == ("stopped", "template_paused")


async def _state(pool: asyncpg.Pool, campaign: uuid.UUID) -> object:
    ledger = await pool.fetch(
        "SELECT status, reason, generation, claim_token IS NOT NULL AS claimed,"
        " next_attempt_at > now() AS later, count(*) FROM ledger WHERE campaign_id = $1"
        " GROUP BY 1, 2, 3, 4, 5",
        campaign,
    )
    campaign_row = await pool.fetchrow(
        "SELECT state, state_reason FROM campaigns WHERE campaign_id = $1", campaign
    )
    view = await _view(pool, campaign)
    return {"ledger": [dict(r) for r in ledger], "campaign": dict(campaign_row or {}), "view": view}


async def _terminal(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    done = await pool.fetchval(
        "SELECT terminal FROM campaign_overview WHERE campaign_id = $1", campaign
    )
    return bool(done)
