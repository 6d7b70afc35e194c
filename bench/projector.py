"""The projector's throughput: events folded per second, and a rebuild from 1,000,000 events.

    .venv/bin/python -m bench.projector [--events N] [--batch-size N]

Against the developer stack (started when it is not running), in a fresh database
and a fresh topic that are dropped at the end. The events are Kirim-shaped status
bodies (the sandbox's own encoder), about 2.6 per message (sent, delivered, read;
10% failing), plus 5% duplicates, in roughly chronological order, each message's
events in one partition (keyed by message id, as the bridge produces them). They
are loaded with `send_batch`, then:

1. the live projector (`projector.service.run`, until idle) folds the whole topic;
2. `projector.rebuild.rebuild` replays it into a fresh table and swaps it in.

Goals (issue 6): >= 20,000 events/s folded; the rebuild time is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
import zlib
from dataclasses import replace

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from bench.harness import bench_database, dev_stack, table
from projector.rebuild import rebuild
from projector.service import run
from projector.settings import ProjectorSettings
from sandbox.catalog import FAILURES
from sandbox.payload import StatusEvent, status_body

PARTITIONS = 3
START = 1_780_000_000
FAILURE = FAILURES["recipient_not_on_whatsapp"]


def lifecycle(index: int, rng: random.Random) -> list[tuple[float, bytes, bytes]]:
    """One message's events as (time, key, body)."""
    message_id = f"msg_BENCH{index:021d}"
    wamid = f"wamid.BENCH{index:012d}"
    roll = rng.random()
    steps = ["sent", "failed"] if roll < 0.1 else ["sent", "delivered"]
    if roll >= 0.4:
        steps.append("read")
    base = START + index / 1000
    offsets = {"sent": 0.0, "delivered": 2.0, "read": 30.0, "failed": 1.0}
    events = []
    for status in steps:
        event = StatusEvent(
            message_id=message_id,
            phone_number_id="106540352242922",
            display_phone_number="6281100000001",
            waba_id="102290129340398",
            wamid=wamid,
            recipient_id=f"62813{index:08d}",
            status=status,
            timestamp=int(base + offsets[status]),
            category="MARKETING",
            failure=FAILURE if status == "failed" else None,
        )
        body = status_body(event)
        events.append((base + offsets[status], message_id.encode(), body))
        if rng.random() < 0.05:
            events.append((base + offsets[status] + 5, message_id.encode(), body))
    return events


def generate(count: int) -> list[tuple[float, bytes, bytes]]:
    rng = random.Random(1)
    events: list[tuple[float, bytes, bytes]] = []
    index = 0
    while len(events) < count:
        events.extend(lifecycle(index, rng))
        index += 1
    events.sort(key=lambda event: event[0])
    return events[:count]


async def load(bootstrap: str, topic: str, events: list[tuple[float, bytes, bytes]]) -> None:
    """Append the events with one `send_batch` per full batch and partition."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, max_batch_size=1_000_000, linger_ms=0
    )
    await producer.start()
    try:
        builders = [producer.create_batch() for _ in range(PARTITIONS)]
        pending: list[asyncio.Future[object]] = []
        headers = [("X-Kirim-Event", b"message.status")]
        for _, key, body in events:
            partition = zlib.crc32(key) % PARTITIONS
            if (
                builders[partition].append(key=key, value=body, timestamp=None, headers=headers)
                is None
            ):
                pending.append(
                    await producer.send_batch(builders[partition], topic, partition=partition)
                )
                builders[partition] = producer.create_batch()
                builders[partition].append(key=key, value=body, timestamp=None, headers=headers)
                if len(pending) > 32:
                    await asyncio.gather(*pending)
                    pending.clear()
        for partition, builder in enumerate(builders):
            if builder.record_count():
                pending.append(await producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def folded_so_far() -> float:
    return (
        REGISTRY.get_sample_value("broadcast_projector_events_total", {"outcome": "folded"}) or 0.0
    )


async def live_fold(settings: ProjectorSettings) -> tuple[float, float]:
    """Wall seconds to fold the whole topic, and the steady rate (first to last batch)."""
    marks: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            marks.append((time.perf_counter(), folded_so_far()))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    await run(settings, asyncio.Event(), until_idle=True, serve_metrics=False)
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    marks.append((time.perf_counter(), folded_so_far()))
    moving = [(t, n) for t, n in marks if n > marks[0][1]]
    first_t, first_n = moving[0]
    last_t, last_n = moving[-1]
    steady = (last_n - first_n) / (last_t - first_t) if last_t > first_t else 0.0
    return elapsed, steady


async def main(count: int, batch_size: int) -> None:
    stack = dev_stack()
    bootstrap = stack.kafka.bootstrap_servers
    topic = f"bench-status-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        started = time.perf_counter()
        events = generate(count)
        messages = len({key for _, key, _ in events})
        generated = time.perf_counter() - started
        started = time.perf_counter()
        await load(bootstrap, topic, events)
        loaded = time.perf_counter() - started
        payload = sum(len(body) for _, _, body in events)
        del events

        async with bench_database(stack) as database_url:
            settings = ProjectorSettings(
                bootstrap_servers=bootstrap,
                database_url=database_url,
                topic=topic,
                group_id=f"bench-{uuid.uuid4().hex[:8]}",
                batch_size=batch_size,
            )
            folded_before = folded_so_far()
            fold_seconds, steady = await live_fold(settings)
            folded = folded_so_far() - folded_before
            connection = await asyncpg.connect(database_url)
            try:
                rows = await connection.fetchval("SELECT count(*) FROM message_statuses")
                report = await rebuild(replace(settings, group_id="unused"))
                rebuilt = await connection.fetchval("SELECT count(*) FROM message_statuses")
            finally:
                await connection.close()
        assert rows == rebuilt == messages, (rows, rebuilt, messages)
        print(
            table(
                f"Projector: {count:,} status events, {messages:,} messages "
                f"({payload / count:.0f} B each), batches of {batch_size:,}",
                ["measure", "value", "goal"],
                [
                    ["generate events (s)", generated, ""],
                    ["load into Kafka with send_batch (s)", loaded, ""],
                    ["live fold: wall time incl. group join (s)", fold_seconds, ""],
                    ["live fold: events/s (wall)", int(folded / fold_seconds), ">= 20,000"],
                    ["live fold: events/s (first to last batch)", int(steady), ">= 20,000"],
                    ["rebuild: replay + swap (s)", report.seconds, "reported"],
                    ["rebuild: events/s", int(report.events / report.seconds), ""],
                    ["rows (live = rebuilt = messages)", rows, ""],
                ],
            )
        )
    finally:
        await admin.delete_topics([topic])
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=ProjectorSettings().batch_size)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch_size))
