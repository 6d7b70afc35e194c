"""The `broadcast` command's configuration: read once from the environment in `__main__`.

Environment variables (same names and defaults as the services, design.md):
`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `KIRIM_BASE_URL`, `KIRIM_API_KEY`,
`KIRIM_WEBHOOK_SECRETS`, `REQUESTS_TOPIC`, `REQUESTS_DLQ_TOPIC`, `STATUS_TOPIC`,
`REQUESTS_TOPIC_PARTITIONS` (used when `publish` creates the topic),
`QUOTA_WINDOW_SECONDS` (the fit plan's window; `prune` keeps every quota
contact inside it), `RETENTION_DAYS` (how long `prune` keeps a finished
campaign, default 30) and `BROADCAST_TIMEOUT` (seconds allowed for each
connection, default 15). Command-line flags override
them (`with_overrides`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runtime import defaults
from runtime.env import SettingsError, env_float, env_int, env_list, env_str

DEFAULT_TIMEOUT_SECONDS = 15.0
DEFAULT_REQUESTS_PARTITIONS = 6
DEFAULT_RETENTION_DAYS = 30


@dataclass(frozen=True, kw_only=True)
class CliSettings:
    """Where the services are; immutable once built."""

    bootstrap_servers: str = defaults.KAFKA_BOOTSTRAP_SERVERS
    database_url: str = defaults.DATABASE_URL
    kirim_base_url: str = defaults.KIRIM_BASE_URL
    kirim_api_key: str = defaults.KIRIM_API_KEY
    webhook_secrets: tuple[str, ...] = (defaults.KIRIM_WEBHOOK_SECRETS,)
    requests_topic: str = defaults.REQUESTS_TOPIC
    requests_dlq_topic: str = defaults.REQUESTS_DLQ_TOPIC
    status_topic: str = defaults.STATUS_TOPIC
    requests_partitions: int = DEFAULT_REQUESTS_PARTITIONS
    quota_window_seconds: int = defaults.QUOTA_WINDOW_SECONDS
    # Days a campaign stays in the hot tables after it became terminal (`prune`).
    retention_days: int = DEFAULT_RETENTION_DAYS
    # Bound on each connection attempt and each Kafka publish.
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # Who is at the keyboard, for the control events' `requested_by`.
    operator: str = "operator"

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise SettingsError(f"the timeout must be > 0 seconds, got {self.timeout_seconds}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CliSettings:
        """Build from a mapping such as `os.environ`; a bad value raises `SettingsError`."""
        return cls(
            bootstrap_servers=env_str(
                env, "KAFKA_BOOTSTRAP_SERVERS", defaults.KAFKA_BOOTSTRAP_SERVERS
            ),
            database_url=env_str(env, "DATABASE_URL", defaults.DATABASE_URL),
            kirim_base_url=env_str(env, "KIRIM_BASE_URL", defaults.KIRIM_BASE_URL),
            kirim_api_key=env_str(env, "KIRIM_API_KEY", defaults.KIRIM_API_KEY),
            webhook_secrets=env_list(env, "KIRIM_WEBHOOK_SECRETS", defaults.KIRIM_WEBHOOK_SECRETS),
            requests_topic=env_str(env, "REQUESTS_TOPIC", defaults.REQUESTS_TOPIC),
            requests_dlq_topic=env_str(env, "REQUESTS_DLQ_TOPIC", defaults.REQUESTS_DLQ_TOPIC),
            status_topic=env_str(env, "STATUS_TOPIC", defaults.STATUS_TOPIC),
            requests_partitions=env_int(
                env, "REQUESTS_TOPIC_PARTITIONS", DEFAULT_REQUESTS_PARTITIONS, minimum=1
            ),
            quota_window_seconds=env_int(
                env, "QUOTA_WINDOW_SECONDS", defaults.QUOTA_WINDOW_SECONDS, minimum=1
            ),
            retention_days=env_int(env, "RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=0),
            timeout_seconds=env_float(
                env, "BROADCAST_TIMEOUT", DEFAULT_TIMEOUT_SECONDS, minimum=0.1
            ),
            operator=env.get("USER", "").strip() or "operator",
        )

    def with_overrides(self, **changes: Any) -> CliSettings:
        """A copy with the given fields replaced; None values (flags not given) are ignored."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    @property
    def database_label(self) -> str:
        """The database URL without credentials, for messages."""
        return redact_url(self.database_url)


def redact_url(url: str) -> str:
    """`postgresql://user:secret@host:5432/db` -> `postgresql://host:5432/db`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"
