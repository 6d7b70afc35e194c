"""Shared by the benchmarks: a sandbox subprocess on its own core, a fresh database, tables.

Everything runs on 127.0.0.1 against the developer stack (`python -m devstack up`,
started here when it is not running); each run gets its own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from devstack.procs import free_port
from devstack.stack import Stack
from runtime.migrate import migrate_url

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pinned(command: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return command
    return ["taskset", "-c", str(cpu), *command]


class SandboxProcess:
    """`python -m sandbox` with a config document, on one CPU."""

    def __init__(self, config: dict[str, Any], cpu: int | None = 0) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SANDBOX_PORT": str(self.port),
            "SANDBOX_CONFIG": msgspec.json.encode(config).decode(),
            "SANDBOX_WEBHOOK_URL": "",
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            pinned([sys.executable, "-m", "sandbox"], cpu),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = self.base_url + "/v1"
        self.control_url = self.base_url + "/_sandbox"

    def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the sandbox exited during start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.api_url + "/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the sandbox did not start")

    async def audit(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            body = (await client.get(self.control_url + "/audit")).json()
        data: dict[str, Any] = body.get("data", body)
        return data

    async def reset(self) -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(self.control_url + "/reset")).raise_for_status()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextlib.contextmanager
def sandbox(config: dict[str, Any], cpu: int | None = 0) -> Iterator[SandboxProcess]:
    process = SandboxProcess(config, cpu)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def dev_stack() -> Stack:
    stack = Stack.load_or_plan(ROOT / ".run" / "devstack")
    stack.up()
    return stack


@contextlib.asynccontextmanager
async def bench_database(stack: Stack) -> AsyncIterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(stack.postgres.ensure_database, name)
    url = stack.postgres.url(name)
    await migrate_url(url)
    try:
        yield url
    finally:
        await asyncio.to_thread(stack.postgres.drop_database, name)


async def seed_ledger(
    pool: asyncpg.Pool, sender: str, phones: Sequence[str], components: list[Any]
) -> uuid.UUID:
    campaign_id = uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count)
               VALUES ($1, $2, $2, 'promo_flash_sale', 'id_ID', $3, 'bench', 1)""",
            campaign_id,
            sender,
            components,
        )
        await connection.copy_records_to_table(
            "ledger",
            records=[(campaign_id, phone, "pending", 0) for phone in phones],
            columns=["campaign_id", "phone", "status", "chunk_index"],
        )
    return campaign_id


def audience(count: int, seed: int = 0) -> list[str]:
    return [f"+62813{(seed * 1_000_003 + i) % 10**7:07d}" for i in range(count)]


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [f"## {title}", ""]
    lines.append(
        "| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |"
    )
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
