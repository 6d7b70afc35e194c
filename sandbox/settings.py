"""`SandboxSettings`: everything the sandbox starts with, built once from a mapping.

Precedence, lowest first: `RuntimeConfig` defaults < `SANDBOX_CONFIG` (a
whole config document, JSON text or a file path) < the individual variables
below < command-line flags (`flags.py` turns them into the same names).
Values that hold JSON (`SANDBOX_ACCOUNTS`, `SANDBOX_TEMPLATES`,
`SANDBOX_FAULTS`, `SANDBOX_CONFIG`) are JSON text when they start with `{`,
otherwise a path to a JSON file. `SANDBOX_OUTCOME_MIX`, `SANDBOX_FORCED_OUTCOMES`
and `SANDBOX_DELAYS` take JSON or `key=value,key=value`. A bad value raises
`SettingsError` naming the variable. docs/sandbox.md lists every variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from runtime import defaults
from runtime.env import SettingsError, env_float, env_int, env_list, env_str
from runtime.usage import shown_default
from sandbox.config import ConfigError, RuntimeConfig, merge_patch, parse_config

PLANS: Final[dict[str, tuple[int, int]]] = {
    "free": (60, 600),
    "pro": (600, 6000),
    "enterprise": (6000, 60000),
}


@dataclass(frozen=True, kw_only=True)
class SandboxSettings:
    host: str = defaults.BIND_HOST
    port: int = defaults.SANDBOX_PORT
    log_level: str = "INFO"
    webhook_concurrency: int = 16
    webhook_queue_size: int = 1024
    webhook_backlog_max: int = 1_000_000
    max_messages: int = 200_000
    config: RuntimeConfig = field(default_factory=RuntimeConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SandboxSettings:
        document = _config_document(env)
        try:
            config = parse_config(document)
        except ConfigError as exc:
            raise SettingsError(f"sandbox configuration: {exc}") from None
        return cls(
            host=env_str(env, "SANDBOX_HOST", defaults.BIND_HOST),
            port=env_int(env, "SANDBOX_PORT", defaults.SANDBOX_PORT, minimum=0),
            log_level=env_str(env, "SANDBOX_LOG_LEVEL", "INFO").upper(),
            webhook_concurrency=env_int(env, "SANDBOX_WEBHOOK_CONCURRENCY", 16, minimum=1),
            webhook_queue_size=env_int(env, "SANDBOX_WEBHOOK_QUEUE_SIZE", 1024, minimum=1),
            webhook_backlog_max=env_int(env, "SANDBOX_WEBHOOK_BACKLOG_MAX", 1_000_000, minimum=1),
            max_messages=env_int(env, "SANDBOX_MAX_MESSAGES", 200_000, minimum=1),
            config=config,
        )


def _present(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


def _json_value(env: Mapping[str, str], name: str) -> Any:
    raw = env[name].strip()
    try:
        text = raw if raw.startswith("{") else Path(raw).read_text()
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {raw!r}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise SettingsError(f"{name} is not valid JSON: {exc}") from None


def _pairs(env: Mapping[str, str], name: str, *, numeric: bool) -> dict[str, Any]:
    raw = env[name].strip()
    if raw.startswith("{"):
        value = _json_value(env, name)
        if not isinstance(value, dict):
            raise SettingsError(f"{name} must be a JSON object")
        return value
    pairs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{name}: expected key=value, got {item!r}")
        try:
            pairs[key.strip()] = float(value) if numeric else value.strip()
        except ValueError:
            raise SettingsError(f"{name}: {value!r} is not a number") from None
    return pairs


def _config_document(env: Mapping[str, str]) -> dict[str, Any]:
    base: Any = _json_value(env, "SANDBOX_CONFIG") if _present(env, "SANDBOX_CONFIG") else {}
    if not isinstance(base, dict):
        raise SettingsError("SANDBOX_CONFIG must hold a JSON object")
    patch: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        *parents, leaf = path.split(".")
        node = patch
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value

    if _present(env, "KIRIM_API_KEY"):
        put("api_key", env_str(env, "KIRIM_API_KEY", defaults.KIRIM_API_KEY))
    if _present(env, "SANDBOX_EXPIRED_API_KEYS"):
        put("expired_api_keys", list(env_list(env, "SANDBOX_EXPIRED_API_KEYS", "")))
    if _present(env, "KIRIM_WEBHOOK_SECRETS"):
        put("webhooks.secrets", list(env_list(env, "KIRIM_WEBHOOK_SECRETS", "")))
    # Unlike the other variables, an empty SANDBOX_WEBHOOK_URL means something: no webhooks.
    if "SANDBOX_WEBHOOK_URL" in env:
        put("webhooks.url", env["SANDBOX_WEBHOOK_URL"].strip())
    elif "url" not in base.get("webhooks", {}):
        put("webhooks.url", defaults.SANDBOX_WEBHOOK_URL)
    for name, path in _STRINGS.items():
        if _present(env, name):
            put(path, env[name].strip())
    for name, path in _NUMBERS.items():
        if _present(env, name):
            put(path, env_float(env, name, 0.0))
    for name, path in _INTEGERS.items():
        if _present(env, name):
            put(path, env_int(env, name, 0))
    # A plan sets both limits; explicit limits (env, then the config document) win.
    base_limits: dict[str, Any] = base.get("rate_limits", {})
    plan = env.get("SANDBOX_PLAN", "").strip()
    chosen = plan or base_limits.get("plan", "pro")
    if chosen not in PLANS:
        raise SettingsError(f"SANDBOX_PLAN must be one of {sorted(PLANS)}, got {chosen!r}")
    write, read = PLANS[chosen]
    if not plan:
        write = base_limits.get("write_per_minute", write)
        read = base_limits.get("read_per_minute", read)
    put("rate_limits.plan", chosen)
    put("rate_limits.write_per_minute", env_int(env, "SANDBOX_WRITE_PER_MINUTE", write, minimum=1))
    put("rate_limits.read_per_minute", env_int(env, "SANDBOX_READ_PER_MINUTE", read, minimum=1))
    window = (
        env.get("SANDBOX_QUOTA_WINDOW_SECONDS", "").strip()
        or env.get("QUOTA_WINDOW_SECONDS", "").strip()
    )
    if window:
        name = "SANDBOX_QUOTA_WINDOW_SECONDS"
        put("quota.window_seconds", env_float({name: window}, name, 0.0))
    if _present(env, "SANDBOX_WEBHOOK_SCHEDULE"):
        schedule = env_list(env, "SANDBOX_WEBHOOK_SCHEDULE", "")
        put("webhooks.schedule_seconds", [_number("SANDBOX_WEBHOOK_SCHEDULE", s) for s in schedule])
    for name, path in _DOCUMENTS.items():
        if _present(env, name):
            put(path, _json_value(env, name))
    if _present(env, "SANDBOX_OUTCOME_MIX"):
        put("outcomes.mix", _pairs(env, "SANDBOX_OUTCOME_MIX", numeric=True))
    if _present(env, "SANDBOX_FORCED_OUTCOMES"):
        put("outcomes.forced", _pairs(env, "SANDBOX_FORCED_OUTCOMES", numeric=False))
    if _present(env, "SANDBOX_DELAYS"):
        put("outcomes.delays", _pairs(env, "SANDBOX_DELAYS", numeric=True))
    merged: dict[str, Any] = merge_patch(base, patch)
    return merged


def _number(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None


_STRINGS: Final = {
    "SANDBOX_QUOTA_EXCEEDED_MODE": "quota.exceeded_mode",
    "SANDBOX_PARAM_MISMATCH": "param_mismatch",
    "SANDBOX_TIER_ENCODING": "tier_encoding",
    "SANDBOX_WEBHOOK_SIGNATURE_HEADER": "webhooks.signature_header",
}
_NUMBERS: Final = {
    "SANDBOX_TIME_SCALE": "time_scale",
    "SANDBOX_READ_SHARE": "outcomes.read_share",
    "SANDBOX_IDEMPOTENCY_TTL_SECONDS": "idempotency.ttl_seconds",
    "SANDBOX_IDEMPOTENCY_WAIT_SECONDS": "idempotency.in_progress_wait_seconds",
    "SANDBOX_WEBHOOK_TIMEOUT_SECONDS": "webhooks.timeout_seconds",
    "SANDBOX_WEBHOOK_JITTER": "webhooks.jitter",
    "SANDBOX_WEBHOOK_DUPLICATE_PROBABILITY": "webhooks.duplicate_probability",
    "SANDBOX_WEBHOOK_REORDER_PROBABILITY": "webhooks.reorder_probability",
    "SANDBOX_WEBHOOK_REORDER_DELAY_SECONDS": "webhooks.reorder_delay_seconds",
    "SANDBOX_WEBHOOK_SKIP_DELIVERED_PROBABILITY": "webhooks.skip_delivered_probability",
    "SANDBOX_WEBHOOK_CLOCK_SKEW_SECONDS": "webhooks.clock_skew_seconds",
}
_INTEGERS: Final = {
    "SANDBOX_SEED": "outcomes.seed",
    "SANDBOX_ACCEPT_STATUS": "accept_status",
}
_DOCUMENTS: Final = {
    "SANDBOX_ACCOUNTS": "accounts",
    "SANDBOX_TEMPLATES": "templates",
    "SANDBOX_FAULTS": "faults",
}


# For `--help` only: where each variable lands in the config document, so that its
# default can be read off the config built from an empty environment.
_HELP_PATHS: Final = {
    **_STRINGS,
    **_NUMBERS,
    **_INTEGERS,
    **_DOCUMENTS,
    "KIRIM_API_KEY": "api_key",
    "SANDBOX_EXPIRED_API_KEYS": "expired_api_keys",
    "KIRIM_WEBHOOK_SECRETS": "webhooks.secrets",
    "SANDBOX_WEBHOOK_URL": "webhooks.url",
    "SANDBOX_PLAN": "rate_limits.plan",
    "SANDBOX_QUOTA_WINDOW_SECONDS": "quota.window_seconds",
    "QUOTA_WINDOW_SECONDS": "quota.window_seconds",
    "SANDBOX_WEBHOOK_SCHEDULE": "webhooks.schedule_seconds",
    "SANDBOX_OUTCOME_MIX": "outcomes.mix",
    "SANDBOX_FORCED_OUTCOMES": "outcomes.forced",
    "SANDBOX_DELAYS": "outcomes.delays",
}
_HELP_WIDTH: Final = 60


def help_defaults(settings: SandboxSettings) -> dict[str, str]:
    """The defaults `--help` shows for variables that override the config document."""
    document: Any = msgspec.to_builtins(settings.config)
    shown = {"SANDBOX_CONFIG": "unset: the built-in configuration"}
    for name, path in _HELP_PATHS.items():
        value = document
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if isinstance(value, list | tuple):
            text = ",".join(shown_default(item) for item in value)
        elif isinstance(value, str | int | float | bool):
            text = shown_default(value)
        else:
            text = msgspec.json.encode(value).decode()
        shown[name] = text if len(text) <= _HELP_WIDTH else text[: _HELP_WIDTH - 3] + "..."
    return shown
