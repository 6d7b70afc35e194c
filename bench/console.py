"""`python -m bench.console [--recipients N] [--requests N] [--history N] [--exports N]`

The operator console's pages with a campaign of 1,000,000 recipients in the database:
each page's latency over sequential requests (p50, p95, max) against the acceptance
goal of 200 ms at p95, beside the first full count of that campaign, its failures
export and the first event of its live stream.

A private Kafka and PostgreSQL (bench/private_stack.py, never the dev stack) hold a
database seeded in SQL (bench/console_seed.sql): the big campaign mid-flight on one of
20 senders, `--history` finished campaigns of 10,000 recipients beside it, the statuses
of their messages, the rolling quota window's contacts, then VACUUM ANALYZE (the state
autovacuum leaves); dead letters go to the dead-letter topic. The console runs as
deployed, `python -m console` in its own process; its Kirim API is a sandbox in this
process, read at most once a minute. The bench signs in, views the campaign page
(which starts its first count) until the count is shown, views the list (which starts
the counts of its page of campaigns) and the senders (their quota gauges) until
nothing says "counting", warms up for `--warmup` rounds, then requests the pages in
turn, one request at a time over one keep-alive connection, while the console
recounts what is watched in the background.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.harness import ROOT, table
from bench.private_stack import private_stack
from bench.soak.processes import ServiceProcess
from console.access import SESSION_COOKIE
from devstack.procs import free_port
from runtime import defaults
from runtime.logs import configure_logging
from runtime.sqlfiles import load_queries
from sandbox.config import parse_config
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from schemas.deadletter import DeadLetter
from schemas.requests import BroadcastRequested, Recipient, Sender, encode_request_event
from schemas.template import Template

SEED = load_queries(Path(__file__).with_name("console_seed.sql"))
SENDERS = [str(106540352250000 + n) for n in range(20)]
CHUNK = 5_000
HISTORY_SIZE = 10_000
PHONE_SPACE = 1_500_000  # the history's audiences: windows of it, overlapping the big one's
TIER = 100_000
DEAD_LETTERS = 30
GOAL_MS = 200.0
TOKEN = "bench-console-operator-" + uuid.uuid4().hex
REQUESTS_TOPIC = "broadcast.requests"
DLQ_TOPIC = "broadcast.requests.dlq"
COUNTING = 'title="counting"'
_TOOK = re.compile(r'id="counted">counted [^<]* in ([0-9.]+)s<')


def phone(n: int) -> str:
    return f"+62812{n:08d}"


async def seed(url: str, campaign_id: uuid.UUID, recipients: int, history: int) -> asyncpg.Record:
    """The whole database in SQL, indexes rebuilt after the rows; returns its sizes."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(SEED["set_indexes_aside"])
        await connection.execute(SEED["drop_indexes"])
        await connection.execute(SEED["senders"], TIER)
        await connection.execute(SEED["big_campaign"], campaign_id, recipients, CHUNK)
        await connection.execute(SEED["big_chunks"], campaign_id, recipients, CHUNK)
        await connection.execute(SEED["big_ledger"], campaign_id, recipients, CHUNK)
        await connection.execute(SEED["history_campaigns"], history)
        await connection.execute(SEED["history_chunks"], history, HISTORY_SIZE)
        await connection.execute(SEED["history_ledger"], history, HISTORY_SIZE, PHONE_SPACE)
        await connection.execute(SEED["statuses"])
        await connection.execute(SEED["contacts"])
        await connection.execute(SEED["restore_indexes"])
        await connection.execute(SEED["actions"], campaign_id)
        await connection.execute("VACUUM ANALYZE")
        sizes = await connection.fetchrow(SEED["sizes"])
    finally:
        await connection.close()
    assert sizes is not None
    return sizes


