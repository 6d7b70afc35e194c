"""One soak run: its own Kafka and PostgreSQL, the sandbox, every service, chaos, a verdict."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from bench.private_stack import private_stack
from bench.soak import chaos, traffic, verdict
from bench.soak.processes import ROOT, Infrastructure, ServiceProcess
from devstack.procs import free_port
from runtime import defaults
from runtime.db import create_pool
from runtime.topics import REPLAYABLE

SECRET = "whsec_soak_" + "s" * 24
REQUESTS, DLQ, STATUS = "broadcast.requests", "broadcast.requests.dlq", "kirim.message-status"


@dataclass(frozen=True, slots=True)
class Plan:
    minutes: float
    recipients: int
    senders: int
    chunk_size: int
    seed: int
    between_kills: tuple[float, float]
    down: tuple[float, float]
    drain_seconds: float
    state_dir: Path

    @property
    def write_per_minute(self) -> int:
        """Paced so that sending lasts about four fifths of the chaos."""
        return max(600, int(self.recipients / (self.minutes * 0.8)))


@dataclass
class Outcome:
    plan: Plan
    checks: list[verdict.Check] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    tallies: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    published: traffic.Published = field(default_factory=traffic.Published)
    forgeries: traffic.Forgeries = field(default_factory=traffic.Forgeries)
    chaos_seconds: float = 0.0
    drain_seconds: float = 0.0
    terminal: bool = False
    accepted_messages: int = 0

    @property
    def holds(self) -> bool:
        return bool(self.checks) and all(check.holds for check in self.checks) and self.terminal


def sandbox_config(plan: Plan, senders: list[str]) -> dict[str, Any]:
    return {
        "accounts": {s: {"messaging_tier": 100_000} for s in senders},
        "rate_limits": {"write_per_minute": plan.write_per_minute, "read_per_minute": 60_000},
        "outcomes": {
            "seed": plan.seed,
            # Accepted, then failed: given up and suppressed, or sent again.
            "mix": {"recipient_not_on_whatsapp": 0.01, "whatsapp_upstream_error": 0.005},
            "delays": {"sent": 0.2, "delivered": 0.5, "read": 1.0, "failed": 0.5},
        },
        "faults": {
            "server_errors": {"probability": 0.05},
            "late_answers": {"probability": 0.02, "delay_seconds": 3.0},
            # Oversized answers are kept for key replays: small enough for many of them.
            "anomalies": {"probability": 0.01, "oversized_bytes": 131_072},
        },
    }


def _base_env(infra: Infrastructure, database_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka.bootstrap_servers,
        "DATABASE_URL": database_url,
        "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        "KIRIM_WEBHOOK_SECRETS": SECRET,
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def services(
    infra: Infrastructure, database_url: str, sandbox_url: str, log_dir: Path, bridge_port: int
) -> list[ServiceProcess]:
    base = _base_env(infra, database_url)
    consumer_env = {
        **base,
        "KIRIM_BASE_URL": sandbox_url + "/v1",
        "KIRIM_TIMEOUT_SECONDS": "1.5",
        "DISPATCH_RETRY_BASE_SECONDS": "0.2",
        "DISPATCH_RETRY_MAX_SECONDS": "5",
        "DISPATCH_OWNERSHIP_INTERVAL_SECONDS": "0.5",
        "DISPATCH_RECONCILE_INTERVAL_SECONDS": "1",
        "DISPATCH_FAILURE_RECHECK_SECONDS": "2",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "INTAKE_SESSION_TIMEOUT_MS": "6000",
    }
    made = []
    for n in (1, 2):
        port = free_port()
        env = {**consumer_env, "CONSUMER_METRICS_PORT": str(port)}
        made.append(ServiceProcess(f"consumer-{n}", "consumer", env, log_dir, port))
    made.append(
        ServiceProcess(
            "webhook_bridge",
            "webhook_bridge",
            {**base, "WEBHOOK_BRIDGE_PORT": str(bridge_port)},
            log_dir,
            bridge_port,
        )
    )
    projector_port = free_port()
    made.append(
        ServiceProcess(
            "projector",
            "projector",
            {**base, "PROJECTOR_METRICS_PORT": str(projector_port)},
            log_dir,
            projector_port,
        )
    )
    return made


@contextlib.asynccontextmanager
async def infrastructure(plan: Plan) -> AsyncIterator[tuple[Infrastructure, str]]:
    topics = {REQUESTS: 6, DLQ: 1, STATUS: 3}
    async with private_stack(plan.state_dir, topics, {STATUS: REPLAYABLE}) as stack:
        yield Infrastructure(stack.kafka, stack.postgres), stack.database_url


async def _sandbox(
    plan: Plan, senders: list[str], bridge_port: int, log_dir: Path
) -> ServiceProcess:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SANDBOX_PORT": str(port),
        "SANDBOX_CONFIG": msgspec.json.encode(sandbox_config(plan, senders)).decode(),
        "SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{bridge_port}{defaults.WEBHOOK_PATH}",
        "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        "KIRIM_WEBHOOK_SECRETS": SECRET,
        # Webhook retries (10 s, 30 s, 2 min...) ten times faster, lifecycles too.
        "SANDBOX_TIME_SCALE": "10",
        "SANDBOX_LOG_LEVEL": "WARNING",
    }
    sandbox = ServiceProcess("sandbox", "sandbox", env, log_dir, port)
    await sandbox.start()
    async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(30):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}/v1/health")).status_code == 200:
                    return sandbox
            await asyncio.sleep(0.2)


async def _terminal(pool: asyncpg.Pool, campaigns: list[traffic.Campaign]) -> bool:
    ids = [c.campaign_id for c in campaigns]
    with contextlib.suppress(*_DB_DOWN):
        rows = await pool.fetch(
            "SELECT terminal, chunks_received, chunk_count FROM campaign_overview"
            " WHERE campaign_id = ANY($1::uuid[])",
            ids,
        )
        return len(rows) == len(ids) and all(
            r["terminal"] and r["chunks_received"] == r["chunk_count"] for r in rows
        )
    return False


_DB_DOWN: tuple[type[BaseException], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def soak(plan: Plan) -> Outcome:
    rng = random.Random(plan.seed)
    outcome = Outcome(plan)
    log_dir = plan.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    senders = [str(106540352242922 + n) for n in range(plan.senders)]
    campaigns = traffic.design_campaigns(senders, plan.recipients, rng)
    events = [e for c in campaigns for e in traffic.chunk_events(c, plan.chunk_size)]
    rng.shuffle(events)
    malformed_count = max(len(traffic.MALFORMED_KINDS), round(len(events) / 99))
    malformed = [
        (kind, traffic.malformed_event(kind, n))
        for n in range(malformed_count)
        for kind in [traffic.MALFORMED_KINDS[n % len(traffic.MALFORMED_KINDS)]]
    ]
    async with infrastructure(plan) as (infra, database_url):
        bridge_port = free_port()
        sandbox = await _sandbox(plan, senders, bridge_port, log_dir)
        parts = services(infra, database_url, sandbox_base(sandbox), log_dir, bridge_port)
        pool = await create_pool(database_url, max_size=4)
        try:
            for part in parts:
                await part.start()
            for part in parts:
                await part.ready(within=90)
            await _run_chaos(
                plan, rng, infra, parts, campaigns, events, malformed, pool, outcome, bridge_port
            )
            await _judge(plan, infra, parts, sandbox, campaigns, pool, database_url, outcome)
        finally:
            for part in parts:
                await part.stop()
            await sandbox.stop()
            await pool.close()
            for part in parts:
                outcome.tallies[part.name] = (
                    part.tally.kills,
                    part.tally.unexpected_exits,
                    part.tally.down_seconds,
                )
            for name, tally in (("kafka", infra.kafka_tally), ("postgresql", infra.postgres_tally)):
                outcome.tallies[name] = (tally.kills, tally.unexpected_exits, tally.down_seconds)
    return outcome


def sandbox_base(sandbox: ServiceProcess) -> str:
    return f"http://127.0.0.1:{sandbox.port}"


async def _run_chaos(
    plan: Plan,
    rng: random.Random,
    infra: Infrastructure,
    parts: list[ServiceProcess],
    campaigns: list[traffic.Campaign],
    events: list[tuple[bytes, bytes]],
    malformed: list[tuple[str, tuple[bytes, bytes]]],
    pool: asyncpg.Pool,
    outcome: Outcome,
    bridge_port: int,
) -> None:
    stop_chaos, stop_forging, stop_supervising = asyncio.Event(), asyncio.Event(), asyncio.Event()
    hook = f"http://127.0.0.1:{bridge_port}{defaults.WEBHOOK_PATH}"
    started = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(chaos.supervise(parts, stop_supervising))
        publishing = tasks.create_task(
            traffic.publish_all(
                infra.kafka.bootstrap_servers,
                REQUESTS,
                events,
                malformed,
                plan.minutes * 60 / 3,
                outcome.published,
            )
        )
        tasks.create_task(
            traffic.forge_webhooks(hook, [SECRET], stop_forging, outcome.forgeries, 0.5)
        )
        killing = tasks.create_task(
            chaos.kill_at_random(
                chaos.targets(parts, infra), stop_chaos, rng, plan.between_kills, plan.down
            )
        )
        await asyncio.sleep(plan.minutes * 60)
        stop_chaos.set()
        await killing
        outcome.chaos_seconds = time.monotonic() - started
        await publishing
        drained = time.monotonic()
        print("soak: chaos over, draining", file=sys.stderr, flush=True)
        deadline = drained + plan.drain_seconds
        while time.monotonic() < deadline and not await _terminal(pool, campaigns):
            await asyncio.sleep(1.0)
        outcome.terminal = await _terminal(pool, campaigns)
        outcome.drain_seconds = time.monotonic() - drained
        stop_forging.set()
        stop_supervising.set()


async def _judge(
    plan: Plan,
    infra: Infrastructure,
    parts: list[ServiceProcess],
    sandbox: ServiceProcess,
    campaigns: list[traffic.Campaign],
    pool: asyncpg.Pool,
    database_url: str,
    outcome: Outcome,
) -> None:
    control = sandbox_base(sandbox) + "/_sandbox"
    report = await _audit(control)
    # Webhooks still being retried (the bridge was down) must land before comparing.
    deadline = time.monotonic() + 120
    while verdict.webhooks_pending(report) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        report = await _audit(control)
    messages = await verdict.sandbox_messages(control)
    outcome.accepted_messages = len(messages)
    totals = report["totals"]
    outcome.faults = {
        "5xx answers": totals["server_errors_injected"],
        "late answers": totals["late_answers"],
        **{f"anomaly: {k}": n for k, n in report["anomalies"]["by_kind"].items() if n},
        "asynchronous failures": sum(totals["failed"].values()),
        "malformed request events": sum(outcome.published.malformed.values()),
        "forged webhooks": outcome.forgeries.sent,
    }
    outcome.checks.append(verdict.duplicates(messages))
    # The projector folds what the bridge stored; give it a moment to catch up.
    ids = [c.campaign_id for c in campaigns]
    agreement = await verdict.agrees_with_api(pool, ids, messages)
    deadline = time.monotonic() + 60
    while not agreement.holds and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        agreement = await verdict.agrees_with_api(pool, ids, messages)
    outcome.checks.append(agreement)
    lost, outcome.outcomes = await verdict.lost(pool, campaigns)
    outcome.checks.append(lost)
    dlq = await verdict.topic_records(infra.kafka.bootstrap_servers, DLQ, 1)
    outcome.checks.append(verdict.dead_letters(dlq, outcome.published))
    status = await verdict.topic_records(infra.kafka.bootstrap_servers, STATUS, 3)
    outcome.checks.append(verdict.forged(status, outcome.forgeries))
    before = await verdict.projection_dump(pool, ids)
    rebuilt = await _rebuild(infra, database_url, plan.state_dir / "logs")
    after = await verdict.projection_dump(pool, ids)
    check = verdict.same_projection(before, after)
    if not rebuilt:
        check = verdict.Check(check.name, False, "the rebuild failed: see logs/rebuild.log")
    outcome.checks.append(check)


async def _audit(control: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        body = (await http.get(control + "/audit")).json()
    report: dict[str, Any] = body.get("data", body)
    return report


async def _rebuild(infra: Infrastructure, database_url: str, log_dir: Path) -> bool:
    env = {**_base_env(infra, database_url)}
    with (log_dir / "rebuild.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "projector",
            "rebuild",
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        return await process.wait() == 0


def new_state_dir(root: Path | None) -> Path:
    base = root or ROOT / ".run" / "soak"
    path = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True, exist_ok=True)
    return path
