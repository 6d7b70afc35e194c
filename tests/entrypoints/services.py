"""The four services as the entry-point tests run them: one process each, output captured.

`SERVICES` names each service's module, its settings and its listening port's
variable; `run_once` runs `python -m <module>` to its end; `Listener` is a
loopback port that counts the connections it receives, to prove that a process
opened none (a service pointed at it for Kafka or PostgreSQL must not connect).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from console.settings import ConsoleSettings
from consumer.settings import ConsumerSettings
from projector.settings import ProjectorSettings
from sandbox.settings import SandboxSettings
from tests.children import REPO_ROOT
from webhook_bridge.settings import BridgeSettings

RUN_SECONDS = 30.0


@dataclass(frozen=True)
class Service:
    module: str
    from_env: Callable[[Mapping[str, str]], Any]
    port_variable: str
    # Where its settings are read: the modules whose names `--help` must list.
    settings_files: tuple[str, ...]
    # What it needs set to get as far as its port (the console: a credential).
    required: Mapping[str, str] = field(default_factory=dict)


SERVICES: Mapping[str, Service] = {
    "consumer": Service(
        "consumer",
        ConsumerSettings.from_env,
        "CONSUMER_METRICS_PORT",
        ("consumer/settings.py", "consumer/dispatch/settings.py"),
    ),
    "webhook_bridge": Service(
        "webhook_bridge",
        BridgeSettings.from_env,
        "WEBHOOK_BRIDGE_PORT",
        ("webhook_bridge/settings.py",),
    ),
    "projector": Service(
        "projector",
        ProjectorSettings.from_env,
        "PROJECTOR_METRICS_PORT",
        ("projector/settings.py",),
    ),
    "sandbox": Service(
        "sandbox", SandboxSettings.from_env, "SANDBOX_PORT", ("sandbox/settings.py",)
    ),
    "console": Service(
        "console",
        lambda env: ConsoleSettings.from_env(env, for_help=True),
        "CONSOLE_PORT",
        ("console/settings.py",),
        {"CONSOLE_TOKEN": "entrypoint-test-token-0000"},
    ),
}


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def base_env(**variables: str) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell leaks in."""
    return {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", **variables}


async def run_once(module: str, env: Mapping[str, str], *args: str) -> Finished:
    """Run the service to its end (within 30 s) and capture what it wrote."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env=dict(env),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(
        process.returncode, stdout.decode(), stderr.decode(), time.monotonic() - started
    )


class Listener:
    """A listening loopback port (so nobody else can bind it) that counts connections."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connections(self) -> int:
        """Connections waiting in the backlog (each accepted and closed here)."""
        count = 0
        while True:
            try:
                connection, _ = self._socket.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1

    def close(self) -> None:
        self._socket.close()


@contextlib.contextmanager
def listeners(count: int) -> Iterator[list[Listener]]:
    opened = [Listener() for _ in range(count)]
    try:
        yield opened
    finally:
        for listener in opened:
            listener.close()
