"""End to end with the sandbox: signed webhooks -> bridge -> Kafka -> projector -> the views.

The campaign and its ledger rows are written with SQL (as the consumer would), with
the sandbox's message ids; the sandbox sends real signed webhooks, with duplicates,
reordering and skipped `delivered` receipts, and retries what the bridge refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from httpx_aiohttp import AiohttpTransport

from devstack.kafka import KafkaBroker
from projector.service import run as run_projector
from runtime import defaults
from sandbox.config import parse_config
from sandbox.settings import SandboxSettings
from sandbox.testing import RunningSandbox, running_sandbox
from tests.bridge.conftest import RunningBridge, bridge_settings, running_bridge
from tests.bridge.kirim import SECRET, signed_headers, status_body
from tests.conftest import MakeTopic
from tests.projector.conftest import (
    overview_terminal,
    progress,
    projector_settings,
    seed_campaign,
)
from tests.topics import read_all

FAILING_PREFIX = "+62899"
IN_PROGRESS = {"pending", "queued", "sent"}


def sandbox_settings(bridge: RunningBridge, **webhooks: Any) -> SandboxSettings:
    config = parse_config(
        {
            "outcomes": {
                "seed": 7,
                "forced": {FAILING_PREFIX: "recipient_not_on_whatsapp"},
                "read_share": 0.5,
                "delays": {"sent": 0.1, "delivered": 0.3, "read": 0.6, "failed": 0.2},
            },
            "webhooks": {
                "url": bridge.url,
                "secrets": [SECRET],
                "duplicate_probability": 0.2,
                "reorder_probability": 0.2,
                "reorder_delay_seconds": 0.5,
                "skip_delivered_probability": 0.2,
                **webhooks,
            },
        }
    )
    return SandboxSettings(port=0, config=config)


@contextlib.asynccontextmanager
async def projecting(settings: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop, serve_metrics=False))
    try:
        yield
    finally:
        stop.set()
        await task


async def send(client: httpx.AsyncClient, sandbox: RunningSandbox, phone: str) -> str:
    body = {
        "messaging_product": "whatsapp",
        "to": phone,
        "type": "template",
        "template": {
            "name": defaults.DEFAULT_TEMPLATE,
            "language": {"code": defaults.DEFAULT_TEMPLATE_LANGUAGE},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}],
        },
    }
    response = await client.post(
        f"{sandbox.api_url}/{defaults.DEFAULT_PHONE_NUMBER_ID}/messages",
        json=body,
        headers={
            "Authorization": f"Bearer {defaults.KIRIM_API_KEY}",
            "Idempotency-Key": hashlib.sha256(phone.encode()).hexdigest(),
        },
    )
    assert response.status_code == 200, response.text
    message_id: str = response.json()["data"]["id"]
    return message_id


async def sandbox_statuses(client: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, str]:
    response = await client.get(sandbox.control_url + "/messages", params={"limit": 10000})
    return {item["id"]: item["status"] for item in response.json()["data"]}


async def webhooks_settled(client: httpx.AsyncClient, sandbox: RunningSandbox) -> dict[str, int]:
    report = (await client.get(sandbox.control_url + "/audit")).json()["data"]["webhooks"]
    counts: dict[str, int] = report
    return counts


async def view_statuses(pool: asyncpg.Pool, campaign_id: Any) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT message_id, status FROM campaign_recipient_status WHERE campaign_id = $1",
        campaign_id,
    )
    return {row["message_id"]: row["status"] for row in rows}


def phones(count: int, rng: random.Random) -> list[str]:
    numbers = {f"+62812{rng.randrange(10**7, 10**8)}" for _ in range(count)}
    failing = {f"{FAILING_PREFIX}{rng.randrange(10**6, 10**7)}" for _ in range(count // 10)}
    return sorted(numbers | failing)


async def test_a_campaigns_statuses_reach_the_views_and_it_ends_terminal(
    kafka_bootstrap: str, make_topic: MakeTopic, database_url: str, db_pool: asyncpg.Pool
) -> None:
    topic = await make_topic("status")
    rng = random.Random()
    recipients = phones(60, rng)
    async with (
        running_bridge(bridge_settings(kafka_bootstrap, topic, secrets=(SECRET,))) as bridge,
        projecting(projector_settings(kafka_bootstrap, database_url, topic)),
        running_sandbox(sandbox_settings(bridge)) as sandbox,
        httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as client,
    ):
        ids = {phone: await send(client, sandbox, phone) for phone in recipients}
        # One recipient is still pending (deferred), as the dispatcher would leave it.
        campaign_id = await seed_campaign(
            db_pool,
            [(phone, "queued", ids[phone]) for phone in recipients]
            + [("+6281299999999", "pending", None)],
        )
        observed_terminal: list[bool] = []
        async with asyncio.timeout(60):
            while True:
                counts = await progress(db_pool, campaign_id)
                terminal = await overview_terminal(db_pool, campaign_id)
                # Terminal exactly when nothing is pending, queued or sent.
                assert terminal == (not IN_PROGRESS & set(counts)), counts
                observed_terminal.append(terminal)
                truth = await sandbox_statuses(client, sandbox)
                settled = await webhooks_settled(client, sandbox)
                view = await view_statuses(db_pool, campaign_id)
                if (
                    all(view.get(ids[p]) == truth[ids[p]] for p in recipients)
                    and settled["events"] == settled["succeeded"]
                ):
                    break
                await asyncio.sleep(0.2)
        assert not any(observed_terminal)
        # The deferred recipient is skipped in the end: now the campaign is terminal.
        await db_pool.execute(
            "UPDATE ledger SET status = 'skipped', reason = 'cancelled' "
            "WHERE campaign_id = $1 AND status = 'pending'",
            campaign_id,
        )
        assert await overview_terminal(db_pool, campaign_id)
        counts = await progress(db_pool, campaign_id)
        assert sum(counts.values()) == len(recipients) + 1
        assert counts.keys() <= {"delivered", "read", "failed", "skipped"}

        failing = [phone for phone in recipients if phone.startswith(FAILING_PREFIX)]
        errors = await db_pool.fetch(
            "SELECT phone, status, error_code FROM campaign_recipient_status "
            "WHERE campaign_id = $1 AND phone = ANY($2::text[])",
            campaign_id,
            failing,
        )
        assert {(r["status"], r["error_code"]) for r in errors} == {
            ("failed", "recipient_not_on_whatsapp")
        }
        suppressed = await db_pool.fetchval(
            "SELECT count(*) FROM suppressions "
            "WHERE phone = ANY($1::text[]) AND source = 'webhook'",
            failing,
        )
        assert suppressed == len(failing)
        assert settled["failed_final"] == 0


async def test_kafka_down_means_503_and_the_senders_retries_complete_the_projection(
    kafka: KafkaBroker,
    kafka_bootstrap: str,
    make_topic: MakeTopic,
    database_url: str,
    db_pool: asyncpg.Pool,
) -> None:
    topic = await make_topic("status")
    rng = random.Random()
    recipients = phones(120, rng)
    settings = bridge_settings(
        kafka_bootstrap, topic, secrets=(SECRET,), produce_timeout_seconds=1.0, max_in_flight=64
    )
    # Kirim's schedule compressed: about a minute of retries instead of a day.
    schedule = [0, 1, 1, 2, 2, 2, *([3] * 14)]
    probes: list[tuple[float, float, int]] = []
    probe_ids: list[str] = []
    window: dict[str, float] = {}
    async with (
        running_bridge(settings) as bridge,
        projecting(projector_settings(kafka_bootstrap, database_url, topic)),
        running_sandbox(sandbox_settings(bridge, schedule_seconds=schedule)) as sandbox,
        httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as client,
    ):
        probing = asyncio.Event()

        async def probe() -> None:
            # Our own stream of webhooks, to see every answer the bridge gives.
            while not probing.is_set():
                message_id = f"msg_PROBE{rng.randrange(10**12)}"
                body = status_body(
                    message_id=message_id,
                    wamid="wamid." + message_id,
                    status="sent",
                    timestamp=int(time.time()),
                )
                started = time.monotonic()
                response = await client.post(bridge.url, content=body, headers=signed_headers(body))
                probes.append((started, time.monotonic(), response.status_code))
                if response.status_code == 200:
                    probe_ids.append(message_id)
                await asyncio.sleep(0.05)

        async def campaign() -> dict[str, str]:
            ids = {}
            for phone in recipients:
                ids[phone] = await send(client, sandbox, phone)
                await asyncio.sleep(0.05)
            return ids

        async def outage() -> None:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(kafka.kill)
            window["down"] = time.monotonic()
            await asyncio.sleep(4)
            # /readyz reflects the broker: down now...
            health = await client.get(bridge.base_url + "/readyz")
            assert health.status_code == 503
            assert health.json()["checks"]["kafka"]["ok"] is False
            window["up"] = time.monotonic()
            await asyncio.to_thread(kafka.start)
            await asyncio.sleep(2)
            probing.set()
            # ...and up again once it is back.
            async with asyncio.timeout(30):
                while (await client.get(bridge.base_url + "/readyz")).status_code != 200:
                    await asyncio.sleep(0.2)

        probe_task = asyncio.create_task(probe())
        campaign_task = asyncio.create_task(campaign())
        await outage()
        await probe_task
        ids = await campaign_task
        campaign_id = await seed_campaign(
            db_pool, [(phone, "queued", ids[phone]) for phone in recipients]
        )
        async with asyncio.timeout(90):
            while True:
                truth = await sandbox_statuses(client, sandbox)
                settled = await webhooks_settled(client, sandbox)
                view = await view_statuses(db_pool, campaign_id)
                if (
                    all(view.get(ids[p]) == truth[ids[p]] for p in recipients)
                    and settled["events"] == settled["succeeded"]
                ):
                    break
                await asyncio.sleep(0.25)
        assert settled["failed_final"] == 0
        assert settled["exhausted"] == 0
        assert settled["retried"] > 0
        assert await overview_terminal(db_pool, campaign_id)

    during = [
        status
        for started, ended, status in probes
        if window["down"] < started and ended < window["up"]
    ]
    assert during
    assert set(during) == {503}
    assert {status for _, _, status in probes} <= {200, 503}
    # Every 200 is in Kafka.
    stored = {record.key for record in await read_all(kafka_bootstrap, topic)}
    assert {message_id.encode() for message_id in probe_ids} <= stored
