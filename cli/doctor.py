"""`broadcast doctor`: is everything this service needs reachable and configured?

One line per check, `ok`, `warn`, `fail` or `skip` (a check that depends on a
failed one):

- `kafka`: the brokers answer a metadata request within the timeout;
- `topics`: the requests topic, its dead-letter topic and the status topic exist;
- `postgres`: the database accepts a connection and its migrations are exactly
  this code's (`schema_migrations` against `runtime/sql/migrations`);
- `api-key`: `GET /v1/me` with `KIRIM_API_KEY` answers 200;
- `webhook-secrets`: every `KIRIM_WEBHOOK_SECRETS` entry is `whsec_` and at
  least 16 more characters, without spaces (a warning for the sandbox default);
- `clock`: the API's `Date` header against the local clock: warn over 5 s,
  fail over 60 s (webhook signatures tolerate 300 s; quota windows drift).

Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import asyncpg
import httpx
from aiokafka.client import AIOKafkaClient

from cli import errors
from cli.database import Q, connect, describe
from cli.errors import Unavailable
from cli.output import Console
from cli.producer import KAFKA_ERRORS, kafka_reason
from cli.settings import CliSettings
from runtime import defaults
from runtime.migrate import Migration, load_migrations

Outcome = Literal["ok", "warn", "fail", "skip"]
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_SECRET_CHARS: Final = 16
SKEW_WARN_SECONDS: Final = 5.0
SKEW_FAIL_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    outcome: Outcome
    detail: str


# --- pure checks ------------------------------------------------------------------------


def check_secrets(secrets: Sequence[str]) -> Check:
    if not secrets:
        return Check("webhook-secrets", "fail", "KIRIM_WEBHOOK_SECRETS is empty")
    for position, secret in enumerate(secrets, start=1):
        body = secret.removeprefix(SECRET_PREFIX)
        if not secret.startswith(SECRET_PREFIX):
            return Check(
                "webhook-secrets", "fail", f"secret #{position} does not start with {SECRET_PREFIX}"
            )
        if len(body) < MIN_SECRET_CHARS or any(c.isspace() for c in body):
            return Check(
                "webhook-secrets",
                "fail",
                f"secret #{position} needs at least {MIN_SECRET_CHARS} characters after "
                f"{SECRET_PREFIX} and no spaces",
            )
    count = f"{len(secrets)} secret(s), well-formed"
    if defaults.KIRIM_WEBHOOK_SECRETS in secrets:
        return Check("webhook-secrets", "warn", f"{count}; one is the sandbox's built-in default")
    return Check("webhook-secrets", "ok", count)


def check_migrations(applied: Sequence[tuple[int, str, str]], known: Sequence[Migration]) -> Check:
    """`applied`: (version, name, checksum) rows of `schema_migrations`."""
    recorded = {version: (name, checksum) for version, name, checksum in applied}
    files = {m.version: m for m in known}
    pending = [f"{m.version:04d}_{m.name}" for v, m in sorted(files.items()) if v not in recorded]
    unknown = sorted(set(recorded) - set(files))
    edited = [
        f"{v:04d}_{files[v].name}"
        for v, (_, checksum) in sorted(recorded.items())
        if v in files and files[v].checksum != checksum
    ]
    if unknown:
        return Check("postgres", "fail", f"the database has migrations this code lacks: {unknown}")
    if edited:
        return Check("postgres", "fail", f"applied migrations differ from the files: {edited}")
    if pending:
        return Check(
            "postgres",
            "fail",
            f"migrations pending: {', '.join(pending)} (every service applies them at start)",
        )
    return Check("postgres", "ok", f"migrations current ({len(files)} applied)")


def check_topics(partitions: Mapping[str, int], required: Sequence[str]) -> Check:
    missing = [topic for topic in required if topic not in partitions]
    if missing:
        return Check(
            "topics",
            "fail",
            f"missing: {', '.join(missing)} (the services create them at start)",
        )
    found = ", ".join(f"{topic} ({partitions[topic]} partitions)" for topic in required)
    return Check("topics", "ok", found)


def check_skew(skew_seconds: float) -> Check:
    """`skew_seconds`: the API's clock minus ours (positive: ours is behind)."""
    size = abs(skew_seconds)
    side = "behind" if skew_seconds > 0 else "ahead of"
    text = f"local clock {size:.1f} s {side} the API's"
    if size > SKEW_FAIL_SECONDS:
        return Check("clock", "fail", f"{text} (fail over {SKEW_FAIL_SECONDS:.0f} s)")
    if size > SKEW_WARN_SECONDS:
        return Check("clock", "warn", f"{text} (warn over {SKEW_WARN_SECONDS:.0f} s)")
    return Check("clock", "ok", text)


