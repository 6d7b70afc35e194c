"""A private PostgreSQL cluster (Debian's package) on a loopback TCP port."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import procs
from devstack.errors import DevstackError

DB_USER = "broadcast"


def find_pg_bin() -> Path:
    """The directory holding pg_ctl/initdb, installing Debian's package when missing."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates and (found := shutil.which("pg_ctl")):
        candidates = [found]
    if candidates:
        return Path(candidates[0]).resolve().parent
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "postgresql"],
        ):
            subprocess.run(command, env=env, check=False, capture_output=True, timeout=900)
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
        if candidates:
            return Path(candidates[0]).parent
    raise DevstackError(
        "PostgreSQL server binaries not found: apt-get update && apt-get install -y postgresql"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_as_owner(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    # PostgreSQL refuses to run as root; under root the cluster belongs to the `postgres` user.
    if _as_root():
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def _owner_can_reach(path: Path) -> bool:
    if not _as_root():
        return True
    return _run_as_owner(["test", "-x", str(path)]).returncode == 0


def _check_identifier(name: str) -> None:
    # Database names are interpolated into psql commands: only plain identifiers pass.
    if re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) is None:
        raise DevstackError(f"database name must be a plain lower-case identifier: {name!r}")


@dataclass
class PostgresServer:
    state_dir: Path
    port: int

    @property
    def data_dir(self) -> Path:
        """Under root, the data dir must be reachable by `postgres`; a home dir may not be."""
        preferred = self.state_dir / "pgdata"
        if _owner_can_reach(self.state_dir):
            return preferred
        digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"wa-broadcast-pg-{digest}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def url(self, database: str = "broadcast") -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def _init(self, bin_dir: Path) -> None:
        data = self.data_dir
        if (data / "PG_VERSION").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        if _as_root():
            shutil.chown(data, "postgres", "postgres")
        os.chmod(data, 0o700)
        result = _run_as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                DB_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ],
            timeout=180,
        )
        if result.returncode != 0:
            raise DevstackError(f"initdb failed: {result.stderr.strip()[-500:]}")

    def is_running(self) -> bool:
        bin_dir = find_pg_bin()
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return (
            _run_as_owner([str(bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)]).returncode
            == 0
        )

    def start(self, timeout: float = 60.0) -> None:
        bin_dir = find_pg_bin()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._init(bin_dir)
        if not self.is_running():
            # fsync=off is for throwaway dev/test clusters only: a killed
            # *process* loses nothing, only an OS crash would. synchronous_commit stays on,
            # or a killed postmaster would forget commits that clients were told about.
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                "-c unix_socket_directories='' -c fsync=off -c full_page_writes=off "
                "-c max_connections=200 -c shared_buffers=128MB "
                "-c max_locks_per_transaction=256"
            )
            result = _run_as_owner(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                ],
                timeout=timeout + 10,
            )
            if result.returncode != 0:
                raise DevstackError(
                    f"postgres did not start: {result.stderr.strip()[-300:]} (log: {self.log_file})"
                )
        self.wait_ready(timeout)
        self.ensure_database("broadcast")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if procs.port_accepts(self.port) and self._psql("postgres", "SELECT 1").returncode == 0:
                return
            time.sleep(0.2)
        raise DevstackError(f"postgres not ready after {timeout:.0f}s (log: {self.log_file})")

    def _psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        bin_dir = find_pg_bin()
        psql = bin_dir / "psql"
        command = [
            str(psql) if psql.exists() else "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            DB_USER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)

    def ensure_database(self, name: str) -> None:
        _check_identifier(name)
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        if exists.stdout.strip() != "1":
            created = self._psql("postgres", f'CREATE DATABASE "{name}"')
            if created.returncode != 0 and "already exists" not in created.stderr:
                raise DevstackError(f"could not create database {name}: {created.stderr.strip()}")

    def drop_database(self, name: str) -> None:
        _check_identifier(name)
        self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self, mode: str = "fast") -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            return
        bin_dir = find_pg_bin()
        _run_as_owner(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w"],
            timeout=60,
        )

    def kill(self) -> None:
        """SIGKILL the postmaster (crash recovery runs on the next start)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        procs.kill(pid)
        # Orphaned backends hold the shared memory; wait for them to exit.
        deadline = time.monotonic() + 10
        while procs.port_accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
