"""How many sends per second one sandbox core answers over loopback.

    .venv/bin/python -m bench.sandbox_throughput [--seconds 10] [--concurrency 32 64]

Starts `python -m sandbox` as a subprocess pinned to CPU 0 (`taskset`, uvloop),
with an effectively unlimited rate plan and tier and no webhooks; drives it
from CPU 1 with aiohttp (uvloop), one unique recipient and idempotency key per
send, for a bounded time per concurrency level after a short warm-up; prints
sends/s, latency percentiles, the sandbox's CPU seconds per 1,000 sends
(utime + stime from /proc), how busy its core was, and sends per CPU-second
(what one fully busy core answers, which holds even when the client or a
neighbour on the machine is the limit). 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp
import msgspec

from runtime import defaults

NUMBER_ID = defaults.DEFAULT_PHONE_NUMBER_ID
HEADERS = {
    "Authorization": f"Bearer {defaults.KIRIM_API_KEY}",
    "Content-Type": "application/json",
}
WARMUP_SECONDS = 1.0
START_TIMEOUT = 15.0


@dataclass(frozen=True)
class Round:
    concurrency: int
    sends: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    def row(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = self.sends / self.seconds
        per_thousand = self.cpu_seconds / max(self.sends, 1) * 1000
        busy = self.cpu_seconds / self.seconds * 100
        # What one fully busy core would answer: robust when the client side is the limit.
        per_core = self.sends / self.cpu_seconds if self.cpu_seconds else 0.0
        return (
            f"{self.concurrency:>11} {self.sends:>8} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f}"
            f" {self.errors:>7} {per_thousand:>13.3f} {busy:>9.0f}% {per_core:>12.0f}"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5); the split above starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    accounts = msgspec.json.encode({NUMBER_ID: {"messaging_tier": "unlimited"}}).decode()
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        str(port),
        "--no-webhooks",
        "--write-per-minute",
        "1000000000",
        "--read-per-minute",
        "1000000000",
        "--accounts",
        accounts,
        "--log-level",
        "WARNING",
    ]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0", *command]
    return subprocess.Popen(command)


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/v1/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the sandbox did not start")


def send_body(serial: int) -> bytes:
    return msgspec.json.encode(
        {
            "messaging_product": "whatsapp",
            "to": f"+62811{serial:08d}",
            "type": "template",
            "template": {
                "name": defaults.DEFAULT_TEMPLATE,
                "language": {"code": defaults.DEFAULT_TEMPLATE_LANGUAGE},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}],
            },
        }
    )


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    concurrency: int,
    seconds: float,
    serials: list[int],
    pid: int,
) -> Round:
    latencies: list[float] = []
    counts = {"sends": 0, "errors": 0}
    warm_until = time.monotonic() + WARMUP_SECONDS
    stop_at = warm_until + seconds
    marks: dict[str, float] = {}

    async def worker() -> None:
        while (now := time.monotonic()) < stop_at:
            serials[0] += 1
            serial = serials[0]
            headers = {**HEADERS, "Idempotency-Key": f"bench-{serial}"}
            started = time.perf_counter()
            try:
                async with session.post(url, data=send_body(serial), headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if now >= warm_until:
                if "start" not in marks:
                    marks["start"] = now
                    marks["cpu"] = cpu_seconds(pid)
                latencies.append(time.perf_counter() - started)
                counts["sends" if ok else "errors"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - marks.get("start", time.monotonic())
    used = cpu_seconds(pid) - marks.get("cpu", 0.0)
    return Round(concurrency, counts["sends"], counts["errors"], elapsed, latencies, used)


async def main(seconds: float, levels: list[int]) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_sandbox(port)
    try:
        connector = aiohttp.TCPConnector(limit=max(levels))
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, base)
            url = f"{base}/v1/{NUMBER_ID}/messages"
            serials = [0]
            rounds = [
                await drive(session, url, level, seconds, serials, process.pid) for level in levels
            ]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    print("sandbox: 1 core (CPU 0), uvloop + httptools; client: aiohttp on CPU 1")
    print(
        f"{'concurrency':>11} {'sends':>8} {'sends/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'errors':>7} {'CPU-s/1000':>13} {'sandbox':>10} {'sends/CPU-s':>12}"
    )
    for result in rounds:
        print(result.row())


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(main(args.seconds, args.concurrency))
    except ImportError:
        asyncio.run(main(args.seconds, args.concurrency))


if __name__ == "__main__":
    cli()
