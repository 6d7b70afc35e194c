"""The projector's configuration, read once from the environment in `__main__`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtime import defaults
from runtime.env import env_float, env_int, env_port, env_str

DEFAULT_BATCH_SIZE = 5_000
DEFAULT_REBUILD_BATCH_SIZE = 20_000
DEFAULT_STALL_SECONDS = 120.0


@dataclass(frozen=True, kw_only=True)
class ProjectorSettings:
    """Everything `projector.service.run` and `projector.rebuild.rebuild` need."""

    bootstrap_servers: str = defaults.KAFKA_BOOTSTRAP_SERVERS
    database_url: str = defaults.DATABASE_URL
    topic: str = defaults.STATUS_TOPIC
    topic_partitions: int = 3
    group_id: str = defaults.PROJECTOR_GROUP
    metrics_host: str = defaults.BIND_HOST
    metrics_port: int = defaults.PROJECTOR_METRICS_PORT
    # Records per poll, hence per database transaction.
    batch_size: int = DEFAULT_BATCH_SIZE
    rebuild_batch_size: int = DEFAULT_REBUILD_BATCH_SIZE
    # Lag without a single record for this long means the consumer is wedged
    # (aiokafka issue 1037): the loop raises and the service restarts.
    stall_seconds: float = DEFAULT_STALL_SECONDS
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProjectorSettings:
        """Build from a mapping such as `os.environ`; a bad value raises `SettingsError`."""
        return cls(
            bootstrap_servers=env_str(
                env, "KAFKA_BOOTSTRAP_SERVERS", defaults.KAFKA_BOOTSTRAP_SERVERS
            ),
            database_url=env_str(env, "DATABASE_URL", defaults.DATABASE_URL),
            topic=env_str(env, "STATUS_TOPIC", defaults.STATUS_TOPIC),
            topic_partitions=env_int(env, "STATUS_TOPIC_PARTITIONS", 3, minimum=1),
            group_id=env_str(env, "PROJECTOR_GROUP", defaults.PROJECTOR_GROUP),
            metrics_host=env_str(env, "PROJECTOR_METRICS_HOST", defaults.BIND_HOST),
            metrics_port=env_port(env, "PROJECTOR_METRICS_PORT", defaults.PROJECTOR_METRICS_PORT),
            batch_size=env_int(env, "PROJECTOR_BATCH_SIZE", DEFAULT_BATCH_SIZE, minimum=1),
            rebuild_batch_size=env_int(
                env, "PROJECTOR_REBUILD_BATCH_SIZE", DEFAULT_REBUILD_BATCH_SIZE, minimum=1
            ),
            stall_seconds=env_float(
                env, "PROJECTOR_STALL_SECONDS", DEFAULT_STALL_SECONDS, minimum=1.0
            ),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
        )
