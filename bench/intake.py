"""Intake's throughput and memory: a 100,000-recipient campaign into the ledger.

    .venv/bin/python -m bench.intake [--chunks 20] [--per-chunk 5000]

Against the developer stack (started when it is not running), in a fresh database
and fresh topics. The consumer runs as it does in production, `python -m consumer`
in its own process (dispatcher off), with the Kirim sandbox (another process)
answering its accounts lookup. Once the consumer has joined its group (a warm-up
event went through), the campaign's chunks are published and the clock runs until
every chunk is committed to the ledger. Printed: recipients/s, total seconds, the
consumer's CPU seconds and its peak RSS (VmHWM) before and after.

Goal (issue 4): 100,000 recipients in the ledger within seconds, memory bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.harness import ROOT, bench_database, cpu_seconds, dev_stack, sandbox, table
from devstack.procs import free_port
from runtime.topics import ensure_topics
from schemas.requests import (
    BroadcastPaused,
    BroadcastRequested,
    Chunk,
    Recipient,
    Sender,
    encode_request_event,
)
from schemas.template import Component, Template, TextParameter

SENDER = "106540352242922"
OPTED_IN = datetime(2025, 1, 1, tzinfo=UTC)
TEMPLATE = Template(
    name="promo_flash_sale",
    language="id_ID",
    components=[Component(type="body", parameters=[TextParameter(text="Hi {{first_name}}")])],
)


def chunks(campaign: uuid.UUID, count: int, per_chunk: int, seed: int) -> list[bytes]:
    """The campaign's chunks, encoded; distinct valid phones, all opted in, one variable."""
    base = seed * count * per_chunk
    return [
        encode_request_event(
            BroadcastRequested(
                campaign_id=campaign,
                sender=Sender(phone_number_id=SENDER),
                template=TEMPLATE,
                recipients=[
                    Recipient(
                        phone=f"+62812{(base + index * per_chunk + i) % 10**8:08d}",
                        opted_in_at=OPTED_IN,
                        variables={"first_name": f"Customer {i}"},
                    )
                    for i in range(per_chunk)
                ],
                chunk=Chunk(index=index, count=count),
            )
        )
        for index in range(count)
    ]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


async def wait_for(pool: asyncpg.Pool, query: str, *args: object, want: int) -> None:
    async with asyncio.timeout(300):
        while await pool.fetchval(query, *args) < want:
            await asyncio.sleep(0.02)


async def main(count: int, per_chunk: int) -> None:
    stack = dev_stack()
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"bench-requests-{suffix}", f"bench-requests-dlq-{suffix}"
    await ensure_topics(stack.kafka.bootstrap_servers, {topic: 6, dlq: 1})
    campaign = uuid.uuid4()
    payloads = chunks(campaign, count, per_chunk, seed=random.randrange(1000))
    async with (
        bench_database(stack) as url,
        asyncpg.create_pool(url, min_size=1, max_size=2) as pool,
    ):
        with sandbox({}, cpu=None) as api:
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
                "DATABASE_URL": url,
                "KIRIM_BASE_URL": api.api_url,
                "REQUESTS_TOPIC": topic,
                "REQUESTS_DLQ_TOPIC": dlq,
                "CONSUMER_GROUP": f"bench-{suffix}",
                "CONSUMER_METRICS_PORT": str(free_port()),
                "DISPATCH_ENABLED": "false",
                "LOG_LEVEL": "WARNING",
            }
            consumer = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "consumer", env=env, cwd=ROOT
            )
            producer = AIOKafkaProducer(
                bootstrap_servers=stack.kafka.bootstrap_servers,
                enable_idempotence=True,
                max_request_size=4 << 20,
                linger_ms=5,
            )
            await producer.start()
            try:
                # Warm-up: one control event through the whole path, so the clock below
                # measures intake, not process start and the group join.
                warm = uuid.uuid4()
                await producer.send_and_wait(
                    topic,
                    encode_request_event(BroadcastPaused(campaign_id=warm)),
                    key=str(warm).encode(),
                )
                await wait_for(
                    pool,
                    "SELECT count(*) FROM intake_early_controls WHERE campaign_id = $1",
                    warm,
                    want=1,
                )
                rss_before = peak_rss_mib(consumer.pid)
                cpu_before = cpu_seconds(consumer.pid)
                started = time.perf_counter()
                for payload in payloads:
                    await producer.send(topic, payload, key=str(campaign).encode())
                await producer.flush()
                published = time.perf_counter() - started
                await wait_for(
                    pool,
                    "SELECT count(*) FROM campaign_chunks WHERE campaign_id = $1",
                    campaign,
                    want=count,
                )
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds(consumer.pid) - cpu_before
                rss_after = peak_rss_mib(consumer.pid)
                rows = await pool.fetchval(
                    "SELECT count(*) FROM ledger WHERE campaign_id = $1", campaign
                )
            finally:
                await producer.stop()
                consumer.send_signal(signal.SIGTERM)
                await consumer.wait()
    recipients = count * per_chunk
    if rows != recipients:
        raise SystemExit(f"ledger has {rows} rows, expected {recipients}")
    print(
        table(
            f"intake: {count} chunks x {per_chunk:,} recipients -> ledger",
            ["metric", "value"],
            [
                ["recipients", recipients],
                ["total seconds (publish start -> last chunk committed)", round(elapsed, 2)],
                ["recipients/s", round(recipients / elapsed)],
                ["publish seconds (acks=all)", round(published, 2)],
                ["consumer CPU seconds", round(cpu, 2)],
                ["consumer peak RSS before, MiB (VmHWM)", round(rss_before, 1)],
                ["consumer peak RSS after, MiB (VmHWM)", round(rss_after, 1)],
            ],
        )
    )


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--per-chunk", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.per_chunk))


if __name__ == "__main__":
    cli()
