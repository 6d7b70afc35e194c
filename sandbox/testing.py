"""Run a sandbox inside the current event loop, for tests and the demo.

    async with running_sandbox(SandboxSettings(port=0)) as sandbox:
        httpx.get(sandbox.api_url + "/health")

Port 0 picks a free port; the context waits until the server listens and
stops it (dropping queued webhooks) on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sandbox.clock import Clock
from sandbox.server import build, run
from sandbox.settings import SandboxSettings

START_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    port: int
    base_url: str
    settings: SandboxSettings

    @property
    def api_url(self) -> str:
        """The `KIRIM_BASE_URL` for this sandbox (`.../v1`)."""
        return self.base_url + "/v1"

    @property
    def control_url(self) -> str:
        return self.base_url + "/_sandbox"


@contextlib.asynccontextmanager
async def running_sandbox(
    settings: SandboxSettings | None = None, clock: Clock | None = None
) -> AsyncIterator[RunningSandbox]:
    settings = settings or SandboxSettings(port=0)
    sandbox = build(settings, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop, sandbox))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not sandbox.server.started:
                if task.done():
                    await task  # re-raises why it could not start
                    raise RuntimeError("the sandbox stopped before it started")
                await asyncio.sleep(0.005)
        port = sandbox.server.bound_port()
        yield RunningSandbox(port, f"http://{settings.host}:{port}", settings)
    finally:
        stop.set()
        await task
