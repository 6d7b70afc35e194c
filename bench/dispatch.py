"""Dispatcher benchmarks, each figure beside the naive baseline's in the same run.

    .venv/bin/python -m bench.dispatch [--quick]

(a) rate-limit efficiency at a 6,000/min write bucket: sends achieved over sends the
    bucket allowed (its capacity plus its refill over the run), and the share of 429s;
(b) unthrottled sends/s and CPU-seconds per 1,000 sends at 20 ms API latency with 50
    in flight;
(c) restart after kill -9: seconds from the restart to the first send of a recipient
    not yet sent, and the requests spent on recipients already sent before it;
(d) the HTTP client alone: sends/s on one core for httpx's default transport, httpx
    with the aiohttp transport, and the aiohttp client the dispatcher uses.
The sandbox runs as a subprocess on CPU 0; the client side runs here, on CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import httpx_aiohttp

from bench.baseline import run_baseline
from bench.harness import (
    ROOT,
    SandboxProcess,
    audience,
    bench_database,
    cpu_seconds,
    dev_stack,
    sandbox,
    seed_ledger,
    table,
)
from consumer.dispatch.dispatcher import Dispatcher
from consumer.dispatch.request import idempotency_key, template_body
from consumer.dispatch.settings import DispatchSettings
from consumer.kirim.client import KirimClient
from runtime import defaults
from runtime.db import create_pool

SENDER = defaults.DEFAULT_PHONE_NUMBER_ID
COMPONENTS: list[Any] = [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}]
UNLIMITED_RATE = 10_000_000


def sandbox_config(write_per_minute: int, latency_ms: float = 0.0) -> dict[str, Any]:
    return {
        "accounts": {SENDER: {"messaging_tier": "unlimited"}},
        "rate_limits": {
            "plan": "enterprise",
            "write_per_minute": write_per_minute,
            "read_per_minute": UNLIMITED_RATE,
        },
        "faults": {"latency": {"fixed_ms": latency_ms}},
    }


@dataclass
class Run:
    sends: int
    seconds: float
    cpu_seconds: float
    audit: dict[str, Any]

    @property
    def rate(self) -> float:
        return self.sends / self.seconds

    @property
    def cpu_per_thousand(self) -> float:
        return self.cpu_seconds / max(self.sends, 1) * 1000

    @property
    def share_429(self) -> float:
        totals = self.audit["totals"]
        requests = totals["accepted_sends"] + totals["replays"] + totals["rate_limited"]
        return float(totals["rate_limited"] / max(requests, 1))


Contender = tuple[str, Callable[[], Awaitable[tuple[float, float]]]]


async def timed(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    await work()
    return time.perf_counter() - started, time.process_time() - cpu


async def run_ours(
    api_url: str, database_url: str, pool: asyncpg.Pool, count: int
) -> tuple[float, float]:
    campaign = await seed_ledger(pool, SENDER, audience(count, seed=1), COMPONENTS)
    settings = DispatchSettings(
        kirim_base_url=api_url,
        only_senders=frozenset({SENDER}),
        ownership_interval_seconds=0.2,
        flush_seconds=0.05,
    )

    async def work() -> None:
        dispatcher = Dispatcher(settings, pool, database_url, rng=random.Random(1))
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        while await pool.fetchval(
            "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND status = 'pending'", campaign
        ):
            await asyncio.sleep(0.05)
        stop.set()
        await task

    return await timed(work)


async def run_naive(
    api_url: str,
    pool: asyncpg.Pool,
    count: int,
    concurrency: int,
    phones: list[str] | None = None,
) -> tuple[float, float]:
    phones = phones or audience(count, seed=2)
    return await timed(
        lambda: run_baseline(
            api_url,
            SENDER,
            "baseline",
            phones,
            pool,
            concurrency=concurrency,
            components=COMPONENTS,
        )
    )


async def rate_efficiency(database_url: str, count: int) -> str:
    """Steady state: the bucket's 6,000-token burst is spent first (as it is when one
    campaign follows another), so only pacing to the refill decides the figure."""
    limit = 6000
    rows = []
    with sandbox(sandbox_config(limit)) as box:
        pool = await create_pool(database_url, max_size=10)
        try:
            contenders: list[Contender] = [
                ("wa-broadcast", lambda: run_ours(box.api_url, database_url, pool, count)),
                ("baseline (semaphore 10)", lambda: run_naive(box.api_url, pool, count, 10)),
            ]
            for name, run in contenders:
                await box.reset()
                await _drain_bucket(box.api_url)
                before = (await box.audit())["totals"]
                seconds, _ = await run()
                after = (await box.audit())["totals"]
                sent = after["accepted_sends"] - before["accepted_sends"]
                limited = after["rate_limited"] - before["rate_limited"]
                allowed = 1 + limit / 60 * seconds
                rows.append(
                    (
                        name,
                        sent,
                        seconds,
                        f"{sent / allowed:.1%}",
                        limited,
                        f"{limited / max(sent + limited, 1):.2%}",
                    )
                )
        finally:
            await pool.close()
    return table(
        f"(a) Rate-limit efficiency at a {limit:,}/min bucket, its burst spent first, {count:,} "
        "recipients (goal >= 97%, 429 share <= 0.5%)",
        ["sender", "accepted", "seconds", "achieved/allowed", "429s", "429 share"],
        rows,
    )


async def _drain_bucket(api_url: str) -> None:
    """Spend the organisation's write tokens with throwaway sends until the API says 429."""
    client = KirimClient(api_url, defaults.KIRIM_API_KEY)
    empty = asyncio.Event()
    counter = iter(range(10**9))

    async def lane() -> None:
        while not empty.is_set():
            phone = f"+62899{next(counter):07d}"
            body = template_body(
                phone, defaults.DEFAULT_TEMPLATE, defaults.DEFAULT_TEMPLATE_LANGUAGE, COMPONENTS
            )
            answer = await client.send_template(SENDER, idempotency_key("drain", phone), body)
            if answer.status == 429 or answer.rate_remaining == 0:
                empty.set()

    await asyncio.gather(*(lane() for _ in range(50)))
    await client.close()