# --- the checks' I/O ----------------------------------------------------------------------


async def _kafka(settings: CliSettings) -> list[Check]:
    client = AIOKafkaClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="broadcast-doctor",
        request_timeout_ms=max(1_000, int(settings.timeout_seconds * 1000)),
    )
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
    except KAFKA_ERRORS as error:
        return [
            Check("kafka", "fail", f"{settings.bootstrap_servers}: {kafka_reason(error)}"),
            Check("topics", "skip", "Kafka unreachable"),
        ]
    finally:
        await client.close()
    elapsed_ms = (time.monotonic() - started) * 1000
    partitions = {t: len(metadata.partitions_for_topic(t) or ()) for t in metadata.topics()}
    required = [settings.requests_topic, settings.requests_dlq_topic, settings.status_topic]
    return [
        Check(
            "kafka",
            "ok",
            f"{settings.bootstrap_servers}: metadata in {elapsed_ms:.0f} ms, "
            f"{len(metadata.brokers())} broker(s)",
        ),
        check_topics(partitions, required),
    ]


async def _postgres(settings: CliSettings) -> Check:
    try:
        async with connect(settings) as connection:
            rows = await connection.fetch(Q["applied_migrations"])
    except Unavailable as error:
        return Check("postgres", "fail", error.message)
    except asyncpg.UndefinedTableError:
        return Check("postgres", "fail", f"{settings.database_label}: no migrations applied")
    applied = [(r["version"], r["name"], r["checksum"]) for r in rows]
    check = check_migrations(applied, load_migrations())
    return Check(check.name, check.outcome, f"{settings.database_label}: {check.detail}")


async def _api(settings: CliSettings) -> list[Check]:
    url = settings.kirim_base_url.rstrip("/") + "/me"
    headers = {"Authorization": f"Bearer {settings.kirim_api_key}", "Accept": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
            before = time.time()
            response = await client.get(url, headers=headers)
            after = time.time()
    except httpx.HTTPError as error:
        return [
            Check("api-key", "fail", f"{settings.kirim_base_url}: {describe(error)}"),
            Check("clock", "skip", "the API did not answer"),
        ]
    checks = [_key_check(settings, response)]
    try:
        server = parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        checks.append(Check("clock", "skip", "the API's answer has no Date header"))
    else:
        checks.append(check_skew(server.timestamp() - (before + after) / 2))
    return checks


def _key_check(settings: CliSettings, response: httpx.Response) -> Check:
    if response.status_code == 200:
        try:
            data = response.json()["data"]
            limits = data.get("rate_limits") or {}
            writes = limits.get("write_per_minute", "?")
            extra = f" (plan {data.get('plan', '?')}, {writes} writes/min)"
        except (ValueError, KeyError, TypeError, AttributeError):
            extra = ""
        return Check("api-key", "ok", f"accepted by {settings.kirim_base_url}{extra}")
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = f"HTTP {response.status_code}"
    return Check(
        "api-key", "fail", f"{settings.kirim_base_url} answered {response.status_code} ({code})"
    )


async def doctor(settings: CliSettings) -> list[Check]:
    """Every check, in a fixed order; the network ones run concurrently."""
    kafka, postgres, api = await asyncio.gather(
        _kafka(settings), _postgres(settings), _api(settings)
    )
    [key, clock] = api
    return [*kafka, postgres, key, check_secrets(settings.webhook_secrets), clock]


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "doctor",
        parents=[common],
        help="check Kafka, topics, PostgreSQL, the API key, webhook secrets and the clock",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=_handle)


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    checks = await doctor(settings)
    width = max(len(c.name) for c in checks)
    for check in checks:
        console.line(f"{check.outcome:<5} {check.name:<{width}}  {check.detail}")
    counts = {o: sum(c.outcome == o for c in checks) for o in ("ok", "warn", "fail", "skip")}
    healthy = counts["fail"] == 0
    console.line(
        f"doctor: {counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failed, "
        f"{counts['skip']} skipped at {datetime.now().astimezone():%Y-%m-%d %H:%M:%S%z}"
    )
    console.emit(
        {
            "healthy": healthy,
            "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in checks],
        }
    )
    return errors.OK if healthy else errors.FAILED
