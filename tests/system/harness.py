"""A campaign through real `python -m consumer` processes against the sandbox.

The test process holds the sandbox (so it survives the consumers' deaths), publishes
the campaign to a real topic, and reconciles the ledger with what the sandbox accepted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from devstack.procs import free_port
from runtime import defaults
from sandbox.testing import RunningSandbox
from schemas.requests import Recipient, Sender, encode_request_event
from tests.children import Child, spawn_service
from tests.intake.builders import OPTED_IN, request


@dataclass
class System:
    sandbox: RunningSandbox
    database_url: str
    bootstrap: str
    requests_topic: str
    dlq_topic: str
    senders: Sequence[str]
    log_dir: Path
    group: str = field(default_factory=lambda: f"g-{uuid.uuid4().hex[:10]}")
    extra: dict[str, str] = field(default_factory=dict)

    def consumer_env(self) -> tuple[dict[str, str], int]:
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "KIRIM_BASE_URL": self.sandbox.api_url,
            "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
            "REQUESTS_TOPIC": self.requests_topic,
            "REQUESTS_DLQ_TOPIC": self.dlq_topic,
            "CONSUMER_GROUP": self.group,
            "CONSUMER_METRICS_PORT": str(port),
            "DISPATCH_SENDERS": ",".join(self.senders),
            "DISPATCH_RETRY_BASE_SECONDS": "0.05",
            "DISPATCH_RETRY_MAX_SECONDS": "1",
            "DISPATCH_OWNERSHIP_INTERVAL_SECONDS": "0.2",
            "DISPATCH_RECONCILE_INTERVAL_SECONDS": "0.5",
            "DISPATCH_FAILURE_RECHECK_SECONDS": "0.5",
            "KIRIM_TIMEOUT_SECONDS": "1.5",
            "SHUTDOWN_GRACE_SECONDS": "3",
            "INTAKE_SESSION_TIMEOUT_MS": "3000",
            "INTAKE_COMMIT_INTERVAL_SECONDS": "0.2",
            **self.extra,
        }
        return env, port

    async def start_consumer(self, name: str) -> tuple[Child, int]:
        env, port = self.consumer_env()
        return await spawn_service(name, "consumer", env, self.log_dir), port


VARIABLES = {"first_name": "Budi", "discount": "5%"}


def audience(count: int, seed: int) -> list[str]:
    return [f"+62815{(seed * 7919 + i) % 10**8:08d}" for i in range(count)]


async def publish_campaign(
    system: System, sender: str, phones: Sequence[str], chunk_size: int = 1000
) -> uuid.UUID:
    campaign = uuid.uuid4()
    chunks = [phones[i : i + chunk_size] for i in range(0, len(phones), chunk_size)]
    producer = AIOKafkaProducer(bootstrap_servers=system.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for index, chunk in enumerate(chunks):
            event = request(
                campaign,
                [
                    Recipient(
                        phone=p,
                        opted_in_at=OPTED_IN,
                        variables={"first_name": "Budi", "discount": "5%"},
                    )
                    for p in chunk
                ],
                index=index,
                count=len(chunks),
                sender=Sender(phone_number_id=sender),
            )
            await producer.send_and_wait(
                system.requests_topic, encode_request_event(event), key=str(campaign).encode()
            )
    finally:
        await producer.stop()
    return campaign


async def ledger_counts(pool: asyncpg.Pool, campaign: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM ledger WHERE campaign_id = $1 GROUP BY status", campaign
    )
    return {r["status"]: r["n"] for r in rows}


async def accepted_messages(system: System, sender: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    after = "0"
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            response = await client.get(
                system.sandbox.control_url + "/messages",
                params={"phone_number_id": sender, "after": after, "limit": "10000"},
            )
            response.raise_for_status()
            body = response.json()
            messages.extend(body["data"])
            if not body.get("has_more"):
                return messages
            after = body["next_cursor"]


async def audit(system: System) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        body = (await client.get(system.sandbox.control_url + "/audit")).json()
    report: dict[str, Any] = body.get("data", body)
    return report


async def owned_senders(port: int) -> float | None:
    """The consumer's broadcast_dispatch_owned_senders, None while it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("broadcast_dispatch_owned_senders "):
            return float(line.split()[1])
    return None


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, step: float = 0.1
) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(step)


async def assert_exactly_once(
    system: System, pool: asyncpg.Pool, campaign: uuid.UUID, sender: str, recipients: int
) -> None:
    """Every recipient accepted once (or failed with a code); the ledger says what the API saw."""
    rows = await pool.fetch(
        "SELECT phone, status, message_id, error_code FROM ledger WHERE campaign_id = $1", campaign
    )
    assert len(rows) == recipients
    assert {r["status"] for r in rows} <= {"queued", "failed"}
    assert all(r["error_code"] for r in rows if r["status"] == "failed")
    messages = await accepted_messages(system, sender)
    by_phone: dict[str, list[str]] = {}
    for message in messages:
        by_phone.setdefault(message["to"], []).append(message["id"])
    duplicates = {phone: ids for phone, ids in by_phone.items() if len(ids) > 1}
    assert duplicates == {}
    ledger = {r["phone"]: r["message_id"] for r in rows if r["status"] == "queued"}
    accepted = {phone: ids[0] for phone, ids in by_phone.items()}
    assert ledger == accepted
