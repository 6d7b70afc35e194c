"""Debian's real `prometheus` scrapes the four running services with the committed config.

One stack for the module: the sandbox, the bridge, the projector and the consumer as
`python -m ...` children on free ports, against the session's Kafka and a database of
their own; Prometheus with `compose/prometheus/prometheus.yml` rendered for loopback
(1 s scrapes) and the committed alert rules. A little traffic makes the labelled
series appear: one valid and one invalid request event, one signed webhook, one API
call to the sandbox.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack.postgres import PostgresServer
from devstack.procs import free_port
from runtime import defaults
from runtime.migrate import migrate_url
from schemas import encode_request_event
from schemas.requests import BroadcastRequested, Recipient, Sender
from schemas.template import Component, Template, TextParameter
from tests.bridge.kirim import signed_headers, status_body
from tests.children import Child, spawn, spawn_service, stop_all
from tests.observability import dashboard
from tests.observability.promconfig import COMPOSE_TARGETS, RULES_PATH, write_local_config
from tests.observability.stack import prometheus_argv

pytestmark = [
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="Debian's prometheus is not installed (scripts/setup installs it as root: "
        "apt-get install -y prometheus)",
    ),
    pytest.mark.timeout(150),
]

SECRET = "whsec_observability_test_secret"
# Loaded 2-core machines start four Python services and a JVM-backed group join slowly.
STARTUP_SECONDS = 60.0
SERIES_SECONDS = 45.0


@dataclass
class Stack:
    prometheus_url: str
    ports: dict[str, int]
    children: list[Child]
    started: float = field(default_factory=time.monotonic)

    def logs(self) -> str:
        return "\n".join(child.describe() for child in self.children)

    def check_alive(self) -> None:
        dead = [child for child in self.children if child.process.returncode is not None]
        assert not dead, "a child process exited early:\n" + "\n".join(
            child.describe() for child in dead
        )


async def _wait_for_port(port: int, deadline: float, stack: Stack) -> None:
    while True:
        stack.check_alive()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port}:\n{stack.logs()}") from None
            await asyncio.sleep(0.2)
        else:
            writer.close()
            await writer.wait_closed()
            return


def _environment(
    *, bootstrap: str, database_url: str, ports: Mapping[str, int], run: str
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "KIRIM_BASE_URL": f"http://127.0.0.1:{ports['sandbox']}/v1",
        "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        "KIRIM_WEBHOOK_SECRETS": SECRET,
        "SANDBOX_PORT": str(ports["sandbox"]),
        "SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{ports['webhook_bridge']}/kirim-hook",
        "SANDBOX_LOG_LEVEL": "WARNING",
        "WEBHOOK_BRIDGE_PORT": str(ports["webhook_bridge"]),
        "CONSUMER_METRICS_PORT": str(ports["consumer"]),
        "PROJECTOR_METRICS_PORT": str(ports["projector"]),
        "REQUESTS_TOPIC": f"obs-requests-{run}",
        "REQUESTS_DLQ_TOPIC": f"obs-requests-dlq-{run}",
        "STATUS_TOPIC": f"obs-status-{run}",
        "CONSUMER_GROUP": f"obs-consumer-{run}",
        "PROJECTOR_GROUP": f"obs-projector-{run}",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("observability")
    run = uuid.uuid4().hex[:10]
    # A database of its own: the dispatcher would otherwise pick up other tests' ledgers.
    database = f"obs_{run}"
    await asyncio.to_thread(postgres.ensure_database, database)
    database_url = postgres.url(database)
    await migrate_url(database_url)

    ports = {job: free_port() for job in COMPOSE_TARGETS}
    env = _environment(bootstrap=kafka_bootstrap, database_url=database_url, ports=ports, run=run)
    stack = Stack(f"http://127.0.0.1:{ports['prometheus']}", ports, [])
    try:
        stack.children += [
            await spawn_service("sandbox", "sandbox", env, workdir),
            await spawn_service("webhook_bridge", "webhook_bridge", env, workdir),
            await spawn_service("projector", "projector", env, workdir),
            await spawn_service("consumer", "consumer", env, workdir),
        ]
        config = write_local_config(workdir / "prometheus", ports)
        argv = prometheus_argv(config, workdir / "tsdb", ports["prometheus"])
        stack.children.append(await spawn("prometheus", argv, env, workdir))
        deadline = time.monotonic() + STARTUP_SECONDS
        for port in ports.values():
            await _wait_for_port(port, deadline, stack)
        await _make_traffic(env, ports)
        yield stack
    finally:
        await stop_all(stack.children)


async def _make_traffic(env: Mapping[str, str], ports: Mapping[str, int]) -> None:
    """One valid and one invalid request event, one signed webhook, one sandbox API call."""
    campaign_id = uuid.uuid4()
    request = BroadcastRequested(
        campaign_id=campaign_id,
        sender=Sender(phone_number_id=defaults.DEFAULT_PHONE_NUMBER_ID),
        template=Template(
            name=defaults.DEFAULT_TEMPLATE,
            language=defaults.DEFAULT_TEMPLATE_LANGUAGE,
            components=[Component(type="body", parameters=[TextParameter(text="{{name}}")])],
        ),
        recipients=[
            Recipient(
                phone="+6281234567890",
                opted_in_at=datetime(2025, 1, 1, tzinfo=UTC),
                variables={"name": "Budi"},
            )
        ],
    )
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    try:
        topic = env["REQUESTS_TOPIC"]
        key = str(campaign_id).encode()
        await producer.send_and_wait(topic, encode_request_event(request), key=key)
        await producer.send_and_wait(topic, b"{this is not json", key=b"broken")
    finally:
        await producer.stop()

    body = status_body(
        message_id=None, wamid=f"wamid.obs{uuid.uuid4().hex}", status="sent", timestamp=1
    )
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"http://127.0.0.1:{ports['webhook_bridge']}/kirim-hook",
            content=body,
            headers=signed_headers(body, (SECRET,), event_id="wamid.obs"),
        )
        assert answer.status_code == 200, answer.text
        answer = await http.get(
            f"http://127.0.0.1:{ports['sandbox']}/v1/accounts",
            headers={"Authorization": f"Bearer {env['KIRIM_API_KEY']}"},
        )
        assert answer.status_code == 200, answer.text


async def _api(stack: Stack, path: str, **params: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{stack.prometheus_url}{path}", params=params)
    assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
    payload: dict[str, Any] = answer.json()
    assert payload["status"] == "success", payload
    return payload["data"]


async def _wait_for(stack: Stack, what: str, check: Any, seconds: float) -> Any:
    """Poll `await check()` until it returns something truthy; fail with the logs."""
    deadline = time.monotonic() + seconds
    while True:
        stack.check_alive()
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{stack.logs()}")
        await asyncio.sleep(0.5)


async def test_every_target_is_up(stack: Stack) -> None:
    async def all_up() -> dict[str, str] | None:
        data = await _api(stack, "/api/v1/targets", state="active")
        health = {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}
        return health if health and all(h == "up" for h in health.values()) else None

    health = await _wait_for(stack, "every target up", all_up, STARTUP_SECONDS)
    assert set(health) == set(COMPOSE_TARGETS)
    result = await _api(stack, "/api/v1/query", query="up")
    assert {r["metric"]["job"]: r["value"][1] for r in result["result"]} == {
        job: "1" for job in COMPOSE_TARGETS
    }


# (PromQL, the job whose target must have produced it)
KEY_SERIES: tuple[tuple[str, str], ...] = (
    ("broadcast_intake_consumer_lag", "consumer"),
    ("broadcast_intake_last_progress_age_seconds", "consumer"),
    ('broadcast_intake_events_total{type="requested", outcome="stored"} > 0', "consumer"),
    ('broadcast_intake_recipients_total{outcome="eligible"} > 0', "consumer"),
    ("broadcast_intake_dead_letters_total > 0", "consumer"),
    ("broadcast_intake_event_seconds_count > 0", "consumer"),
    ('broadcast_bridge_requests_total{outcome="produced"} > 0', "webhook_bridge"),
    ("broadcast_bridge_kafka_up == 1", "webhook_bridge"),
    ("broadcast_bridge_produce_seconds_count > 0", "webhook_bridge"),
    ('broadcast_projector_events_total{outcome="folded"} > 0', "projector"),
    ("broadcast_projector_lag_records", "projector"),
    ("broadcast_projector_last_progress_age_seconds", "projector"),
    ("broadcast_projector_batches_total > 0", "projector"),
    ('sandbox_requests_total{endpoint=~".+"} > 0', "sandbox"),
    ("process_resident_memory_bytes", "consumer"),
)

DISPATCH_SERIES: tuple[tuple[str, str], ...] = (
    ("broadcast_dispatch_stopped_senders", "consumer"),
    ("broadcast_dispatch_owned_senders", "consumer"),
    ('broadcast_dispatch_sends_total{outcome="accepted"} > 0', "consumer"),
    ("broadcast_dispatch_quota_used", "consumer"),
    ("broadcast_dispatch_quota_limit > 0", "consumer"),
    ("broadcast_dispatch_last_progress_timestamp_seconds > 0", "consumer"),
)


async def _assert_series(stack: Stack, series: tuple[tuple[str, str], ...]) -> None:
    missing = list(series)

    async def all_present() -> bool:
        for query, job in list(missing):
            result = (await _api(stack, "/api/v1/query", query=query))["result"]
            if any(r["metric"].get("job") == job for r in result):
                missing.remove((query, job))
        return not missing

    try:
        await _wait_for(stack, "the key series", all_present, SERIES_SECONDS)
    except AssertionError as error:
        raise AssertionError(f"series still missing: {missing}\n{error}") from None


async def test_key_series_exist(stack: Stack) -> None:
    await _assert_series(stack, KEY_SERIES)


async def test_dispatcher_series_exist(stack: Stack) -> None:
    """The one valid request is sent through the sandbox: the dispatcher's series appear."""
    await _assert_series(stack, DISPATCH_SERIES)


