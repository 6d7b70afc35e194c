"""console.settings: ConsoleSettings.from_env and the CLI settings an action runs with."""

from __future__ import annotations

import base64

import pytest

from cli.settings import CliSettings
from console.access import Role, User
from console.settings import DEFAULT_PORT, ConsoleSettings
from runtime import defaults
from runtime.env import EnvRecorder, SettingsError

TOKEN = "console-test-token-0001"
ANA = "ana-viewer-token-00001"
SECRET = bytes(range(100, 132))


def _built(**env: str) -> ConsoleSettings:
    return ConsoleSettings.from_env({"CONSOLE_TOKEN": TOKEN, **env})


def test_defaults() -> None:
    settings = _built()
    assert settings.database_url == defaults.DATABASE_URL
    assert settings.bootstrap_servers == defaults.KAFKA_BOOTSTRAP_SERVERS
    assert settings.requests_topic == defaults.REQUESTS_TOPIC
    assert settings.requests_dlq_topic == defaults.REQUESTS_DLQ_TOPIC
    assert settings.kirim_base_url == defaults.KIRIM_BASE_URL
    assert settings.kirim_api_key == defaults.KIRIM_API_KEY
    assert settings.host == defaults.BIND_HOST
    assert settings.port == DEFAULT_PORT == 8095
    assert settings.session_seconds == 12 * 3600
    assert settings.secure_cookies is False
    assert settings.live_interval_seconds == 2.0
    assert settings.quota_window_seconds == defaults.QUOTA_WINDOW_SECONDS
    assert settings.timeout_seconds == 15.0
    assert settings.db_pool_size == 8
    assert settings.log_level == "INFO"
    assert settings.credentials.by_token == {TOKEN: User("operator", Role.OPERATOR)}
    assert len(settings.secret) == 32


