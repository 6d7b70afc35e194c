"""The soak's moving parts: service processes and the infrastructure, each killable.

Every part can be SIGKILLed and started again on the same ports and data, as a
supervisor (systemd, Kubernetes) would restart it; nothing here waits for a part
to be healthy after a restart, because the others must cope with it being gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Tally:
    kills: int = 0
    # Exits nobody asked for (a crash, an exit on its own): restarted, and reported.
    unexpected_exits: int = 0
    down_seconds: float = 0.0


@dataclass
class ServiceProcess:
    """`python -m <module> [args]` with its own environment and log file."""

    name: str
    module: str
    env: Mapping[str, str]
    log_dir: Path
    port: int
    args: tuple[str, ...] = ()
    tally: Tally = field(default_factory=Tally)
    process: asyncio.subprocess.Process | None = None
    _generation: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self._generation += 1
        log = (self.log_dir / f"{self.name}.log").open("ab")
        log.write(f"\n--- start {self._generation} ---\n".encode())
        log.flush()
        with log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                *self.args,
                env=dict(self.env),
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    async def kill(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.tally.kills += 1

    async def stop(self, grace_seconds: float = 15.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    async def ready(self, within: float) -> None:
        """Wait for `/readyz` to answer 200 (only at the start of the soak)."""
        async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(within):
            while True:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited during start: see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.25)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"


@dataclass
class Infrastructure:
    """The soak's own Kafka broker and PostgreSQL (never the developer's stack)."""

    kafka: KafkaBroker
    postgres: PostgresServer
    kafka_tally: Tally = field(default_factory=Tally)
    postgres_tally: Tally = field(default_factory=Tally)

    async def kill_kafka(self) -> None:
        await asyncio.to_thread(self.kafka.kill)
        self.kafka_tally.kills += 1

    async def start_kafka(self) -> None:
        await asyncio.to_thread(self.kafka.start)

    async def kill_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.kill)
        self.postgres_tally.kills += 1

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.start)
