"""Services as child processes for the system tests: spawn, SIGKILL, stop.

Each child gets its own session (so a Ctrl-C of pytest reaches it only through
`stop_all`) and a log file; a failing test prints the logs of its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        return f"--- {self.name} (exit {self.process.returncode}) ---\n{self.log_tail()}"


async def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log_path)


async def spawn_service(
    name: str, module: str, env: Mapping[str, str], log_dir: Path, *args: str
) -> Child:
    return await spawn(name, [sys.executable, "-m", module, *args], env, log_dir)


async def kill(child: Child) -> None:
    """SIGKILL the child's whole process group: the crash the recovery tests simulate."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signal.SIGKILL)
    await child.process.wait()


async def stop_all(children: Sequence[Child], grace_seconds: float = 15.0) -> None:
    """SIGTERM every child at once, then SIGKILL whatever is left after the grace period."""
    running = [child for child in children if child.process.returncode is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
    waits = [asyncio.create_task(child.process.wait()) for child in running]
    if waits:
        await asyncio.wait(waits, timeout=grace_seconds)
    for child in running:
        if child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            await child.process.wait()