async def unthrottled(database_url: str, count: int) -> str:
    rows = []
    with sandbox(sandbox_config(UNLIMITED_RATE, latency_ms=20.0)) as box:
        pool = await create_pool(database_url, max_size=10)
        try:
            contenders: list[Contender] = [
                (
                    "wa-broadcast (tier concurrency 50)",
                    lambda: run_ours(box.api_url, database_url, pool, count),
                ),
                ("baseline (semaphore 50)", lambda: run_naive(box.api_url, pool, count, 50)),
            ]
            for name, run in contenders:
                await box.reset()
                seconds, cpu = await run()
                report = await box.audit()
                result = Run(report["totals"]["accepted_sends"], seconds, cpu, report)
                rows.append(
                    (
                        name,
                        result.sends,
                        seconds,
                        result.rate,
                        result.cpu_per_thousand,
                        report["totals"]["duplicate_accepts"],
                    )
                )
        finally:
            await pool.close()
    return table(
        f"(b) Unthrottled, 20 ms API latency, 50 in flight, {count:,} recipients",
        ["sender", "accepted", "seconds", "sends/s", "CPU-s per 1,000", "duplicates"],
        rows,
    )


async def client_speed(seconds: float) -> str:
    rows = []
    with sandbox(sandbox_config(UNLIMITED_RATE)) as box:
        headers = {
            "Authorization": f"Bearer {defaults.KIRIM_API_KEY}",
            "Content-Type": "application/json",
        }
        url = f"{box.api_url}/{SENDER}/messages"
        httpx_default = httpx.AsyncClient(headers=headers, limits=httpx.Limits(max_connections=50))
        httpx_fast = httpx.AsyncClient(headers=headers, transport=httpx_aiohttp.AiohttpTransport())
        ours = KirimClient(box.api_url, defaults.KIRIM_API_KEY)

        async def via_httpx(client: httpx.AsyncClient, key: str, body: bytes) -> int:
            response = await client.post(url, content=body, headers={"Idempotency-Key": key})
            return response.status_code

        async def via_ours(key: str, body: bytes) -> int:
            return (await ours.send_template(SENDER, key, body)).status

        candidates: list[tuple[str, Callable[[str, bytes], Awaitable[int]]]] = [
            ("httpx, default transport", lambda k, b: via_httpx(httpx_default, k, b)),
            ("httpx + httpx-aiohttp transport", lambda k, b: via_httpx(httpx_fast, k, b)),
            ("aiohttp (the dispatcher's client)", via_ours),
        ]
        for index, (name, send) in enumerate(candidates):
            sends, elapsed, cpu = await _drive(send, seconds, 50, seed=index)
            rows.append((name, sends, sends / elapsed, cpu / max(sends, 1) * 1000))
        await httpx_default.aclose()
        await httpx_fast.aclose()
        await ours.close()
    return table(
        "(d) The HTTP client alone: 50 in flight, one client core (goal >= 2,000 sends/s)",
        ["client", "sends", "sends/s", "CPU-s per 1,000"],
        rows,
    )


@dataclass(frozen=True, slots=True)
class ClientRun:
    """The dispatcher's client alone against a sandbox: how fast, and what each side spent."""

    rate: float
    client_cpu_per_1000: float
    sandbox_cpu_per_1000: float

    def busy(self, cpu_per_1000: float) -> float:
        """Cores a side kept busy at this rate (1.0: one core, all the time)."""
        return self.rate * cpu_per_1000 / 1000


async def http_ceiling(
    seconds: float,
    config: dict[str, Any] | None = None,
    *,
    in_flight: int = 50,
    senders: Sequence[str] = (SENDER,),
    sandbox_cpu: int | None = 0,
) -> ClientRun:
    """The dispatcher's client and nothing else (no ledger, no pacing): figure (d)'s last
    row by default, the sandbox on CPU 0. With `config`, `senders` and
    `sandbox_cpu=None`: what a sender with no ledger reaches against that sandbox on
    the cores it shares with it."""
    with sandbox(config or sandbox_config(UNLIMITED_RATE), cpu=sandbox_cpu) as box:
        ours = KirimClient(box.api_url, defaults.KIRIM_API_KEY)
        numbers = itertools.cycle(senders)

        async def via_ours(key: str, body: bytes) -> int:
            return (await ours.send_template(next(numbers), key, body)).status

        marks: list[float] = []

        def mark() -> None:
            marks.append(cpu_seconds(box.process.pid))

        try:
            sends, elapsed, client_cpu = await _drive(
                via_ours, seconds, in_flight, seed=7, at_start=mark
            )
            mark()
        finally:
            await ours.close()
    per_1000 = 1000 / max(sends, 1)
    return ClientRun(sends / elapsed, client_cpu * per_1000, (marks[1] - marks[0]) * per_1000)


