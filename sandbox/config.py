"""The sandbox's run-time configuration: one frozen document, replaced whole on change.

`RuntimeConfig` is what `GET /_sandbox/config` shows and `PATCH /_sandbox/config`
changes (JSON merge patch, RFC 7396: objects merge, arrays and scalars replace,
`null` restores a field's default). Every change goes through `parse_config`,
so a bad patch is refused with a message and the running config stays as it was.
Accounts and templates are objects keyed by `phone_number_id` and template
name, so a patch can touch one of them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from runtime import defaults
from sandbox.catalog import FAILURES, FORCEABLE_OUTCOMES

Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Seconds = Annotated[float, Meta(ge=0.0)]
Count = Annotated[int, Meta(ge=0)]
PerMinute = Annotated[int, Meta(ge=1)]

DEFAULT_RETRY_SCHEDULE = (0.0, 10.0, 30.0, 120.0, 600.0, 3600.0, 21600.0, 86400.0)
_E164_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
_PHONE_NUMBER_ID = re.compile(r"^[0-9]{6,20}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class ConfigError(ValueError):
    """A configuration document (env, file or patch) the sandbox cannot use."""


class Account(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone_number: str = "+6281100000001"
    name: str = "Sandbox Store"
    status: Literal["connected", "disconnected", "degraded", "onboarding", "pending"] = "connected"
    # Unique recipients per rolling window; "unlimited" has no cap.
    messaging_tier: Annotated[int, Meta(ge=1)] | Literal["unlimited"] = 1000
    quality_rating: Literal["GREEN", "YELLOW", "RED"] = "GREEN"
    # Numbers sharing a group share one quota (Meta's per-portfolio rule); None: own quota.
    quota_group: str | None = None
    # The key's organisation may not use this number: sends answer 403.
    forbidden: bool = False
    waba_id: str = "102290129340398"
    # Meta's per-number throughput; sends beyond it fail with throughput_limited. None: off.
    throughput_per_second: Annotated[float, Meta(gt=0)] | None = None


class Template(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    languages: tuple[str, ...] = (defaults.DEFAULT_TEMPLATE_LANGUAGE,)
    body_params: Count = 1
    header: Literal["none", "text", "image", "video", "document"] = "none"
    status: Literal["approved", "paused", "disabled"] = "approved"
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"] = "MARKETING"
    # Failure shares of this template's accepted sends, in place of `outcomes.mix` (a
    # template recipients block or Meta holds back, 131049); empty: `outcomes.mix`.
    outcome_mix: dict[str, Probability] = {}


class RateLimits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plan: Literal["free", "pro", "enterprise"] = "pro"
    write_per_minute: PerMinute = 600
    read_per_minute: PerMinute = 6000


class Quota(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window_seconds: Annotated[float, Meta(gt=0)] = float(defaults.QUOTA_WINDOW_SECONDS)
    exceeded_mode: Literal["async", "sync"] = "async"


class Idempotency(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ttl_seconds: Annotated[float, Meta(gt=0)] = 86400.0
    in_progress_wait_seconds: Seconds = 30.0


class Delays(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sandbox seconds between statuses (divided by `time_scale` on the wall clock)."""

    sent: Seconds = 0.2
    delivered: Seconds = 0.5
    read: Seconds = 1.0
    failed: Seconds = 0.3


