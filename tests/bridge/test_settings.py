"""`BridgeSettings.from_env`: defaults of the contract, and bad values named at start."""

from __future__ import annotations

import pytest

from runtime import defaults
from runtime.env import SettingsError
from webhook_bridge.settings import BridgeSettings


def test_defaults_follow_the_contract() -> None:
    settings = BridgeSettings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.port == defaults.WEBHOOK_BRIDGE_PORT == 8081
    assert settings.path == "/kirim-hook"
    assert settings.topic == "kirim.message-status"
    assert settings.secrets == (defaults.KIRIM_WEBHOOK_SECRETS,)
    assert settings.tolerance_seconds == 300


def test_secrets_are_comma_separated_for_rotation() -> None:
    settings = BridgeSettings.from_env({"KIRIM_WEBHOOK_SECRETS": " whsec_new , whsec_old ,"})
    assert settings.secrets == ("whsec_new", "whsec_old")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_BRIDGE_PORT", "http"),
        ("WEBHOOK_PATH", "kirim-hook"),
        ("KIRIM_WEBHOOK_SECRETS", " , "),
        ("WEBHOOK_MAX_BODY_BYTES", "10"),
        ("WEBHOOK_PRODUCE_TIMEOUT_SECONDS", "0"),
        ("WEBHOOK_MAX_IN_FLIGHT", "0"),
    ],
)
def test_a_bad_value_fails_at_start_and_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        BridgeSettings.from_env({name: value})
