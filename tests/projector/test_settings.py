"""`ProjectorSettings.from_env`: defaults of the contract, and bad values named at start."""

from __future__ import annotations

import pytest

from projector.settings import ProjectorSettings
from runtime.env import SettingsError


def test_defaults_follow_the_contract() -> None:
    settings = ProjectorSettings.from_env({})
    assert settings.topic == "kirim.message-status"
    assert settings.group_id == "broadcast-projector"
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9102)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROJECTOR_BATCH_SIZE", "0"),
        ("PROJECTOR_METRICS_PORT", "x"),
        ("PROJECTOR_STALL_SECONDS", "0.5"),
        ("DATABASE_URL", "  "),
    ],
)
def test_a_bad_value_fails_at_start_and_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        ProjectorSettings.from_env({name: value})
