"""The console's configuration, read once from the environment in `__main__`."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cli.settings import CliSettings
from console.access import AccessConfigError, Credentials, decode_secret
from runtime import defaults
from runtime.env import SettingsError, env_bool, env_float, env_int, env_port, env_str

DEFAULT_PORT = defaults.CONSOLE_PORT
DEFAULT_SESSION_HOURS = 12


@dataclass(frozen=True, kw_only=True)
class ConsoleSettings:
    """Everything `console.app.build` needs; immutable once built."""

    database_url: str = defaults.DATABASE_URL
    bootstrap_servers: str = defaults.KAFKA_BOOTSTRAP_SERVERS
    requests_topic: str = defaults.REQUESTS_TOPIC
    requests_dlq_topic: str = defaults.REQUESTS_DLQ_TOPIC
    kirim_base_url: str = defaults.KIRIM_BASE_URL
    kirim_api_key: str = field(default=defaults.KIRIM_API_KEY, repr=False)
    host: str = defaults.BIND_HOST
    port: int = DEFAULT_PORT
    credentials: Credentials
    # Signs session cookies and CSRF tokens; random per start unless set, so that
    # replicas (or a restart) keep sessions valid only when the operator wants them to.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    session_seconds: int = DEFAULT_SESSION_HOURS * 3600
    # Cookies only over HTTPS; off for a console on plain loopback HTTP.
    secure_cookies: bool = False
    # The live page's refresh of counts for a running campaign (server-sent events).
    live_interval_seconds: float = 2.0
    quota_window_seconds: int = defaults.QUOTA_WINDOW_SECONDS
    timeout_seconds: float = 15.0
    db_pool_size: int = 8
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, for_help: bool = False) -> ConsoleSettings:
        """Build from a mapping such as `os.environ`; a bad value raises `SettingsError`.
        A credential is required (`CONSOLE_TOKEN` or `CONSOLE_USERS`), except
        `for_help`, which only lists what is read."""
        # Empty is allowed for each (env_str refuses it); one credential is checked below.
        token = env.get("CONSOLE_TOKEN", "").strip()
        users = env.get("CONSOLE_USERS", "").strip()
        secret_text = env.get("CONSOLE_SECRET", "").strip()
        try:
            if for_help and not (token or users):
                credentials = Credentials({})
            else:
                credentials = Credentials.parse(token, users)
            secret = decode_secret(secret_text) if secret_text else secrets.token_bytes(32)
        except AccessConfigError as error:
            raise SettingsError(str(error)) from None
        return cls(
            database_url=env_str(env, "DATABASE_URL", defaults.DATABASE_URL),
            bootstrap_servers=env_str(
                env, "KAFKA_BOOTSTRAP_SERVERS", defaults.KAFKA_BOOTSTRAP_SERVERS
            ),
            requests_topic=env_str(env, "REQUESTS_TOPIC", defaults.REQUESTS_TOPIC),
            requests_dlq_topic=env_str(env, "REQUESTS_DLQ_TOPIC", defaults.REQUESTS_DLQ_TOPIC),
            kirim_base_url=env_str(env, "KIRIM_BASE_URL", defaults.KIRIM_BASE_URL),
            kirim_api_key=env_str(env, "KIRIM_API_KEY", defaults.KIRIM_API_KEY),
            host=env_str(env, "CONSOLE_HOST", defaults.BIND_HOST),
            port=env_port(env, "CONSOLE_PORT", DEFAULT_PORT),
            credentials=credentials,
            secret=secret,
            session_seconds=3600
            * env_int(env, "CONSOLE_SESSION_HOURS", DEFAULT_SESSION_HOURS, minimum=1),
            secure_cookies=env_bool(env, "CONSOLE_SECURE_COOKIES", False),
            live_interval_seconds=env_float(env, "CONSOLE_LIVE_INTERVAL", 2.0, minimum=0.2),
            quota_window_seconds=env_int(
                env, "QUOTA_WINDOW_SECONDS", defaults.QUOTA_WINDOW_SECONDS, minimum=1
            ),
            timeout_seconds=env_float(env, "CONSOLE_TIMEOUT", 15.0, minimum=0.1),
            db_pool_size=env_int(env, "CONSOLE_DB_POOL_SIZE", 8, minimum=2),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
        )

    def cli(self, operator: str) -> CliSettings:
        """The CLI's settings for an action taken by `operator`: the console acts
        through the CLI's own functions (control events, retry, failures)."""
        return CliSettings(
            bootstrap_servers=self.bootstrap_servers,
            database_url=self.database_url,
            requests_topic=self.requests_topic,
            requests_dlq_topic=self.requests_dlq_topic,
            quota_window_seconds=self.quota_window_seconds,
            timeout_seconds=self.timeout_seconds,
            operator=operator,
        )
