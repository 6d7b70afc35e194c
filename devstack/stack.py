"""The developer stack: one Kafka broker and one PostgreSQL cluster with remembered ports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from devstack import procs
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer

PREFERRED_KAFKA_PORT = 9092
PREFERRED_POSTGRES_PORT = 5432


def _pick(preferred: int) -> int:
    return preferred if procs.port_is_free(preferred) else procs.free_port()


@dataclass
class Stack:
    kafka: KafkaBroker
    postgres: PostgresServer

    @classmethod
    def load_or_plan(cls, state_dir: Path) -> Stack:
        """Ports are chosen once (the contract's defaults when free) and kept in `ports.json`."""
        ports_file = state_dir / "ports.json"
        if ports_file.exists():
            ports = json.loads(ports_file.read_text())
        else:
            ports = {
                "kafka": _pick(PREFERRED_KAFKA_PORT),
                "kafka_controller": procs.free_port(),
                "postgres": _pick(PREFERRED_POSTGRES_PORT),
            }
            state_dir.mkdir(parents=True, exist_ok=True)
            ports_file.write_text(json.dumps(ports))
        return cls(
            kafka=KafkaBroker(state_dir / "kafka", ports["kafka"], ports["kafka_controller"]),
            postgres=PostgresServer(state_dir / "postgres", ports["postgres"]),
        )

    def environment(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "DATABASE_URL": self.postgres.url(),
        }

    def up(self) -> None:
        self.postgres.start()
        self.kafka.start()

    def down(self) -> None:
        self.kafka.stop()
        self.postgres.stop()

    def status(self) -> dict[str, bool]:
        return {"kafka": self.kafka.is_running(), "postgres": self.postgres.is_running()}
