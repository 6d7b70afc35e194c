"""Listening at once, `/healthz` and `/readyz`, and a clean stop (exit 0), as processes."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest

from devstack.procs import free_port
from tests.bridge.kirim import SECRET, signed_headers, status_body
from tests.children import Child, spawn_service, stop_all
from tests.entrypoints.forward import forwarding
from tests.entrypoints.services import base_env
from tests.topics import read_all

WAIT_SECONDS = 45.0


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def status_of(http: httpx.AsyncClient, url: str) -> int | None:
    """The HTTP status at `url`; None while nothing listens."""
    try:
        return (await http.get(url)).status_code
    except httpx.TransportError:
        return None


async def wait_for_status(
    http: httpx.AsyncClient, child: Child, url: str, expected: int
) -> httpx.Response:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            assert child.process.returncode is None, child.describe()
            try:
                response = await http.get(url)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == expected:
                    return response
            await asyncio.sleep(0.05)


async def stopped_cleanly(child: Child) -> None:
    child.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(WAIT_SECONDS):
        code = await child.process.wait()
    assert code == 0, child.describe()
    assert "Traceback" not in child.log_tail(400), child.describe()


async def test_the_bridge_listens_before_kafka_answers_and_gets_ready_when_it_does(
    kafka_bootstrap: str, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Nothing listens on `broker_port` yet: Kafka is "down" until the forwarder opens.
    broker_port, port = free_port(), free_port()
    topic = f"status-{uuid.uuid4().hex[:10]}"
    env = base_env(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{broker_port}",
        WEBHOOK_BRIDGE_PORT=str(port),
        KIRIM_WEBHOOK_SECRETS=SECRET,
        STATUS_TOPIC=topic,
        STATUS_TOPIC_PARTITIONS="1",
    )
    base = f"http://127.0.0.1:{port}"
    body = status_body(
        message_id="msg_ENTRY", wamid="wamid.ENTRY", status="sent", timestamp=int(time.time())
    )
    started = time.monotonic()
    bridge = await spawn_service("bridge", "webhook_bridge", env, tmp_path)
    try:
        alive = await wait_for_status(http, bridge, base + "/healthz", 200)
        assert time.monotonic() - started < 15
        assert alive.json()["status"] == "ok"
        not_ready = await http.get(base + "/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["startup"] == {
            "ok": False,
            "detail": "connecting to Kafka",
        }
        refused = await http.post(base + "/kirim-hook", content=body, headers=signed_headers(body))
        assert refused.status_code == 503
        assert refused.json() == {"outcome": "unavailable", "reason": "not_ready"}
        # Still a 401 for a forgery, before and after: readiness changes only storing.
        forged = await http.post(
            base + "/kirim-hook", content=body, headers={"X-Kirim-Signature": "t=1,v1=00"}
        )
        assert forged.status_code == 401

        async with forwarding(broker_port, kafka_bootstrap):
            ready = await wait_for_status(http, bridge, base + "/readyz", 200)
            assert ready.json()["checks"]["startup"]["ok"] is True
            assert ready.json()["checks"]["kafka"]["ok"] is True
            fresh = signed_headers(body)
            stored = await http.post(base + "/kirim-hook", content=body, headers=fresh)
            assert stored.status_code == 200, stored.text
            assert stored.json() == {"outcome": "produced"}
            await stopped_cleanly(bridge)
        records = await read_all(kafka_bootstrap, topic)
        # Only the acknowledged delivery is in Kafka: the 503 stored nothing.
        assert [(record.key, record.value) for record in records] == [(b"msg_ENTRY", body)]
    finally:
        await stop_all([bridge])


def _service_env(kafka_bootstrap: str, database_url: str, **variables: str) -> Mapping[str, str]:
    return base_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        SHUTDOWN_GRACE_SECONDS="2",
        INTAKE_GRACE_SECONDS="2",
        **variables,
    )


async def test_the_consumer_serves_readyz_goes_on_without_the_api_and_stops_with_0(
    kafka_bootstrap: str, database_url: str, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    port, nothing = free_port(), free_port()
    run_id = uuid.uuid4().hex[:10]
    env = _service_env(
        kafka_bootstrap,
        database_url,
        CONSUMER_METRICS_PORT=str(port),
        # The accounts API is down: the DISPATCH_SENDERS check is skipped, not fatal.
        KIRIM_BASE_URL=f"http://127.0.0.1:{nothing}/v1",
        DISPATCH_SENDERS="106540352242922",
        REQUESTS_TOPIC=f"requests-{run_id}",
        REQUESTS_DLQ_TOPIC=f"requests-{run_id}.dlq",
        REQUESTS_TOPIC_PARTITIONS="1",
        CONSUMER_GROUP=f"g-{run_id}",
    )
    consumer = await spawn_service("consumer", "consumer", env, tmp_path)
    try:
        ready = await wait_for_status(http, consumer, f"http://127.0.0.1:{port}/readyz", 200)
        assert {"startup", "intake_progress", "intake_fetch", "accounts", "dispatcher"} <= set(
            ready.json()["checks"]
        )
        assert await status_of(http, f"http://127.0.0.1:{port}/healthz") == 200
        assert "senders_not_checked" in consumer.log_tail(400)
        await stopped_cleanly(consumer)
    finally:
        await stop_all([consumer])


async def test_the_projector_serves_readyz_and_stops_with_0(
    kafka_bootstrap: str, database_url: str, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    port = free_port()
    run_id = uuid.uuid4().hex[:10]
    env = _service_env(
        kafka_bootstrap,
        database_url,
        PROJECTOR_METRICS_PORT=str(port),
        STATUS_TOPIC=f"status-{run_id}",
        STATUS_TOPIC_PARTITIONS="1",
        PROJECTOR_GROUP=f"g-{run_id}",
    )
    projector = await spawn_service("projector", "projector", env, tmp_path)
    try:
        ready = await wait_for_status(http, projector, f"http://127.0.0.1:{port}/readyz", 200)
        assert set(ready.json()["checks"]) == {"startup", "kafka", "progress"}
        assert await status_of(http, f"http://127.0.0.1:{port}/healthz") == 200
        await stopped_cleanly(projector)
    finally:
        await stop_all([projector])
