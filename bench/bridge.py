"""The webhook bridge's throughput and latency with `acks=all`, over loopback HTTP.

    .venv/bin/python -m bench.bridge [--requests N] [--concurrency C] [--rate R] [--seconds S]

`python -m webhook_bridge` runs as a subprocess against the developer stack's
broker (started when it is not running), producing to a fresh topic. The load
comes from an aiohttp client in this process (127.0.0.1 only): signed
`message.status` bodies as Kirim sends them, a new `t` signed per request.

1. Throughput: N requests from C concurrent connections (a closed loop).
2. Latency at a paced rate: R requests/s for S seconds, each started at its
   scheduled time (an open loop, bounded to 1,000 outstanding); latency is
   measured from the scheduled time, so client-side queueing counts too.

Every answer must be 200, and the topic must hold exactly one record per 200.
Goals (issue 6): >= 3,000 webhooks/s; p99 <= 50 ms at 1,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.harness import ROOT, cpu_seconds, dev_stack, table
from devstack.procs import free_port
from sandbox.payload import StatusEvent, status_body
from webhook_bridge.verify import sign

SECRET = "whsec_bench_secret_0123456789"
KEY = SECRET.encode()
PARTITIONS = 3


def bodies(prefix: str) -> Iterator[bytes]:
    index = 0
    while True:
        event = StatusEvent(
            message_id=f"msg_{prefix}{index:018d}",
            phone_number_id="106540352242922",
            display_phone_number="6281100000001",
            waba_id="102290129340398",
            wamid=f"wamid.{prefix}{index:012d}",
            recipient_id=f"62813{index % 10**8:08d}",
            status=("sent", "delivered", "read")[index % 3],
            timestamp=int(time.time()),
            category="MARKETING",
        )
        yield status_body(event)
        index += 1


class Load:
    """Posts signed webhooks and keeps every latency and status."""

    def __init__(self, session: aiohttp.ClientSession, url: str, prefix: str) -> None:
        self._session = session
        self._url = url
        self._bodies = bodies(prefix)
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()

    async def post(self, since: float | None = None) -> None:
        body = next(self._bodies)
        started = time.perf_counter() if since is None else since
        headers = {
            "Content-Type": "application/json",
            "X-Kirim-Event": "message.status",
            "X-Kirim-Source": "meta",
            "X-Kirim-Attempt": "1",
            "X-Kirim-Signature": sign(body, [KEY], int(time.time())),
        }
        async with self._session.post(self._url, data=body, headers=headers) as response:
            await response.read()
            self.statuses[response.status] += 1
        self.latencies.append(time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def closed_loop(load: Load, total: int, concurrency: int) -> float:
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            await load.post()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def open_loop(load: Load, rate: float, seconds: float) -> float:
    outstanding = asyncio.Semaphore(1_000)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    begin = loop.time()
    perf_begin = time.perf_counter()

    async def one(scheduled: float) -> None:
        try:
            await load.post(since=scheduled)
        finally:
            outstanding.release()

    for index in range(int(rate * seconds)):
        due = begin + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await outstanding.acquire()
        task = asyncio.create_task(one(perf_begin + index / rate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    return time.perf_counter() - perf_begin


async def stored(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        return sum(ends.values())
    finally:
        await consumer.stop()


async def wait_healthy(
    session: aiohttp.ClientSession, base_url: str, process: asyncio.subprocess.Process
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError("the bridge exited during start")
        try:
            async with session.get(base_url + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the bridge did not become healthy")


def summary(name: str, load: Load, seconds: float) -> list[object]:
    ms = [latency * 1000 for latency in load.latencies]
    count = len(ms)
    return [
        name,
        count,
        seconds,
        int(count / seconds),
        statistics.median(ms),
        percentile(ms, 0.99),
        max(ms),
        ", ".join(f"{status}: {n}" for status, n in sorted(load.statuses.items())),
    ]


async def main(total: int, concurrency: int, rate: float, seconds: float) -> None:
    stack = dev_stack()
    bootstrap = stack.kafka.bootstrap_servers
    topic = f"bench-bridge-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KIRIM_WEBHOOK_SECRETS": SECRET,
        "WEBHOOK_BRIDGE_PORT": str(port),
        "STATUS_TOPIC": topic,
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webhook_bridge", env=env, cwd=ROOT
    )
    base_url = f"http://127.0.0.1:{port}"
    rows: list[list[object]] = []
    try:
        connector = aiohttp.TCPConnector(limit=max(concurrency, 1_000))
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_healthy(session, base_url, process)
            url = base_url + "/kirim-hook"
            warmup = Load(session, url, "W")
            await closed_loop(warmup, 2_000, concurrency)

            throughput = Load(session, url, "T")
            cpu_before = cpu_seconds(process.pid)
            elapsed = await closed_loop(throughput, total, concurrency)
            cpu_per_request = (cpu_seconds(process.pid) - cpu_before) / total
            rows.append(summary(f"closed loop, {concurrency} connections", throughput, elapsed))

            paced = Load(session, url, "P")
            elapsed = await open_loop(paced, rate, seconds)
            rows.append(summary(f"paced at {rate:,.0f}/s", paced, elapsed))

        accepted = warmup.statuses[200] + throughput.statuses[200] + paced.statuses[200]
        in_kafka = await stored(bootstrap, topic)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        await admin.delete_topics([topic])
        await admin.close()
    print(
        table(
            "Webhook bridge: signed message.status webhooks, acks=all, idempotent producer",
            ["load", "requests", "seconds", "webhooks/s", "p50 ms", "p99 ms", "max ms", "answers"],
            rows,
        )
    )
    print(f"bridge CPU per request: {cpu_per_request * 1e6:,.0f} µs")
    print(f"answered 200: {accepted:,}; records in Kafka: {in_kafka:,}")
    print("goals: >= 3,000 webhooks/s; p99 <= 50 ms at 1,000/s")
    assert accepted == in_kafka, "a 200 without a record (or a record without a 200)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.rate, args.seconds))
