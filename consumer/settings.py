"""The consumer process's configuration, read once from the environment in `__main__`.

One frozen object for the whole process (intake and dispatch); each half reads
only its own fields. Every field has a default that works on one machine; a bad
value fails at start and names its variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.tiers import UNLIMITED
from runtime import defaults
from runtime.env import SettingsError, env_bool, env_float, env_int, env_port, env_str

CONSUMER_SERVICE = "consumer"


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    """Everything `consumer.app.run` needs; immutable once built."""

    # Shared infrastructure.
    bootstrap_servers: str = defaults.KAFKA_BOOTSTRAP_SERVERS
    database_url: str = defaults.DATABASE_URL
    kirim_base_url: str = defaults.KIRIM_BASE_URL
    kirim_api_key: str = defaults.KIRIM_API_KEY
    quota_window_seconds: int = defaults.QUOTA_WINDOW_SECONDS
    metrics_host: str = defaults.BIND_HOST
    metrics_port: int = defaults.CONSUMER_METRICS_PORT
    # Intake workers, and per owned sender a claim, a results flush and the rounds.
    db_pool_size: int = 12
    log_level: str = "INFO"
    # Applying migrations and creating topics at start; tests that already did may skip.
    migrate_on_start: bool = True
    ensure_topics_on_start: bool = True

    # Intake: broadcast.requests -> ledger.
    intake_enabled: bool = True
    requests_topic: str = defaults.REQUESTS_TOPIC
    requests_dlq_topic: str = defaults.REQUESTS_DLQ_TOPIC
    requests_partitions: int = 6
    dlq_partitions: int = 1
    consumer_group: str = defaults.CONSUMER_GROUP
    # Events handled concurrently: one worker per partition group, order kept per partition.
    intake_workers: int = 2
    # Events fetched but not yet handled; past it the partitions are paused (backpressure).
    intake_buffer_events: int = 8
    intake_commit_interval_seconds: float = 1.0
    intake_session_timeout_ms: int = 10_000
    intake_max_poll_interval_ms: int = 300_000
    intake_fetch_max_bytes: int = 8 * 1024 * 1024
    # Bounded drain on stop and on partition revocation, then the work is abandoned
    # (not committed) and redelivered.
    intake_grace_seconds: float = 10.0
    # No progress for this long while work is waiting: /healthz fails; a consumer that
    # fetched nothing while lagging that long exits (aiokafka issue 1037).
    intake_stall_seconds: float = 120.0
    intake_stall_exit: bool = True
    # ANALYZE ledger after this many new pending rows (0: leave it to autovacuum).
    intake_analyze_every_rows: int = 50_000
    # Drain-and-exit modes (tests, one-off catch-up runs).
    intake_until_idle: bool = False
    intake_max_events: int = 0

    # Kirim accounts (sender resolution).
    accounts_cache_seconds: float = 60.0
    # On an API error a cached list this young is still used rather than waiting.
    accounts_stale_seconds: float = 600.0
    accounts_timeout_seconds: float = 5.0
    accounts_retry_max_seconds: float = 10.0
    # Waiting on the accounts API for longer than this fails /healthz.
    accounts_alert_seconds: float = 60.0

    # Dispatch: ledger -> Kirim.
    dispatcher_enabled: bool = True
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)

    def __post_init__(self) -> None:
        if self.intake_commit_interval_seconds <= 0:
            raise SettingsError("INTAKE_COMMIT_INTERVAL_SECONDS must be > 0")
        if self.db_pool_size < self.intake_workers + 1:
            raise SettingsError(
                f"CONSUMER_DB_POOL_SIZE ({self.db_pool_size}) must exceed "
                f"INTAKE_WORKERS ({self.intake_workers})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsumerSettings:
        """Build from a mapping such as `os.environ`; a bad value raises `SettingsError`."""
        return cls(
            bootstrap_servers=env_str(
                env, "KAFKA_BOOTSTRAP_SERVERS", defaults.KAFKA_BOOTSTRAP_SERVERS
            ),
            database_url=env_str(env, "DATABASE_URL", defaults.DATABASE_URL),
            kirim_base_url=env_str(env, "KIRIM_BASE_URL", defaults.KIRIM_BASE_URL),
            kirim_api_key=env_str(env, "KIRIM_API_KEY", defaults.KIRIM_API_KEY),
            quota_window_seconds=env_int(
                env, "QUOTA_WINDOW_SECONDS", defaults.QUOTA_WINDOW_SECONDS, minimum=1
            ),
            metrics_host=env_str(env, "CONSUMER_METRICS_HOST", defaults.BIND_HOST),
            metrics_port=env_port(env, "CONSUMER_METRICS_PORT", defaults.CONSUMER_METRICS_PORT),
            db_pool_size=env_int(env, "CONSUMER_DB_POOL_SIZE", 12, minimum=2),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            migrate_on_start=env_bool(env, "CONSUMER_MIGRATE", True),
            ensure_topics_on_start=env_bool(env, "CONSUMER_ENSURE_TOPICS", True),
            intake_enabled=env_bool(env, "INTAKE_ENABLED", True),
            requests_topic=env_str(env, "REQUESTS_TOPIC", defaults.REQUESTS_TOPIC),
            requests_dlq_topic=env_str(env, "REQUESTS_DLQ_TOPIC", defaults.REQUESTS_DLQ_TOPIC),
            requests_partitions=env_int(env, "REQUESTS_TOPIC_PARTITIONS", 6, minimum=1),
            dlq_partitions=env_int(env, "REQUESTS_DLQ_TOPIC_PARTITIONS", 1, minimum=1),
            consumer_group=env_str(env, "CONSUMER_GROUP", defaults.CONSUMER_GROUP),
            intake_workers=env_int(env, "INTAKE_WORKERS", 2, minimum=1),
            intake_buffer_events=env_int(env, "INTAKE_BUFFER_EVENTS", 8, minimum=1),
            intake_commit_interval_seconds=env_float(
                env, "INTAKE_COMMIT_INTERVAL_SECONDS", 1.0, minimum=0.01
            ),
            intake_session_timeout_ms=env_int(
                env, "INTAKE_SESSION_TIMEOUT_MS", 10_000, minimum=1_000
            ),
            intake_max_poll_interval_ms=env_int(
                env, "INTAKE_MAX_POLL_INTERVAL_MS", 300_000, minimum=1_000
            ),
            intake_fetch_max_bytes=env_int(
                env, "INTAKE_FETCH_MAX_BYTES", 8 * 1024 * 1024, minimum=1024 * 1024
            ),
            intake_grace_seconds=env_float(env, "INTAKE_GRACE_SECONDS", 10.0, minimum=0.0),
            intake_stall_seconds=env_float(env, "INTAKE_STALL_SECONDS", 120.0, minimum=1.0),
            intake_stall_exit=env_bool(env, "INTAKE_STALL_EXIT", True),
            intake_analyze_every_rows=env_int(env, "INTAKE_ANALYZE_EVERY_ROWS", 50_000, minimum=0),
            intake_until_idle=env_bool(env, "INTAKE_UNTIL_IDLE", False),
            intake_max_events=env_int(env, "INTAKE_MAX_EVENTS", 0, minimum=0),
            accounts_cache_seconds=env_float(env, "ACCOUNTS_CACHE_SECONDS", 60.0, minimum=0.0),
            accounts_stale_seconds=env_float(env, "ACCOUNTS_STALE_SECONDS", 600.0, minimum=0.0),
            accounts_timeout_seconds=env_float(env, "ACCOUNTS_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            accounts_retry_max_seconds=env_float(
                env, "ACCOUNTS_RETRY_MAX_SECONDS", 10.0, minimum=0.0
            ),
            accounts_alert_seconds=env_float(env, "ACCOUNTS_ALERT_SECONDS", 60.0, minimum=1.0),
            dispatcher_enabled=env_bool(env, "DISPATCH_ENABLED", True),
            dispatch=DispatchSettings.from_env(env),
        )


def help_defaults(settings: ConsumerSettings) -> dict[str, str]:
    """Defaults for `--help` that the readers cannot state: values built from an empty
    variable, read off `settings` as built from an empty environment."""
    dispatch = settings.dispatch
    table = ",".join(
        f"{'unlimited' if tier >= UNLIMITED else tier}:{count}"
        for tier, count in sorted(dispatch.concurrency.items())
    )
    learned = "unset: learned from GET /v1/me"
    return {
        "DISPATCH_CONCURRENCY": table,
        "KIRIM_WRITE_PER_MINUTE": learned,
        "KIRIM_READ_PER_MINUTE": learned,
        "DISPATCH_SENDERS": "empty: every number",
        "QUOTA_BUDGET_GROUPS": "empty: one budget per number",
    }