class Outcomes(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    seed: int = 0
    # Outcome name -> share of accepted sends; the rest succeed.
    mix: dict[str, Probability] = {}
    # E.164 prefix (with "+") -> outcome name; the longest matching prefix wins.
    forced: dict[str, str] = {}
    # Share of delivered messages that are also read (read receipts on).
    read_share: Probability = 1.0
    delays: Delays = field(default_factory=Delays)


class Trigger(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fire for the next `next` requests in scope, then with `probability`."""

    next: Count = 0
    probability: Probability = 0.0


class ServerErrors(Trigger, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Literal[500, 502, 503, 504] = 503
    code: Literal["internal_error", "whatsapp_upstream_error"] = "internal_error"


class LateAnswers(Trigger, frozen=True, kw_only=True, forbid_unknown_fields=True):
    delay_seconds: Seconds = 15.0


class DroppedConnections(Trigger, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # True: the send is processed (and stored) before the connection is dropped.
    after_processing: bool = False


AnomalyKind = Literal[
    "reused_id", "missing_id", "non_json", "html", "oversized", "unknown_code", "nul_id"
]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = (
    "reused_id",
    "missing_id",
    "non_json",
    "html",
    "oversized",
    "unknown_code",
    "nul_id",
)


class Anomalies(Trigger, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Answers a real API (or a proxy before it) may give that break a naive client."""

    # One is drawn (seeded rng) from this list each time the trigger fires; repeats weigh more.
    kinds: tuple[AnomalyKind, ...] = ANOMALY_KINDS
    # Capped so a typo cannot make every stored key hold gigabytes.
    oversized_bytes: Annotated[int, Meta(ge=1, le=64 * 1024 * 1024)] = 2 * 1024 * 1024
    unknown_status: Annotated[int, Meta(ge=400, le=499)] = 400
    unknown_code: Annotated[str, Meta(min_length=1, max_length=100)] = "unexpected_condition"


class Latency(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    fixed_ms: Seconds = 0.0
    jitter: Literal["none", "uniform", "exponential"] = "none"
    jitter_ms: Seconds = 0.0


class Faults(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # "send": only POST /v1/{id}/messages; "all": every /v1 request except /v1/health.
    scope: Literal["send", "all"] = "send"
    server_errors: ServerErrors = field(default_factory=ServerErrors)
    latency: Latency = field(default_factory=Latency)
    late_answers: LateAnswers = field(default_factory=LateAnswers)
    dropped_connections: DroppedConnections = field(default_factory=DroppedConnections)
    # Sends only, whatever `scope`: the kinds are about a send's answer.
    anomalies: Anomalies = field(default_factory=Anomalies)


class Lifecycle(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Lifecycle quirks beyond the planned path."""

    # Multi-device: a message that failed is later delivered too (Meta reports both).
    delivered_after_failed_probability: Probability = 0.0
    # Sandbox seconds from the `failed` status to the `delivered` one.
    delivered_after_failed_delay_seconds: Seconds = 5.0


class Webhooks(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str = ""
    secrets: tuple[str, ...] = (defaults.KIRIM_WEBHOOK_SECRETS,)
    signature_header: Literal["X-Kirim-Signature", "X-Kirim-Signature-256"] = "X-Kirim-Signature"
    # Sandbox seconds before each attempt, counted from the previous attempt's end.
    schedule_seconds: tuple[Seconds, ...] = DEFAULT_RETRY_SCHEDULE
    jitter: Probability = 0.2
    timeout_seconds: Annotated[float, Meta(gt=0)] = 10.0
    duplicate_probability: Probability = 0.0
    reorder_probability: Probability = 0.0
    reorder_delay_seconds: Seconds = 5.0
    skip_delivered_probability: Probability = 0.0
    clock_skew_seconds: float = 0.0


def _default_accounts() -> dict[str, Account]:
    return {defaults.DEFAULT_PHONE_NUMBER_ID: Account()}


def _default_templates() -> dict[str, Template]:
    return {defaults.DEFAULT_TEMPLATE: Template()}


class RuntimeConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: str = defaults.KIRIM_API_KEY
    expired_api_keys: tuple[str, ...] = ()
    time_scale: Annotated[float, Meta(gt=0)] = 1.0
    accept_status: Literal[200, 201, 202] = 200
    tier_encoding: Literal["int", "string", "label"] = "int"
    # "async": a wrong parameter count is accepted, then fails; "sync": 400 at once.
    param_mismatch: Literal["async", "sync"] = "async"
    rate_limits: RateLimits = field(default_factory=RateLimits)
    quota: Quota = field(default_factory=Quota)
    idempotency: Idempotency = field(default_factory=Idempotency)
    accounts: dict[str, Account] = field(default_factory=_default_accounts)
    templates: dict[str, Template] = field(default_factory=_default_templates)
    outcomes: Outcomes = field(default_factory=Outcomes)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    faults: Faults = field(default_factory=Faults)
    webhooks: Webhooks = field(default_factory=Webhooks)


def parse_config(document: Any) -> RuntimeConfig:
    """Validate a config document (builtins) into a `RuntimeConfig`, or raise ConfigError."""
    try:
        config = msgspec.convert(document, RuntimeConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from None
    _check_semantics(config)
    return config


def _check_semantics(config: RuntimeConfig) -> None:
    if not config.api_key:
        raise ConfigError("api_key must not be empty")
    for number_id, account in config.accounts.items():
        if not _PHONE_NUMBER_ID.match(number_id):
            raise ConfigError(f"accounts: {number_id!r} is not a 6-20 digit phone_number_id")
        if not _E164.match(account.phone_number):
            raise ConfigError(f"accounts.{number_id}.phone_number must be E.164 with '+'")
    for name, template in config.templates.items():
        if not name or not template.languages:
            raise ConfigError(f"templates.{name!r} needs a name and at least one language")
    _check_mix("outcomes.mix", config.outcomes.mix)
    for name, template in config.templates.items():
        _check_mix(f"templates.{name}.outcome_mix", template.outcome_mix)
    for prefix, outcome in config.outcomes.forced.items():
        if not _E164_PREFIX.match(prefix):
            raise ConfigError(f"outcomes.forced: {prefix!r} is not a '+digits' prefix")
        if outcome not in FORCEABLE_OUTCOMES:
            raise ConfigError(f"outcomes.forced.{prefix}: unknown outcome {outcome!r}")
    if not config.faults.anomalies.kinds:
        raise ConfigError("faults.anomalies.kinds needs at least one kind")
    if not config.webhooks.schedule_seconds or len(config.webhooks.schedule_seconds) > 20:
        raise ConfigError("webhooks.schedule_seconds needs 1 to 20 attempts")
    if config.webhooks.url and not config.webhooks.url.startswith(("http://", "https://")):
        raise ConfigError("webhooks.url must be an http(s) URL or empty")
    if config.webhooks.url and not config.webhooks.secrets:
        raise ConfigError("webhooks.secrets: at least one secret is needed to sign")


def _check_mix(where: str, mix: dict[str, float]) -> None:
    unknown = sorted(set(mix) - set(FAILURES))
    if unknown:
        raise ConfigError(f"{where}: unknown failure codes {unknown}")
    if sum(mix.values()) > 1.0 + 1e-9:
        raise ConfigError(f"{where}: shares add up to more than 1")


def mix_for(config: RuntimeConfig, template: str | None) -> dict[str, float]:
    """The failure shares a send of `template` draws from: its own, else `outcomes.mix`."""
    own = config.templates.get(template) if template else None
    return own.outcome_mix if own is not None and own.outcome_mix else config.outcomes.mix


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch over builtins; returns a new value, inputs untouched."""
    if not isinstance(patch, dict):
        return patch
    merged: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patch_config(config: RuntimeConfig, patch: Any) -> RuntimeConfig:
    """Apply a merge patch to the running config; raise ConfigError and keep it on a bad one."""
    if not isinstance(patch, dict):
        raise ConfigError("a config patch must be a JSON object")
    return parse_config(merge_patch(msgspec.to_builtins(config), patch))


def redacted(config: RuntimeConfig) -> dict[str, Any]:
    """The config as builtins with the API key and signing secrets masked."""
    document: dict[str, Any] = msgspec.to_builtins(config)
    document["api_key"] = _mask(config.api_key)
    document["expired_api_keys"] = [_mask(key) for key in config.expired_api_keys]
    document["webhooks"]["secrets"] = [_mask(secret) for secret in config.webhooks.secrets]
    return document


def _mask(secret: str) -> str:
    return secret[:9] + "..." + secret[-2:] if len(secret) > 12 else "***"


def tier_of(account: Account) -> int | None:
    """The account's tier as a number of recipients, None when unlimited."""
    tier = account.messaging_tier
    return None if tier == "unlimited" else tier
