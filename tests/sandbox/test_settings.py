"""Configuration: merge patches, validation, environment variables and flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import defaults
from runtime.env import SettingsError
from sandbox.config import (
    ConfigError,
    RuntimeConfig,
    merge_patch,
    parse_config,
    patch_config,
    redacted,
)
from sandbox.flags import overrides
from sandbox.settings import SandboxSettings

# RFC 7396, appendix A.
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_EXAMPLES)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=5))
def test_merge_patch_is_idempotent(patch: dict[str, Any]) -> None:
    base = {"x": 1, "y": {"z": 2}}
    once = merge_patch(base, patch)
    assert merge_patch(once, patch) == once
    assert base == {"x": 1, "y": {"z": 2}}


def test_defaults_match_the_design() -> None:
    config = RuntimeConfig()
    assert list(config.accounts) == [defaults.DEFAULT_PHONE_NUMBER_ID]
    assert config.accounts[defaults.DEFAULT_PHONE_NUMBER_ID].status == "connected"
    template = config.templates[defaults.DEFAULT_TEMPLATE]
    assert (template.languages, template.body_params) == ((defaults.DEFAULT_TEMPLATE_LANGUAGE,), 1)
    assert (config.rate_limits.write_per_minute, config.rate_limits.read_per_minute) == (600, 6000)
    assert config.outcomes.mix == {}
    assert config.api_key == defaults.KIRIM_API_KEY


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        (
            {"outcomes": {"mix": {"recipient_blocked": 0.7, "recipient_not_on_whatsapp": 0.5}}},
            "more than 1",
        ),
        ({"outcomes": {"mix": {"nonsense": 0.1}}}, "unknown failure codes"),
        ({"outcomes": {"forced": {"62": "read"}}}, "prefix"),
        ({"outcomes": {"forced": {"+62": "exploded"}}}, "unknown outcome"),
        ({"accounts": {"abc": {}}}, "phone_number_id"),
        ({"accounts": {"1234567": {"phone_number": "0811"}}}, "E.164"),
        ({"faults": {"server_errors": {"probability": 2}}}, "<= 1.0"),
        ({"webhooks": {"url": "ftp://x"}}, "http"),
        ({"time_scale": 0}, "> 0"),
        ({"surprise": 1}, "unknown field"),
    ],
)
def test_bad_patches_are_refused_with_a_reason(patch: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        patch_config(RuntimeConfig(), patch)


def test_a_patch_touches_only_what_it_names() -> None:
    config = patch_config(
        RuntimeConfig(),
        {"accounts": {defaults.DEFAULT_PHONE_NUMBER_ID: {"status": "disconnected"}}},
    )
    account = config.accounts[defaults.DEFAULT_PHONE_NUMBER_ID]
    assert account.status == "disconnected"
    assert account.messaging_tier == 1000


def test_redacted_masks_key_and_secrets() -> None:
    shown = redacted(parse_config({"webhooks": {"secrets": ["whsec_0123456789abcdef"]}}))
    assert defaults.KIRIM_API_KEY not in str(shown)
    assert "whsec_0123456789abcdef" not in str(shown)


def test_from_env_with_nothing_set_has_the_design_defaults() -> None:
    settings = SandboxSettings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8090)
    assert settings.config.webhooks.url == defaults.SANDBOX_WEBHOOK_URL
    assert settings.config.webhooks.secrets == (defaults.KIRIM_WEBHOOK_SECRETS,)


def test_from_env_reads_every_kind_of_variable(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(
        '{"1234567": {"phone_number": "+6281234567", "messaging_tier": "unlimited"}}'
    )
    settings = SandboxSettings.from_env(
        {
            "SANDBOX_PORT": "0",
            "KIRIM_API_KEY": "kdv_live_xxxxxxxxxxxxxxxxxxxxxxxx",
            "KIRIM_WEBHOOK_SECRETS": "whsec_a, whsec_b",
            "SANDBOX_WEBHOOK_URL": "",
            "SANDBOX_PLAN": "free",
            "SANDBOX_READ_PER_MINUTE": "900",
            "QUOTA_WINDOW_SECONDS": "30",
            "SANDBOX_TIME_SCALE": "10",
            "SANDBOX_SEED": "7",
            "SANDBOX_OUTCOME_MIX": "recipient_blocked=0.1,recipient_not_on_whatsapp=0.05",
            "SANDBOX_FORCED_OUTCOMES": '{"+62800": "recipient_blocked"}',
            "SANDBOX_DELAYS": "sent=0.1,read=2",
            "SANDBOX_ACCOUNTS": str(accounts),
            "SANDBOX_QUOTA_EXCEEDED_MODE": "sync",
            "SANDBOX_WEBHOOK_SCHEDULE": "0,1,2",
            "SANDBOX_FAULTS": '{"server_errors": {"probability": 0.5}}',
        }
    )
    config = settings.config
    assert settings.port == 0
    assert config.api_key == "kdv_live_xxxxxxxxxxxxxxxxxxxxxxxx"
    assert config.webhooks.secrets == ("whsec_a", "whsec_b")
    assert config.webhooks.url == ""
    assert (
        config.rate_limits.plan,
        config.rate_limits.write_per_minute,
        config.rate_limits.read_per_minute,
    ) == ("free", 60, 900)
    assert config.quota.window_seconds == 30
    assert config.quota.exceeded_mode == "sync"
    assert config.time_scale == 10
    assert config.outcomes.seed == 7
    assert config.outcomes.mix == {"recipient_blocked": 0.1, "recipient_not_on_whatsapp": 0.05}
    assert config.outcomes.forced == {"+62800": "recipient_blocked"}
    assert (
        config.outcomes.delays.sent,
        config.outcomes.delays.read,
        config.outcomes.delays.delivered,
    ) == (0.1, 2.0, 0.5)
    assert list(config.accounts) == ["1234567"]
    assert config.accounts["1234567"].messaging_tier == "unlimited"
    assert config.webhooks.schedule_seconds == (0.0, 1.0, 2.0)
    assert config.faults.server_errors.probability == 0.5


def test_sandbox_quota_window_beats_the_shared_one() -> None:
    env = {"QUOTA_WINDOW_SECONDS": "30", "SANDBOX_QUOTA_WINDOW_SECONDS": "5"}
    assert SandboxSettings.from_env(env).config.quota.window_seconds == 5


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SANDBOX_PORT": "eighty"}, "SANDBOX_PORT"),
        ({"SANDBOX_TIME_SCALE": "fast"}, "SANDBOX_TIME_SCALE"),
        ({"SANDBOX_PLAN": "gold"}, "SANDBOX_PLAN"),
        ({"SANDBOX_ACCOUNTS": "/nonexistent/accounts.json"}, "SANDBOX_ACCOUNTS"),
        ({"SANDBOX_TEMPLATES": "{not json"}, "SANDBOX_TEMPLATES"),
        ({"SANDBOX_OUTCOME_MIX": "recipient_blocked"}, "SANDBOX_OUTCOME_MIX"),
        ({"SANDBOX_WRITE_PER_MINUTE": "0"}, "SANDBOX_WRITE_PER_MINUTE"),
        ({"SANDBOX_QUOTA_EXCEEDED_MODE": "later"}, "sandbox configuration"),
    ],
)
def test_bad_variables_fail_with_their_name(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        SandboxSettings.from_env(env)


def test_flags_override_variables() -> None:
    env = {"SANDBOX_PORT": "9000", **overrides(["--port", "9001", "--no-webhooks", "--seed", "3"])}
    settings = SandboxSettings.from_env(env)
    assert settings.port == 9001
    assert settings.config.webhooks.url == ""
    assert settings.config.outcomes.seed == 3


def test_python_m_sandbox_help_lists_the_variables() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "SANDBOX_WEBHOOK_URL" in result.stdout
    assert "KIRIM_API_KEY" in result.stdout
