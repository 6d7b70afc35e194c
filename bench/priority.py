"""How soon and how fast a transactional campaign published in the middle of a big bulk
one is sent, beside the same campaign sent alone.

    .venv/bin/python -m bench.priority [--quick]

A 50,000-recipient bulk campaign is paced out by `python -m consumer` at the
organisation's write budget (18,000/min, 300 sends/s: the sandbox's bucket emptied once
the consumer is ready, so the rate binds from the first send; 20 ms an answer, an
unlimited tier, 50 in flight). Once half of it is sent, a 500-recipient transactional
campaign is published for the same number; a few seconds after it, the same 500 (new
phones) are published again and bulk is cancelled once their rows have landed, so they
are sent alone in the same state (the bucket empty, the pacer in step with it). From
the sandbox's record of accepted sends: the time from the transactional request's
publish, and from its rows landing in the ledger (intake's `ledger_pending`), to its
first send; its send rate with bulk against alone; bulk's rate and share while both
had work. Targets (issue 13): first send within 1 s, rate at least 90% of alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from bench.harness import bench_database, dev_stack, table
from bench.soak.processes import ServiceProcess
from devstack.procs import free_port
from runtime import defaults
from runtime.topics import ensure_topics
from schemas.requests import (
    BroadcastCancelled,
    BroadcastRequested,
    Chunk,
    Priority,
    Recipient,
    RequestEvent,
    Sender,
    encode_request_event,
)
from schemas.template import Component, Template, TextParameter

SENDER = defaults.DEFAULT_PHONE_NUMBER_ID
WRITE_PER_MINUTE = 18_000
LATENCY_MS = 20.0
BULK_MIN_SHARE = 0.05
CHUNK = 5_000
OPTED_IN = datetime(2025, 1, 1, tzinfo=UTC)
TEMPLATE = Template(
    name=defaults.DEFAULT_TEMPLATE,
    language=defaults.DEFAULT_TEMPLATE_LANGUAGE,
    components=[Component(type="body", parameters=[TextParameter(text="Hi {{first_name}}")])],
)


def phones(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{n:07d}" for n in range(count)]


def requests(campaign: uuid.UUID, people: Sequence[str], priority: Priority) -> list[bytes]:
    chunks = [people[i : i + CHUNK] for i in range(0, len(people), CHUNK)]
    return [
        encode_request_event(
            BroadcastRequested(
                campaign_id=campaign,
                sender=Sender(phone_number_id=SENDER),
                template=TEMPLATE,
                recipients=[
                    Recipient(phone=p, opted_in_at=OPTED_IN, variables={"first_name": "Budi"})
                    for p in chunk
                ],
                chunk=Chunk(index=index, count=len(chunks)),
                priority=priority,
            )
        )
        for index, chunk in enumerate(chunks)
    ]


class Run:
    """The sandbox, one consumer and a listener for `ledger_pending`, for one bench run."""

    def __init__(self, database_url: str, bootstrap: str, topic: str, log_dir: Path) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.topic = topic
        sandbox_port, consumer_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{sandbox_port}"
        config = {
            "accounts": {SENDER: {"messaging_tier": "unlimited"}},
            "rate_limits": {"write_per_minute": WRITE_PER_MINUTE, "read_per_minute": 600_000},
            "faults": {"latency": {"fixed_ms": LATENCY_MS}},
        }
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        }
        self.sandbox = ServiceProcess(
            "sandbox",
            "sandbox",
            {
                **base,
                "SANDBOX_PORT": str(sandbox_port),
                "SANDBOX_CONFIG": msgspec.json.encode(config).decode(),
                "SANDBOX_WEBHOOK_URL": "",
                "SANDBOX_LOG_LEVEL": "WARNING",
            },
            log_dir,
            sandbox_port,
        )
        self.consumer = ServiceProcess(
            "consumer",
            "consumer",
            {
                **base,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "DATABASE_URL": database_url,
                "KIRIM_BASE_URL": self.api + "/v1",
                "REQUESTS_TOPIC": topic,
                "REQUESTS_DLQ_TOPIC": topic + ".dlq",
                "CONSUMER_GROUP": f"g-{topic}",
                "CONSUMER_METRICS_PORT": str(consumer_port),
                "DISPATCH_SENDERS": SENDER,
                "DISPATCH_BULK_MIN_SHARE": str(BULK_MIN_SHARE),
                "LOG_LEVEL": "WARNING",
            },
            log_dir,
            consumer_port,
        )
        self.landed: dict[str, float] = {}
        self._listener: asyncpg.Connection | None = None
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Run:
        await self.sandbox.start()
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(30):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.api + "/v1/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        self._listener = await asyncpg.connect(self.database_url)
        await self._listener.add_listener("ledger_pending", self._on_pending)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,
            max_request_size=2 * 1024 * 1024,
        )
        await self._producer.start()
        await self.consumer.start()
        await self.consumer.ready(within=60)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._listener is not None:
            await self._listener.close()
        await self.sandbox.stop()

    def _on_pending(self, _c: object, _pid: int, _channel: str, payload: object) -> None:
        # The first chunk's commit: when a one-chunk campaign's rows are in the ledger.
        self.landed.setdefault(str(payload), time.time())

    async def publish(self, campaign: uuid.UUID, values: Sequence[bytes]) -> float:
        """Publish a campaign's chunks; returns when the first one was handed to Kafka."""
        assert self._producer is not None
        started = time.time()
        for value in values:
            await self._producer.send_and_wait(self.topic, value, key=str(campaign).encode())
        return started

    async def cancel(self, campaign: uuid.UUID) -> None:
        event: RequestEvent = BroadcastCancelled(campaign_id=campaign, reason="bench")
        await self.publish(campaign, [encode_request_event(event)])

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(timeout=60) as http:
            response = await http.request(method, f"{self.api}/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    async def accepted(self) -> int:
        body = await self.control("GET", "/audit")
        return int(body.get("data", body)["totals"]["accepted_sends"])

    async def empty_the_bucket(self) -> None:
        """A plan of 1/min and back keeps one token of the full bucket (sandbox
        `TokenBucket.resize`). Only while the consumer sends nothing: an answer in
        between would teach it a budget of 1/min."""
        for per_minute in (1, WRITE_PER_MINUTE):
            await self.control(
                "PATCH", "/config", json={"rate_limits": {"write_per_minute": per_minute}}
            )

    async def send_times(self) -> dict[str, float]:
        """Every accepted send: recipient -> when the sandbox accepted it."""
        times: dict[str, float] = {}
        after = "0"
        while True:
            body = await self.control(
                "GET",
                "/messages",
                params={"phone_number_id": SENDER, "after": after, "limit": "10000"},
            )
            for message in body["data"]:
                created = message["created_at"].replace("Z", "+00:00")
                times[message["to"]] = datetime.fromisoformat(created).timestamp()
            if not body.get("has_more"):
                return times
            after = body["next_cursor"]

    async def until(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while await self.accepted() < count:
                await asyncio.sleep(0.05)

    async def settled(self, campaign: uuid.UUID, within: float) -> None:
        """Until the campaign has no recipient pending (all sent, for these)."""
        assert self._listener is not None
        async with asyncio.timeout(within):
            while await self._listener.fetchval(
                "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'pending'",
                campaign,
            ) or not await self._listener.fetchval(
                "SELECT count(*) FROM ledger WHERE campaign_id = $1", campaign
            ):
                await asyncio.sleep(0.1)

    async def quiet(self, seconds: float, within: float) -> None:
        """Until no send was accepted for `seconds` (the cancelled bulk's last ones done)."""
        async with asyncio.timeout(within):
            last, since = await self.accepted(), time.monotonic()
            while time.monotonic() - since < seconds:
                await asyncio.sleep(0.1)
                now = await self.accepted()
                if now != last:
                    last, since = now, time.monotonic()


def rate(times: Sequence[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


async def main(bulk_count: int, urgent_count: int) -> None:
    stack = await asyncio.to_thread(dev_stack)
    async with bench_database(stack) as database_url:
        topic = f"bench-priority-{uuid.uuid4().hex[:8]}"
        await ensure_topics(stack.kafka.bootstrap_servers, {topic: 3, topic + ".dlq": 1})
        with tempfile.TemporaryDirectory(prefix="bench-priority-") as logs:
            async with Run(database_url, stack.kafka.bootstrap_servers, topic, Path(logs)) as run:
                figures = await measure(run, bulk_count, urgent_count)
    print(report(figures, bulk_count, urgent_count))


async def measure(run: Run, bulk_count: int, urgent_count: int) -> dict[str, Any]:
    bulk, urgent, alone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    bulk_phones = phones(bulk_count, "+62817")
    urgent_phones, alone_phones = phones(urgent_count, "+62818"), phones(urgent_count, "+62819")
    minutes = 60 + 2 * bulk_count / (WRITE_PER_MINUTE / 60)

    await run.empty_the_bucket()
    await run.publish(bulk, requests(bulk, bulk_phones, "bulk"))
    await run.until(bulk_count // 2, within=minutes)
    urgent_published = await run.publish(urgent, requests(urgent, urgent_phones, "transactional"))
    # Watched in the ledger, not by listing the sandbox's messages while it sends.
    await run.settled(urgent, within=120)
    await asyncio.sleep(3)
    # Alone, in the same state: the same campaign (new phones) is published again and bulk
    # cancelled once its rows have landed, so the bucket is as empty, and the pacer as much
    # in step with it, as the first time (cancelled first, bulk would leave tokens to
    # pile up for a burst); bulk's few sends until the cancel lands are reported.
    alone_published = await run.publish(alone, requests(alone, alone_phones, "transactional"))
    async with asyncio.timeout(60):
        while str(alone) not in run.landed:
            await asyncio.sleep(0.005)
    await run.cancel(bulk)
    await run.settled(alone, within=120)
    await run.quiet(1.0, within=60)
    times = await run.send_times()

    urgent_times = sorted(times[p] for p in urgent_phones)
    alone_times = sorted(times[p] for p in alone_phones)
    bulk_times = sorted(times[p] for p in bulk_phones if p in times)
    first, last = urgent_times[0], urgent_times[-1]
    during = [t for t in bulk_times if first <= t <= last]
    before = [t for t in bulk_times if first - 5.0 <= t < first]
    return {
        "urgent": {
            "from_publish": first - urgent_published,
            "from_landed": first - run.landed[str(urgent)],
            "rate": rate(urgent_times),
            "seconds": last - first,
        },
        "alone": {
            "from_publish": alone_times[0] - alone_published,
            "from_landed": alone_times[0] - run.landed[str(alone)],
            "rate": rate(alone_times),
            "seconds": alone_times[-1] - alone_times[0],
        },
        "bulk_during": len(during) / (last - first),
        "bulk_share": len(during) / (len(during) + len(urgent_times)),
        "bulk_before": len(before) / 5.0,
        "bulk_sent": len(bulk_times),
        # Bulk's sends after the run alone began, until its cancel took effect.
        "bulk_with_alone": sum(1 for t in bulk_times if t >= alone_times[0]),
    }


def report(figures: dict[str, Any], bulk_count: int, urgent_count: int) -> str:
    urgent, alone = figures["urgent"], figures["alone"]
    ratio = urgent["rate"] / alone["rate"]
    first_ok = urgent["from_publish"] <= 1.0 and urgent["from_landed"] <= 1.0
    rows = [
        (
            f"{urgent_count:,} transactional, mid-way through {bulk_count:,} bulk",
            urgent["from_publish"],
            urgent["from_landed"],
            urgent["seconds"],
            urgent["rate"],
            f"{ratio:.1%}",
            figures["bulk_during"],
            f"{figures['bulk_share']:.1%}",
        ),
        (
            f"the same {urgent_count:,} alone",
            alone["from_publish"],
            alone["from_landed"],
            alone["seconds"],
            alone["rate"],
            "100%",
            "-",
            "-",
        ),
    ]
    lines = [
        table(
            f"Priority lanes at {WRITE_PER_MINUTE:,} writes/min ({WRITE_PER_MINUTE // 60}/s), "
            f"{LATENCY_MS:.0f} ms an answer, DISPATCH_BULK_MIN_SHARE={BULK_MIN_SHARE}",
            [
                "transactional campaign",
                "publish -> first send (s)",
                "rows landed -> first send (s)",
                "first -> last send (s)",
                "sends/s",
                "vs alone",
                "bulk sends/s meanwhile",
                "bulk's share",
            ],
            rows,
        ),
        f"bulk before the transactional campaign: {figures['bulk_before']:.0f} sends/s "
        f"(the budget: {WRITE_PER_MINUTE / 60:.0f}/s); bulk sent {figures['bulk_sent']:,} of "
        f"{bulk_count:,} before it was cancelled for the run alone "
        f"({figures['bulk_with_alone']} of them after that run's first send)",
        f"target first send <= 1 s (from publish and from rows landed): "
        f"{'met' if first_ok else 'NOT met'}",
        f"target rate >= 90% of alone: {'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.1%})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000 bulk and 200 transactional")
    args = parser.parse_args()
    bulk_count, urgent_count = (10_000, 200) if args.quick else (50_000, 500)
    asyncio.run(main(bulk_count, urgent_count))