async def publish_dead_letters(bootstrap: str, count: int) -> None:
    """Rejected request chunks as intake dead-letters them: original bytes, why in headers."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for n in range(count):
            event = BroadcastRequested(
                campaign_id=uuid.uuid4(),
                sender=Sender(phone_number_id=SENDERS[n % len(SENDERS)]),
                template=Template(name="promo_flash_sale", language="id_ID"),
                recipients=[Recipient(phone=phone(n * 100 + r)) for r in range(40)],
            )
            value = encode_request_event(event)
            reason, detail = "invalid_sender", f"no connected sender {SENDERS[n % 20]}"
            if n % 3 == 1:
                value, reason, detail = value[:-37], "invalid_json", "truncated at byte 1"
            elif n % 3 == 2:
                reason = "schema_violation"
                detail = "Expected `str`, got `int` - at `$.recipients[3].phone`"
            letter = DeadLetter(
                reason=reason,
                detail=detail,
                source_topic=REQUESTS_TOPIC,
                source_partition=n % 6,
                source_offset=1_000 + n,
                failed_at=datetime.now(UTC) - timedelta(minutes=count - n),
                service="consumer.intake",
            )
            await producer.send_and_wait(
                DLQ_TOPIC, value, key=str(event.campaign_id).encode(), headers=letter.to_headers()
            )
    finally:
        await producer.stop()


def sandbox_settings() -> SandboxSettings:
    accounts = {
        number: {
            "messaging_tier": "unlimited" if n % 2 == 0 else TIER,
            "quality_rating": "RED" if n == 19 else ("YELLOW" if n % 7 == 3 else "GREEN"),
            "status": "degraded" if n == 19 else "connected",
        }
        for n, number in enumerate(SENDERS)
    }
    config = parse_config({"accounts": accounts})
    return SandboxSettings(host="127.0.0.1", port=0, log_level="WARNING", config=config)


@dataclass(frozen=True, slots=True)
class Page:
    name: str
    path: Callable[[int], str]  # request number -> path
    expect: Callable[[str], bool]  # the body shows what the page is for


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def ms(self, q: float) -> float:
        """Nearest-rank quantile, in milliseconds."""
        ordered = sorted(self.seconds)
        return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def kib(self) -> float:
        return sum(self.sizes) / len(self.sizes) / 1024


def pages(campaign_id: uuid.UUID, recipients: int, requests: int) -> list[Page]:
    link = f'href="/campaigns/{campaign_id}"'
    return [
        Page("/campaigns (list)", lambda i: "/campaigns", lambda body: COUNTING not in body),
        Page(
            "/campaigns/{id} (the big one)",
            lambda i: f"/campaigns/{campaign_id}",
            lambda body: COUNTING not in body and 'id="quota"' in body,
        ),
        Page(
            "/recipients?phone= (one phone, every campaign)",
            # Phones of the big campaign, spread over its range.
            lambda i: (
                "/recipients?phone="
                + quote(phone((2 * (i % requests) + 1) * recipients // (2 * requests)))
            ),
            lambda body: link in body,
        ),
        Page("/dead-letters", lambda i: "/dead-letters", lambda body: "data-offset=" in body),
        Page(
            "/senders",
            lambda i: "/senders",
            lambda body: COUNTING not in body and f'data-sender="{SENDERS[0]}"' in body,
        ),
    ]


async def get(
    http: httpx.AsyncClient, path: str, seconds_allowed: float = 60.0
) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await http.get(path, timeout=seconds_allowed)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return seconds, response


async def until_shown(http: httpx.AsyncClient, path: str) -> tuple[float, httpx.Response]:
    """View `path` until it shows no campaign as still counting; seconds it took."""
    started = time.monotonic()
    while True:
        _, response = await get(http, path)
        if COUNTING not in response.text:
            return time.monotonic() - started, response
        await asyncio.sleep(0.25)


@dataclass
class Figures:
    first_count: float = math.nan  # first view -> the page shows the count
    count_took: float = math.nan  # the count itself, as the console reports it
    list_counted: float = math.nan
    pages: dict[str, Timing] = field(default_factory=dict)
    export: Timing = field(default_factory=Timing)
    export_rows: int = 0
    live: Timing = field(default_factory=Timing)


async def measure(port: int, campaign_id: uuid.UUID, args: argparse.Namespace) -> Figures:
    figures = Figures()
    big = f"/campaigns/{campaign_id}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=60.0, headers={"accept": "text/html"}
    ) as http:
        signed = await http.post("/login", data={"token": TOKEN, "next": "/campaigns"})
        if signed.status_code != 303 or SESSION_COOKIE not in http.cookies:
            raise RuntimeError(f"sign-in failed: {signed.status_code} {signed.text[:200]}")
        async with asyncio.timeout(args.timeout):
            figures.first_count, shown = await until_shown(http, big)
            took = _TOOK.search(shown.text)
            figures.count_took = float(took.group(1)) if took else math.nan
            figures.list_counted, _ = await until_shown(http, "/campaigns")
            await until_shown(http, "/senders")
        plan = pages(campaign_id, args.recipients, args.requests)
        figures.pages = {p.name: Timing() for p in plan}
        for round_number in range(-args.warmup, args.requests):
            for p in plan:
                seconds, response = await get(http, p.path(round_number))
                if not p.expect(response.text):
                    raise RuntimeError(f"{p.name}: the page does not show what it is for")
                if round_number >= 0:
                    figures.pages[p.name].seconds.append(seconds)
                    figures.pages[p.name].sizes.append(len(response.content))
        for _ in range(args.exports):
            seconds, response = await get(http, big + "/failures.csv", seconds_allowed=600.0)
            figures.export.seconds.append(seconds)
            figures.export.sizes.append(len(response.content))
            figures.export_rows = response.text.count("\n") - 1
        for _ in range(min(args.requests, 20)):
            figures.live.seconds.append(await first_event(http, big + "/live"))
            figures.live.sizes.append(0)
    return figures


async def first_event(http: httpx.AsyncClient, path: str) -> float:
    """Seconds from opening the live stream to the end of its first progress event."""
    started = time.perf_counter()
    in_event = False
    async with http.stream("GET", path, headers={"accept": "text/event-stream"}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: progress"):
                in_event = True
            elif in_event and not line:
                return time.perf_counter() - started
    raise RuntimeError(f"{path} ended before its first event")


def console_env(database_url: str, bootstrap: str, api_url: str, port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REQUESTS_TOPIC": REQUESTS_TOPIC,
        "REQUESTS_DLQ_TOPIC": DLQ_TOPIC,
        "KIRIM_BASE_URL": api_url,
        "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
        "CONSOLE_TOKEN": TOKEN,
        "CONSOLE_HOST": "127.0.0.1",
        "CONSOLE_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }


def report(args: argparse.Namespace, sizes: asyncpg.Record, seed_seconds: float, f: Figures) -> str:
    history_rows = args.history * HISTORY_SIZE
    rows = []
    for name, timing in f.pages.items():
        p95 = timing.ms(0.95)
        rows.append(
            (
                name,
                len(timing.seconds),
                f"{timing.ms(0.5):.1f}",
                f"{p95:.1f}",
                f"{timing.ms(1.0):.1f}",
                f"{timing.kib:.1f}",
                f"< {GOAL_MS:.0f} ms p95",
                "PASS" if p95 < GOAL_MS else "MISS",
            )
        )
    text = table(
        f"Console pages, a {args.recipients:,}-recipient campaign beside {history_rows:,} rows "
        f"of history (its first count: {f.first_count:.1f} s)",
        ["page", "requests", "p50 ms", "p95 ms", "max ms", "KiB", "goal", "result"],
        rows,
    )
    other = [
        (
            f"/campaigns/{{id}}/failures.csv ({f.export_rows:,} rows)",
            len(f.export.seconds),
            f"{f.export.ms(0.5):.1f}",
            f"{f.export.ms(1.0):.1f}",
            f"{f.export.kib:.1f}",
        ),
        (
            "/campaigns/{id}/live, first progress event",
            len(f.live.seconds),
            f"{f.live.ms(0.5):.1f}",
            f"{f.live.ms(1.0):.1f}",
            "-",
        ),
    ]
    text += "\n" + table(
        "The big campaign's export and live stream (no latency goal)",
        ["request", "requests", "p50 ms", "max ms", "KiB"],
        other,
    )
    facts = [
        ("recipients of the big campaign (mid-flight, 1 of 20 senders)", f"{args.recipients:,}"),
        ("finished campaigns beside it", f"{args.history:,} x {HISTORY_SIZE:,}"),
        (
            "ledger rows / message_statuses rows",
            f"{sizes['ledger_rows']:,} / {sizes['statuses']:,}",
        ),
        ("quota_contacts rows", f"{sizes['contacts']:,}"),
        ("ledger size, table and indexes", f"{sizes['ledger_bytes'] / 2**20:,.0f} MiB"),
        ("dead letters on the topic", f"{DEAD_LETTERS}"),
        ("seed seconds (SQL, indexes, VACUUM ANALYZE)", f"{seed_seconds:.0f}"),
        ("first view of the big campaign -> its count shown, s", f"{f.first_count:.2f}"),
        ("... the count itself, as the page reports it, s", f"{f.count_took:.2f}"),
        ("first view of the list -> its page of campaigns counted, s", f"{f.list_counted:.2f}"),
        ("warm-up rounds before measuring (not counted)", f"{args.warmup}"),
        ("console", "python -m console, a process of its own; Kirim API: sandbox"),
    ]
    return text + "\n" + table("Seed and first count", ["", "value"], facts)


async def main(args: argparse.Namespace) -> int:
    state = ROOT / ".run" / "console" / time.strftime("%Y%m%d-%H%M%S")
    log_dir = state / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    campaign_id = uuid.uuid4()
    async with private_stack(state, {REQUESTS_TOPIC: 6, DLQ_TOPIC: 1}) as stack:
        print(f"console: seeding {args.recipients:,} + history", file=sys.stderr, flush=True)
        started = time.monotonic()
        sizes = await seed(stack.database_url, campaign_id, args.recipients, args.history)
        await publish_dead_letters(stack.kafka.bootstrap_servers, DEAD_LETTERS)
        seed_seconds = time.monotonic() - started
        async with running_sandbox(sandbox_settings()) as api:
            port = free_port()
            env = console_env(stack.database_url, stack.kafka.bootstrap_servers, api.api_url, port)
            console = ServiceProcess("console", "console", env, log_dir, port)
            await console.start()
            try:
                await console.ready(within=60)
                print("console: measuring", file=sys.stderr, flush=True)
                figures = await measure(port, campaign_id, args)
            finally:
                await console.stop()
    print(report(args, sizes, seed_seconds, figures))
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument(
        "--recipients", type=int, default=1_000_000, help="the big campaign's recipients"
    )
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per page")
    parser.add_argument(
        "--history", type=int, default=200, help="finished campaigns of 10,000 beside it"
    )
    parser.add_argument("--warmup", type=int, default=5, help="rounds of every page, not counted")
    parser.add_argument("--exports", type=int, default=3, help="failures.csv downloads")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the first counts"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    configure_logging("ERROR")
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