async def restart_after_kill(database_url: str, kafka_bootstrap: str, count: int) -> str:
    """Kill a sending process once a third of the audience is accepted, restart it, and
    time the first acceptance of a recipient it had not sent yet."""
    rows = []
    config = sandbox_config(UNLIMITED_RATE, latency_ms=10.0)
    with sandbox(config) as box:
        pool = await create_pool(database_url, max_size=4)
        try:
            await seed_ledger(pool, SENDER, audience(count, seed=3), COMPONENTS)
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "KIRIM_BASE_URL": box.api_url,
                "INTAKE_ENABLED": "false",
                "DISPATCH_SENDERS": SENDER,
                "DISPATCH_CONCURRENCY": "100000:4",
                "CONSUMER_METRICS_PORT": "0",
                "LOG_LEVEL": "WARNING",
            }
            first = _consumer(env)
            await _accepted_at_least(box, count // 3)
            first.kill()
            first.wait()
            before = (await box.audit())["totals"]
            started = time.perf_counter()
            second = _consumer(env)
            await _accepted_at_least(box, before["accepted_sends"] + 1)
            ours = time.perf_counter() - started
            after = (await box.audit())["totals"]
            second.terminate()
            second.wait(30)
            rows.append(
                (
                    "wa-broadcast (python -m consumer)",
                    ours,
                    after["replays"] - before["replays"],
                    after["duplicate_accepts"],
                )
            )

            await box.reset()
            phones = audience(count, seed=4)
            naive = asyncio.create_task(run_naive(box.api_url, pool, count, 10, phones=phones))
            await _accepted_at_least(box, count // 3)
            naive.cancel()  # the script's kill -9: it keeps no state of its own
            with contextlib.suppress(asyncio.CancelledError):
                await naive
            before = (await box.audit())["totals"]
            started = time.perf_counter()
            naive = asyncio.create_task(run_naive(box.api_url, pool, count, 10, phones=phones))
            await _accepted_at_least(box, before["accepted_sends"] + 1)
            theirs = time.perf_counter() - started
            after = (await box.audit())["totals"]
            naive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await naive
            rows.append(
                (
                    "baseline, restarted in-process (no interpreter start)",
                    theirs,
                    after["replays"] - before["replays"],
                    after["duplicate_accepts"],
                )
            )
        finally:
            await pool.close()
    return table(
        f"(c) Restart after kill -9 with a third of {count:,} recipients sent",
        [
            "sender",
            "seconds to first new send",
            "requests for already-sent recipients",
            "duplicates",
        ],
        rows,
    )


def _consumer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumer"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _accepted_at_least(box: SandboxProcess, count: int) -> None:
    async with asyncio.timeout(120):
        while (await box.audit())["totals"]["accepted_sends"] < count:
            await asyncio.sleep(0.01)


async def _drive(
    send: Callable[[str, bytes], Awaitable[int]],
    seconds: float,
    concurrency: int,
    seed: int,
    at_start: Callable[[], None] | None = None,
) -> tuple[int, float, float]:
    counter = iter(range(10**9))
    done = 0
    deadline = 0.0

    async def lane() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            n = next(counter)
            phone = f"+62814{seed}{n:07d}"
            status = await send(
                idempotency_key(f"bench-{seed}", phone),
                template_body(
                    phone, defaults.DEFAULT_TEMPLATE, defaults.DEFAULT_TEMPLATE_LANGUAGE, COMPONENTS
                ),
            )
            done += status == 200

    deadline = time.perf_counter() + 0.5  # warm the connections
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    done = 0
    if at_start is not None:
        at_start()
    deadline = time.perf_counter() + seconds
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done, time.perf_counter() - started, time.process_time() - cpu


async def main(quick: bool, only: str | None) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {1})
    stack = await asyncio.to_thread(dev_stack)
    async with bench_database(stack) as database_url:
        if only in (None, "d"):
            print(await client_speed(3.0 if quick else 5.0))
        if only in (None, "b"):
            print(await unthrottled(database_url, 2000 if quick else 5000))
        if only in (None, "a"):
            print(await rate_efficiency(database_url, 600 if quick else 1500))
        if only in (None, "c"):
            bootstrap = stack.kafka.bootstrap_servers
            print(await restart_after_kill(database_url, bootstrap, 1500 if quick else 3000))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    parser.add_argument("--only", choices=["a", "b", "c", "d"], help="run one figure")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(args.quick, args.only))
    except ImportError:
        asyncio.run(main(args.quick, args.only))
