"""A single-node Apache Kafka broker in KRaft mode, assembled from Maven Central jars."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import procs
from devstack.errors import DevstackError

KAFKA_VERSION = "4.1.1"
_POM = Path(__file__).with_name("kafka") / "pom.xml"
_READY_LINE = "Kafka Server started"

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
"""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wa-broadcast"


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Resolve the broker classpath once through `mvn`; later calls reuse the cache."""
    libs = (cache_dir or default_cache_dir()) / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    procs.require_tool("java", "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)")
    mvn = procs.require_tool("mvn", "install Maven (apt-get install -y maven)")
    libs.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(_POM),
        "org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise DevstackError("mvn could not fetch the Kafka jars: " + " | ".join(tail))
    marker.write_text(KAFKA_VERSION)
    return libs


def jar_count(libs: Path) -> int:
    return sum(1 for _ in libs.glob("*.jar"))


def _new_cluster_id() -> str:
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaBroker:
    """One broker+controller process with its data, config and log under `state_dir`."""

    state_dir: Path
    port: int
    controller_port: int
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "kafka.log"

    def _write_config(self) -> Path:
        data_dir = self.state_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data_dir),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "log.cleaner.dedupe.buffer.size": "2097152",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "log.segment.bytes": "67108864",
            "message.max.bytes": "2097152",
        }
        config = self.state_dir / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2)
        return config

    def _java_command(self, libs: Path, *args: str) -> list[str]:
        return [
            procs.require_tool(
                "java", "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)"
            ),
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={(self.state_dir / 'log4j2.properties').resolve()}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def _format(self, libs: Path, config: Path) -> None:
        id_file = self.state_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_new_cluster_id())
        command = self._java_command(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            id_file.read_text().strip(),
            "--config",
            str(config),
            "--ignore-formatted",
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            raise DevstackError(f"kafka storage format failed: {result.stderr.strip()[-500:]}")

    def is_running(self) -> bool:
        pid = procs.read_pid(self._pid_file)
        return pid is not None and procs.pid_alive(pid)

    def start(self, timeout: float = 120.0) -> None:
        """Start (or leave running) the broker and wait until it serves requests."""
        if self.is_running():
            self.wait_ready(timeout)
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        libs = ensure_jars()
        config = self._write_config()
        self._format(libs, config)
        log = self.log_file.open("ab")
        process = subprocess.Popen(
            self._java_command(libs, "kafka.Kafka", str(config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._pid_file.write_text(str(process.pid))
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = procs.read_pid(self._pid_file)
            if pid is None or not procs.pid_alive(pid):
                raise DevstackError(
                    f"kafka exited during start; see {self.log_file}: {self._log_tail()}"
                )
            if procs.port_accepts(self.port) and self._ready_logged():
                return
            time.sleep(0.2)
        raise DevstackError(f"kafka not ready after {timeout:.0f}s; see {self.log_file}")

    def _ready_logged(self) -> bool:
        try:
            with self.log_file.open("rb") as log:
                log.seek(getattr(self, "_log_offset", 0))
                return _READY_LINE.encode() in log.read()
        except FileNotFoundError:
            return False

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-3:])
        except FileNotFoundError:
            return ""

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Clean shutdown (SIGTERM), SIGKILL after the grace period."""
        pid = procs.read_pid(self._pid_file)
        if pid is not None:
            procs.terminate(pid, grace_seconds)
        self._pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: the crash the recovery tests simulate."""
        pid = procs.read_pid(self._pid_file)
        if pid is not None:
            procs.kill(pid)
        self._pid_file.unlink(missing_ok=True)