async def test_alert_rules_load_evaluate_and_fire(stack: Stack) -> None:
    expected_groups = re.findall(r"^  - name: (\S+)$", RULES_PATH.read_text(), re.MULTILINE)

    async def evaluated() -> list[dict[str, Any]] | None:
        groups: list[dict[str, Any]] = (await _api(stack, "/api/v1/rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if not rules or any(r["lastEvaluation"].startswith("0001-") for r in rules):
            return None
        return groups

    groups = await _wait_for(stack, "a rule evaluation", evaluated, STARTUP_SECONDS)
    assert sorted(g["name"] for g in groups) == sorted(expected_groups)
    broken = {
        r["name"]: r.get("lastError") for g in groups for r in g["rules"] if r["health"] != "ok"
    }
    assert not broken, broken

    # The invalid event above went to the dead-letter topic: that alert fires at once.
    async def dead_letter_alert() -> list[dict[str, Any]]:
        alerts = (await _api(stack, "/api/v1/alerts"))["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "BroadcastDeadLettersGrowing" and a["state"] == "firing"
        ]

    firing = await _wait_for(stack, "BroadcastDeadLettersGrowing", dead_letter_alert, 30)
    assert firing[0]["labels"]["severity"] == "warning"
    assert firing[0]["labels"]["reason"]


async def test_dashboard_queries_run(stack: Stack) -> None:
    """Every dashboard query parses and runs against the live Prometheus."""
    for query in dashboard.queries(dashboard.load()):
        await _api(stack, "/api/v1/query", query=dashboard.runnable(query))
