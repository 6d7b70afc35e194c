"""One scale configuration: N recipients over 20 senders through K consumer processes.

Each configuration gets a fresh database (with, optionally, a history of finished
campaigns seeded in SQL), a fresh request topic and consumer group, and a fresh
sandbox (20 ms latency, a write budget that does not bind, no webhooks: the send
pipeline is what is measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from bench.private_stack import PrivateStack
from bench.scale import measure
from bench.soak.processes import ServiceProcess
from devstack.procs import free_port
from runtime import defaults
from runtime.migrate import migrate_url
from runtime.topics import ensure_topics
from schemas.requests import BroadcastRequested, Chunk, Recipient, Sender, encode_request_event
from schemas.template import Component, Template, TextParameter

SENDERS = 20
CHUNK = 5_000
OPTED_IN = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Config:
    recipients: int
    instances: int
    history_rows: int = 0

    @property
    def label(self) -> str:
        history = f", {self.history_rows:,} rows of history" if self.history_rows else ""
        return f"{self.recipients:,} x {self.instances} instance(s){history}"


@dataclass
class Figures:
    config: Config
    intake_seconds: float = math.nan
    sends_per_second: float = math.nan
    cpu_per_1000: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: list[float] = field(default_factory=list)
    bytes_per_recipient: float = math.nan
    statements: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Of the senders that had work when it was read, the fewest and most one instance held.
    owned_spread: tuple[int, int] | None = None
    # Senders that had work when the ownership spread was read.
    busy_senders: int = 0
    takeover_seconds: float | None = None
    accepted: int = 0


def senders() -> list[str]:
    return [str(106540352250000 + n) for n in range(SENDERS)]


def sandbox_config() -> dict[str, object]:
    tiers = [100_000 if n % 2 else "unlimited" for n in range(SENDERS)]
    return {
        "accounts": {s: {"messaging_tier": t} for s, t in zip(senders(), tiers, strict=True)},
        "rate_limits": {"write_per_minute": 60_000_000, "read_per_minute": 6_000_000},
        "faults": {"latency": {"fixed_ms": 20.0}},
    }


async def _fresh_database(stack: PrivateStack, name: str) -> str:
    await asyncio.to_thread(stack.postgres.ensure_database, name)
    url = stack.postgres.url(name)
    await migrate_url(url)
    return url


async def seed_history(url: str, rows: int) -> None:
    """`rows` recipients of finished campaigns (10,000 each), accepted and delivered."""
    per_campaign = 10_000
    campaigns = max(1, rows // per_campaign)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count,
                   created_at, updated_at)
               SELECT md5('history' || n)::uuid, '106540352240000', '106540352240000',
                      'promo_flash_sale', 'id_ID', '[]', 'history', 1,
                      now() - interval '40 days', now() - interval '40 days'
               FROM generate_series(1, $1) AS n""",
            campaigns,
        )
        await connection.execute(
            """INSERT INTO ledger (campaign_id, phone, status, chunk_index, message_id,
                                   queued_at, attempts, created_at, updated_at)
               SELECT md5('history' || (n / $2 + 1))::uuid, '+6281' || lpad(n::text, 9, '0'),
                      'queued', 0, 'msg_H' || lpad(n::text, 25, '0'),
                      now() - interval '40 days', 1,
                      now() - interval '40 days', now() - interval '40 days'
               FROM generate_series(0, $1 - 1) AS n""",
            campaigns * per_campaign,
            per_campaign,
        )
        await connection.execute(
            """INSERT INTO message_statuses (message_id, phone_number_id, recipient_id, sent_at,
                                             delivered_at, read_at, updated_at)
               SELECT 'msg_H' || lpad(n::text, 25, '0'), '106540352240000',
                      '6281' || lpad(n::text, 9, '0'),
                      now() - interval '40 days', now() - interval '40 days',
                      CASE WHEN n % 3 = 0 THEN now() - interval '40 days' END,
                      now() - interval '40 days'
               FROM generate_series(0, $1 - 1) AS n""",
            campaigns * per_campaign,
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def chunk_events(recipients: int) -> tuple[list[tuple[bytes, bytes]], list[uuid.UUID]]:
    template = Template(
        name=defaults.DEFAULT_TEMPLATE,
        language=defaults.DEFAULT_TEMPLATE_LANGUAGE,
        components=[Component(type="body", parameters=[TextParameter(text="Hi {{first_name}}")])],
    )
    per_sender = recipients // SENDERS
    events: list[tuple[bytes, bytes]] = []
    campaign_ids = []
    for s_index, sender in enumerate(senders()):
        campaign = uuid.uuid4()
        campaign_ids.append(campaign)
        count = math.ceil(per_sender / CHUNK)
        for index in range(count):
            first = index * CHUNK
            people = [
                Recipient(
                    phone=f"+62818{s_index:02d}{n:06d}",
                    opted_in_at=OPTED_IN,
                    variables={"first_name": "Budi"},
                )
                for n in range(first, min(first + CHUNK, per_sender))
            ]
            event = BroadcastRequested(
                campaign_id=campaign,
                sender=Sender(phone_number_id=sender),
                template=template,
                recipients=people,
                chunk=Chunk(index=index, count=count),
            )
            events.append((str(campaign).encode(), encode_request_event(event)))
    return events, campaign_ids


def _consumer_env(
    stack: PrivateStack, url: str, api: str, topic: str, group: str
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "DATABASE_URL": url,
        "KIRIM_BASE_URL": api + "/v1",
        "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        "REQUESTS_TOPIC": topic,
        "REQUESTS_DLQ_TOPIC": topic + ".dlq",
        "CONSUMER_GROUP": group,
        "CONSUMER_DB_POOL_SIZE": "24",
        "LOG_LEVEL": "WARNING",
    }


async def _publish(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        max_request_size=2 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    try:
        # Bounded: thousands of concurrent send() calls cost aiokafka quadratic wake-ups.
        for start in range(0, len(events), 32):
            futures = [
                await producer.send(topic, value, key=key)
                for key, value in events[start : start + 32]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _accepted(control: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        body = (await http.get(control + "/audit")).json()
    data = body.get("data", body)
    return int(data["totals"]["accepted_sends"])


async def _chunks_in(pool: asyncpg.Pool, campaigns: list[uuid.UUID]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM campaign_chunks WHERE campaign_id = ANY($1::uuid[])", campaigns
        )
    )


async def _pending(pool: asyncpg.Pool, campaigns: list[uuid.UUID]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS c(id), LATERAL ("
            " SELECT 1 FROM ledger WHERE campaign_id = c.id AND status = 'pending' LIMIT 1) AS p",
            campaigns,
        )
    )


async def _busy_senders(pool: asyncpg.Pool, campaigns: list[uuid.UUID]) -> list[str]:
    rows = await pool.fetch(
        "SELECT DISTINCT c.phone_number_id FROM campaigns AS c"
        " WHERE c.campaign_id = ANY($1::uuid[]) AND EXISTS (SELECT 1 FROM ledger AS l"
        "   WHERE l.campaign_id = c.campaign_id AND l.status = 'pending')",
        campaigns,
    )
    return [r["phone_number_id"] for r in rows]


async def _busy_owned(pool: asyncpg.Pool, busy: list[str], instances: int) -> list[int]:
    """How many of the senders with work each instance holds, read from the ownership
    locks themselves (the console's `sender_owners`); an instance holding none is a 0.
    An instance keeps a number whose campaign has ended until its next ownership round,
    so counting every lock held would measure that drain, not the balance of work."""
    rows = await pool.fetch(
        "SELECT l.pid, count(*) AS n FROM unnest($1::text[]) AS s(phone_number_id)"
        " JOIN pg_locks AS l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        "  AND ((l.classid::bigint << 32) | l.objid::bigint)"
        "      = hashtextextended('sender:' || s.phone_number_id, 0)"
        " GROUP BY l.pid",
        busy,
    )
    counts = [int(r["n"]) for r in rows]
    return counts + [0] * max(0, instances - len(counts))


async def _owned(ports: list[int]) -> list[int]:
    texts = await asyncio.gather(*(measure.scrape(port) for port in ports))
    return [int(measure.gauge(t, "broadcast_dispatch_owned_senders") or 0) for t in texts]


async def run_config(
    stack: PrivateStack, config: Config, log_dir: Path, *, takeover: bool, within: float
) -> Figures:
    """Run one configuration to the last recorded result, or fail after `within` s."""
    figures = Figures(config)
    name = f"scale_{uuid.uuid4().hex[:8]}"
    url = await _fresh_database(stack, name)
    if config.history_rows:
        await seed_history(url, config.history_rows)
    topic = f"requests-{name}"
    await ensure_topics(stack.kafka.bootstrap_servers, {topic: 6, topic + ".dlq": 1})
    events, campaigns = chunk_events(config.recipients)
    eligible = (config.recipients // SENDERS) * SENDERS
    sandbox_port = free_port()
    sandbox = ServiceProcess(
        f"{name}-sandbox",
        "sandbox",
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SANDBOX_PORT": str(sandbox_port),
            "SANDBOX_CONFIG": msgspec.json.encode(sandbox_config()).decode(),
            "SANDBOX_WEBHOOK_URL": "",
            "SANDBOX_MAX_MESSAGES": str(max(200_000, 2 * eligible)),
            "SANDBOX_LOG_LEVEL": "WARNING",
            "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        },
        log_dir,
        sandbox_port,
    )
    await sandbox.start()
    api = f"http://127.0.0.1:{sandbox_port}"
    control = api + "/_sandbox"
    consumers = []
    for n in range(config.instances):
        port = free_port()
        env = _consumer_env(stack, url, api, topic, f"g-{name}")
        env["CONSUMER_METRICS_PORT"] = str(port)
        consumers.append(ServiceProcess(f"{name}-consumer-{n}", "consumer", env, log_dir, port))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(30):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(api + "/v1/health")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        for consumer in consumers:
            await consumer.start()
        for consumer in consumers:
            await consumer.ready(within=120)
        postmaster = measure.postmaster_pid(stack.postgres.data_dir)
        pids = {
            "consumer": [c.process.pid for c in consumers if c.process],
            "postgresql": [postmaster],
            "sandbox": [sandbox.process.pid] if sandbox.process else [],
        }
        cpu_before = _cpu(pids)
        killed_cpu = 0.0
        started = time.monotonic()
        await _publish(stack.kafka.bootstrap_servers, topic, events)
        async with asyncio.timeout(within):
            # Sends start while intake still runs: the first one is watched for from the
            # start, or a small campaign's rate would be counted from intake's end.
            first_send = None
            spread_checked = False
            killed: ServiceProcess | None = None
            while True:
                accepted = await _accepted(control)
                now = time.monotonic()
                if accepted and first_send is None:
                    first_send = now
                if math.isnan(figures.intake_seconds):
                    if await _chunks_in(pool, campaigns) >= len(events):
                        figures.intake_seconds = time.monotonic() - started
                elif accepted >= eligible:
                    break
                if not spread_checked and accepted >= eligible // 3:
                    spread_checked = True
                    owned = await _owned([c.port for c in consumers])
                    busy = await _busy_senders(pool, campaigns)
                    figures.busy_senders = len(busy)
                    held = await _busy_owned(pool, busy, len(consumers))
                    figures.owned_spread = (min(held), max(held))
                    if takeover and len(consumers) > 1:
                        killed = consumers[-1]
                        pid = killed.process.pid if killed.process else -1
                        killed_cpu = _cpu({"consumer": [pid]})["consumer"]
                        figures.takeover_seconds = await _takeover(consumers, killed, sum(owned))
                await asyncio.sleep(0.25)
            figures.sends_per_second = eligible / max(now - (first_send or now), 1e-9)
            figures.accepted = accepted
            while await _pending(pool, campaigns):
                await asyncio.sleep(0.5)
        survivors = [c for c in consumers if c is not killed]
        pids["consumer"] = [c.process.pid for c in survivors if c.process]
        cpu_after = _cpu(pids)
        # What the killed instance had spent counts too; its start figure is in cpu_before.
        cpu_after["consumer"] += killed_cpu
        figures.cpu_per_1000 = {
            part: (cpu_after[part] - cpu_before[part]) / (eligible / 1000) for part in pids
        }
        figures.peak_rss_mib = [measure.peak_rss_mib(pid) for pid in pids["consumer"]]
        texts = [await measure.scrape(c.port) for c in survivors]
        buckets = measure.histogram_buckets(
            texts, "broadcast_dispatch_statement_seconds", "statement"
        )
        figures.statements = {
            statement: (measure.quantile(b, 0.5), measure.quantile(b, 0.99))
            for statement, b in sorted(buckets.items())
        }
        ledger_bytes, rows = await pool.fetchrow(
            "SELECT pg_total_relation_size('ledger'), count(*) FROM ledger"
        ) or (0, 0)
        figures.bytes_per_recipient = ledger_bytes / max(rows, 1)
    finally:
        for consumer in consumers:
            await consumer.stop()
        await sandbox.stop()
        await pool.close()
        await asyncio.to_thread(stack.postgres.drop_database, name)
    return figures


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    totals = {}
    for part, numbers in pids.items():
        total = 0.0
        for pid in numbers:
            with contextlib.suppress(OSError):
                total += (
                    measure.postgres_cpu_seconds(pid)
                    if part == "postgresql"
                    else measure.cpu_seconds(pid)
                )
        totals[part] = total
    return totals


async def _takeover(consumers: list[ServiceProcess], killed: ServiceProcess, owned: int) -> float:
    """SIGKILL one instance; seconds until the others own every sender it held."""
    killed_at = time.monotonic()
    await killed.kill()
    survivors = [c.port for c in consumers if c is not killed]
    while sum(await _owned(survivors)) < owned:
        await asyncio.sleep(0.1)
    return time.monotonic() - killed_at
