"""The services as child processes: start, wait until healthy, watch, stop.

Each child runs `python -m <service>` in its own session, logging to
`<log-dir>/<service>.log`; the kernel stops it if the demo is killed (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from cli.demo.paths import ROOT, shown
from cli.errors import Failed

START_SECONDS: Final = 90.0
CONFIGURATION_ERROR: Final = 2  # every service's exit code for bad configuration
STOP_GRACE_SECONDS: Final = 15.0
_PR_SET_PDEATHSIG: Final = 1


def _die_with_parent() -> None:
    # A demo killed with SIGKILL cannot stop its children: the kernel does (Linux).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    port: int

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def failure(self, what: str) -> Failed:
        return Failed(f"{what}: see {shown(self.log_path)}", service=self.name)

    def owns_its_port(self) -> bool:
        """The child itself listens on its port (not another program that took it first)."""
        owner = listening_pid(self.port)
        return self.running and (owner is None or owner == self.process.pid)

    def lost_its_port(self) -> bool:
        """Exited with a configuration error because its port was taken after the probe."""
        if self.process.returncode != CONFIGURATION_ERROR:
            return False
        with contextlib.suppress(OSError):
            return "is already in use" in self.log_path.read_text(errors="replace")
        return False


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on a local TCP port, from /proc; None if unknown."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    with contextlib.suppress(OSError):
        for process in Path("/proc").iterdir():
            if process.name.isdigit() and _holds_socket(process, inodes):
                return int(process.name)
    return None


def _listening_inodes(port: int) -> set[str]:
    listening = "0A"
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _holds_socket(process: Path, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    with contextlib.suppress(OSError):
        for descriptor in (process / "fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(descriptor) in wanted:
                    return True
    return False


class PortTaken(Exception):  # noqa: N818 - named for what happened
    """A child found its port taken: another program bound it between probe and start."""

    def __init__(self, child: Child) -> None:
        super().__init__(f"port {child.port} of {child.name} was taken as it started")
        self.child = child


@dataclass
class Children:
    """Every child started, so that even an interrupted shutdown can kill what is left."""

    items: list[Child] = field(default_factory=list)

    def kill_leftovers(self) -> None:
        for child in self.items:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child.process.pid, 0)


async def spawn(name: str, env: Mapping[str, str], log_dir: Path, port: int) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            name,
            env=dict(env),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a Ctrl-C reaches the demo, which stops the children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log_path, port)


async def wait_healthy(child: Child, deadline: float) -> None:
    url = f"http://127.0.0.1:{child.port}/readyz"
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if not child.running:
                if child.lost_its_port():
                    raise PortTaken(child)
                raise child.failure(
                    f"{child.name} exited with code {child.process.returncode} during start"
                )
            with contextlib.suppress(httpx.HTTPError):
                # Another program on the port may answer for a child that lost it.
                if (await http.get(url)).status_code == 200 and child.owns_its_port():
                    return
            if time.monotonic() > deadline:
                raise child.failure(f"{child.name} not healthy at {url} after {START_SECONDS:.0f}s")
            await asyncio.sleep(0.25)


async def stop_all(children: Sequence[Child], grace_seconds: float) -> list[str]:
    """SIGTERM every child, SIGKILL what is left after the grace period; one note each."""
    running = [child for child in children if child.running]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
    if running:
        await asyncio.wait(
            [asyncio.create_task(child.process.wait()) for child in running],
            timeout=grace_seconds,
        )
    notes = []
    for child in running:
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            await child.process.wait()
            notes.append(f"{child.name} killed after {grace_seconds:.0f}s")
        elif (code := child.process.returncode or 0) < 0:
            notes.append(f"{child.name} ended by {signal.Signals(-code).name}")
        else:
            notes.append(f"{child.name} exit {code}")
    return notes


def check_alive(children: Sequence[Child]) -> None:
    for child in children:
        if not child.running:
            raise child.failure(f"{child.name} exited with code {child.process.returncode}")


async def save_metrics(children: Sequence[Child], log_dir: Path) -> None:
    """A last scrape of every /metrics into the log directory, for after the shutdown."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        for child in children:
            with contextlib.suppress(httpx.HTTPError, OSError):
                answer = await http.get(f"http://127.0.0.1:{child.port}/metrics")
                (log_dir / f"{child.name}.metrics.txt").write_text(answer.text)
