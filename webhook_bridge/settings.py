"""The webhook bridge's configuration, read once from the environment in `__main__`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtime import defaults
from runtime.env import SettingsError, env_float, env_int, env_list, env_port, env_str

DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_TOLERANCE_SECONDS = 300
# Kirim gives each attempt 10 s; answering 503 well before that lets it retry on
# its own schedule instead of counting a timeout.
DEFAULT_PRODUCE_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_IN_FLIGHT = 2_000
DEFAULT_LINGER_MS = 2


@dataclass(frozen=True, kw_only=True)
class BridgeSettings:
    """Everything `webhook_bridge.service.run` needs; immutable once built."""

    bootstrap_servers: str = defaults.KAFKA_BOOTSTRAP_SERVERS
    secrets: tuple[str, ...] = (defaults.KIRIM_WEBHOOK_SECRETS,)
    host: str = defaults.BIND_HOST
    port: int = defaults.WEBHOOK_BRIDGE_PORT
    path: str = defaults.WEBHOOK_PATH
    topic: str = defaults.STATUS_TOPIC
    topic_partitions: int = 3
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    produce_timeout_seconds: float = DEFAULT_PRODUCE_TIMEOUT_SECONDS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    linger_ms: int = DEFAULT_LINGER_MS
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise SettingsError(f"WEBHOOK_PATH must start with '/', got {self.path!r}")
        if not self.secrets:
            raise SettingsError("KIRIM_WEBHOOK_SECRETS must list at least one secret")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BridgeSettings:
        """Build from a mapping such as `os.environ`; a bad value raises `SettingsError`."""
        return cls(
            bootstrap_servers=env_str(
                env, "KAFKA_BOOTSTRAP_SERVERS", defaults.KAFKA_BOOTSTRAP_SERVERS
            ),
            secrets=env_list(env, "KIRIM_WEBHOOK_SECRETS", defaults.KIRIM_WEBHOOK_SECRETS),
            host=env_str(env, "WEBHOOK_BRIDGE_HOST", defaults.BIND_HOST),
            port=env_port(env, "WEBHOOK_BRIDGE_PORT", defaults.WEBHOOK_BRIDGE_PORT),
            path=env_str(env, "WEBHOOK_PATH", defaults.WEBHOOK_PATH),
            topic=env_str(env, "STATUS_TOPIC", defaults.STATUS_TOPIC),
            topic_partitions=env_int(env, "STATUS_TOPIC_PARTITIONS", 3, minimum=1),
            max_body_bytes=env_int(
                env, "WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024
            ),
            tolerance_seconds=env_int(
                env, "WEBHOOK_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECONDS, minimum=1
            ),
            produce_timeout_seconds=env_float(
                env,
                "WEBHOOK_PRODUCE_TIMEOUT_SECONDS",
                DEFAULT_PRODUCE_TIMEOUT_SECONDS,
                minimum=0.1,
            ),
            max_in_flight=env_int(env, "WEBHOOK_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, minimum=1),
            linger_ms=env_int(env, "WEBHOOK_LINGER_MS", DEFAULT_LINGER_MS, minimum=0),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
        )
