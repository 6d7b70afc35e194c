"""The scheduler that kills things: at random moments, a random part, SIGKILL, then a restart.

It also plays the supervisor: a service that exits by itself is counted as an
unexpected exit and started again, as systemd or Kubernetes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.soak.processes import Infrastructure, ServiceProcess, Tally


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kill: Callable[[], Awaitable[None]]
    start: Callable[[], Awaitable[None]]
    tally: Tally


def targets(services: list[ServiceProcess], infra: Infrastructure) -> list[Target]:
    found = [Target(s.name, s.kill, s.start, s.tally) for s in services]
    found.append(Target("kafka", infra.kill_kafka, infra.start_kafka, infra.kafka_tally))
    found.append(
        Target("postgresql", infra.kill_postgres, infra.start_postgres, infra.postgres_tally)
    )
    return found


async def kill_at_random(
    choices: list[Target],
    stop: asyncio.Event,
    rng: random.Random,
    between: tuple[float, float],
    down: tuple[float, float],
) -> None:
    """Until `stop`: wait, SIGKILL one target, leave it down a moment, start it again."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(*between))
        if stop.is_set():
            return
        target = rng.choice(choices)
        started = time.monotonic()
        print(f"soak: SIGKILL {target.name}", file=sys.stderr, flush=True)
        await target.kill()
        await asyncio.sleep(rng.uniform(*down))
        await target.start()
        target.tally.down_seconds += time.monotonic() - started


async def supervise(services: list[ServiceProcess], stop: asyncio.Event) -> None:
    """Restart any service that exited without being killed."""
    while not stop.is_set():
        for service in services:
            process = service.process
            if process is not None and process.returncode is not None and process.returncode != -9:
                service.tally.unexpected_exits += 1
                await service.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