def test_every_variable_is_read() -> None:
    settings = ConsoleSettings.from_env(
        {
            "DATABASE_URL": "postgresql://console@db:5433/ledger",
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "REQUESTS_TOPIC": "t.requests",
            "REQUESTS_DLQ_TOPIC": "t.requests.dlq",
            "KIRIM_BASE_URL": "https://kirim.example/v1",
            "KIRIM_API_KEY": "kdv_live_" + "k" * 24,
            "CONSOLE_HOST": "0.0.0.0",
            "CONSOLE_PORT": "9000",
            "CONSOLE_SESSION_HOURS": "2",
            "CONSOLE_SECURE_COOKIES": "yes",
            "CONSOLE_LIVE_INTERVAL": "0.5",
            "QUOTA_WINDOW_SECONDS": "600",
            "CONSOLE_TIMEOUT": "3.5",
            "CONSOLE_DB_POOL_SIZE": "4",
            "LOG_LEVEL": "DEBUG",
            "CONSOLE_TOKEN": f" {TOKEN} ",
            "CONSOLE_USERS": f"ana:viewer:{ANA}",
            "CONSOLE_SECRET": SECRET.hex(),
        }
    )
    assert settings == ConsoleSettings(
        database_url="postgresql://console@db:5433/ledger",
        bootstrap_servers="k1:9092,k2:9092",
        requests_topic="t.requests",
        requests_dlq_topic="t.requests.dlq",
        kirim_base_url="https://kirim.example/v1",
        kirim_api_key="kdv_live_" + "k" * 24,
        host="0.0.0.0",
        port=9000,
        credentials=settings.credentials,
        secret=SECRET,
        session_seconds=2 * 3600,
        secure_cookies=True,
        live_interval_seconds=0.5,
        quota_window_seconds=600,
        timeout_seconds=3.5,
        db_pool_size=4,
        log_level="DEBUG",
    )
    assert settings.credentials.by_token == {
        TOKEN: User("operator", Role.OPERATOR),
        ANA: User("ana", Role.VIEWER),
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONSOLE_PORT", "web"),
        ("CONSOLE_PORT", "-1"),
        ("CONSOLE_PORT", "65536"),
        ("CONSOLE_SESSION_HOURS", "0"),
        ("CONSOLE_SESSION_HOURS", "1.5"),
        ("CONSOLE_SECURE_COOKIES", "maybe"),
        ("CONSOLE_LIVE_INTERVAL", "0.1"),
        ("CONSOLE_LIVE_INTERVAL", "fast"),
        ("QUOTA_WINDOW_SECONDS", "0"),
        ("CONSOLE_TIMEOUT", "0"),
        ("CONSOLE_TIMEOUT", "soon"),
        ("CONSOLE_DB_POOL_SIZE", "1"),
        ("CONSOLE_DB_POOL_SIZE", "many"),
        ("DATABASE_URL", " "),
        ("KAFKA_BOOTSTRAP_SERVERS", ""),
        ("REQUESTS_TOPIC", " "),
        ("REQUESTS_DLQ_TOPIC", " "),
        ("KIRIM_BASE_URL", " "),
        ("KIRIM_API_KEY", " "),
        ("CONSOLE_HOST", " "),
        ("LOG_LEVEL", " "),
        ("CONSOLE_TOKEN", "too-short"),
        ("CONSOLE_USERS", "ana:admin:0123456789abcdef0"),
        ("CONSOLE_USERS", "ana"),
        ("CONSOLE_SECRET", "not-32-bytes"),
        ("CONSOLE_SECRET", SECRET[:16].hex()),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        _built(**{name: value})
    assert name in str(refused.value)


@pytest.mark.parametrize("env", [{}, {"CONSOLE_TOKEN": " ", "CONSOLE_USERS": " , "}])
def test_a_credential_is_required(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as refused:
        ConsoleSettings.from_env(env)
    assert str(refused.value) == "set CONSOLE_TOKEN or CONSOLE_USERS: the console needs one"


def test_for_help_needs_no_credential() -> None:
    settings = ConsoleSettings.from_env({}, for_help=True)
    assert settings.credentials.by_token == {}
    assert settings.credentials.user_of("") is None
    assert settings.port == DEFAULT_PORT


def test_for_help_lists_what_is_read() -> None:
    recorder = EnvRecorder()
    ConsoleSettings.from_env(recorder, for_help=True)
    read = {variable.name: variable.default for variable in recorder.variables}
    assert {"CONSOLE_TOKEN", "CONSOLE_USERS", "CONSOLE_SECRET"} <= set(read)
    assert read["CONSOLE_PORT"] == DEFAULT_PORT
    assert read["CONSOLE_SESSION_HOURS"] == 12
    assert read["DATABASE_URL"] == defaults.DATABASE_URL


def test_for_help_still_refuses_a_bad_credential() -> None:
    with pytest.raises(SettingsError, match="CONSOLE_TOKEN"):
        ConsoleSettings.from_env({"CONSOLE_TOKEN": "short"}, for_help=True)


@pytest.mark.parametrize(
    "text",
    [
        SECRET.hex(),
        f"  {SECRET.hex().upper()}  ",
        base64.urlsafe_b64encode(SECRET).decode(),
        base64.urlsafe_b64encode(SECRET).decode().rstrip("="),
    ],
)
def test_the_secret_is_console_secret(text: str) -> None:
    assert _built(CONSOLE_SECRET=text).secret == SECRET


def test_without_console_secret_each_start_has_its_own() -> None:
    first, second = _built(), _built(CONSOLE_SECRET="  ")
    assert len(first.secret) == len(second.secret) == 32
    assert first.secret != second.secret


def test_repr_shows_no_secret() -> None:
    text = repr(_built(CONSOLE_USERS=f"ana:viewer:{ANA}", CONSOLE_SECRET=SECRET.hex()))
    for secret in (TOKEN, ANA, defaults.KIRIM_API_KEY, repr(SECRET), SECRET.hex()):
        assert secret not in text


def test_cli_settings_of_an_action() -> None:
    settings = _built(
        DATABASE_URL="postgresql://console@db/ledger",
        KAFKA_BOOTSTRAP_SERVERS="k1:9092",
        REQUESTS_TOPIC="t.requests",
        REQUESTS_DLQ_TOPIC="t.requests.dlq",
        QUOTA_WINDOW_SECONDS="600",
        CONSOLE_TIMEOUT="3.5",
    )
    cli = settings.cli("ana")
    assert cli == CliSettings(
        bootstrap_servers="k1:9092",
        database_url="postgresql://console@db/ledger",
        requests_topic="t.requests",
        requests_dlq_topic="t.requests.dlq",
        quota_window_seconds=600,
        timeout_seconds=3.5,
        operator="ana",
    )
    assert settings.cli("bob").operator == "bob"
