"""The dispatcher's part of the consumer's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consumer.dispatch.breaker import RATINGS, Guard
from consumer.dispatch.lanes import MAX_BULK_SHARE
from consumer.dispatch.policy import RetryPolicy
from consumer.dispatch.quota import number_budget_key
from consumer.dispatch.tiers import DEFAULT_CONCURRENCY, UNLIMITED, parse_tier
from runtime import defaults
from runtime.env import SettingsError, env_bool, env_float, env_int, env_str


def _concurrency_table(raw: str) -> Mapping[int, int]:
    """`250:5,2000:10,10000:20,unlimited:50`: in-flight sends per tier ceiling."""
    table: dict[int, int] = {}
    for part in raw.split(","):
        tier_text, _, count_text = part.strip().partition(":")
        tier = parse_tier(tier_text)
        if tier is None or not count_text.strip().isdigit() or int(count_text) < 1:
            raise SettingsError(f"DISPATCH_CONCURRENCY: cannot read {part.strip()!r}")
        table[tier] = int(count_text)
    return table


def _budget_groups(raw: str) -> Mapping[str, str]:
    """`portfolio_a=106540352242922+106540352242923;b=...`: numbers sharing one quota."""
    groups: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        name, _, members = part.partition("=")
        if not name.strip() or not members.strip():
            raise SettingsError(f"QUOTA_BUDGET_GROUPS: cannot read {part!r}")
        for member in members.split("+"):
            groups[member.strip()] = f"group:{name.strip()}"
    return groups


def _bulk_min_share(env: Mapping[str, str]) -> float:
    share = env_float(env, "DISPATCH_BULK_MIN_SHARE", 0.05, minimum=0.0)
    if share > MAX_BULK_SHARE:
        raise SettingsError(f"DISPATCH_BULK_MIN_SHARE must be <= {MAX_BULK_SHARE}, got {share}")
    return share


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    """Part of `ConsumerSettings` (its `dispatch` field); DISPATCH_ENABLED lives there."""

    kirim_base_url: str = defaults.KIRIM_BASE_URL
    kirim_api_key: str = defaults.KIRIM_API_KEY
    request_timeout_seconds: float = 10.0
    # None: learn it from GET /v1/me.
    write_per_minute: int | None = None
    read_per_minute: int | None = None
    quota_window_seconds: float = defaults.QUOTA_WINDOW_SECONDS
    quota_margin_seconds: float = 5.0
    # The tier assumed for a number whose account does not state one.
    default_tier: int = 250
    concurrency: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_CONCURRENCY))
    budget_groups: Mapping[str, str] = field(default_factory=dict)
    batch_max: int = 500
    # Priority lanes (lanes.py): the least part of the write tokens and in-flight slots
    # that bulk campaigns get while transactional ones wait for them too.
    bulk_min_share: float = 0.05
    flush_seconds: float = 0.05
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Past this, a send that may have landed is not repeated: the API forgot its key.
    idempotency_ttl_seconds: float = 23 * 3600.0
    ownership_interval_seconds: float = 1.0
    # An instance silent this long no longer counts toward the fair share, so a dead
    # owner's numbers are taken over within a few seconds (its locks go at once).
    instance_timeout_seconds: float = 3.0
    reconcile_interval_seconds: float = 2.0
    # A failed message is sent again only this long after its failure and once the API
    # confirms it is still failed (a late multi-device delivered). 0: at once, unchecked.
    failure_recheck_seconds: float = 30.0
    # How often GET /v1/accounts is read (tiers, connection states): a new tier is
    # planned with at most this long after the API reports it (docs/dispatch.md).
    accounts_refresh_seconds: float = 10.0
    # The template-health breaker's defaults for a campaign's quality_guard (breaker.py).
    quality_guard: Guard = field(default_factory=Guard)
    drain_seconds: float = 10.0
    # Only these sender numbers (an instance dedicated to some numbers); empty: all.
    only_senders: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DispatchSettings:
        retry = RetryPolicy(
            base_seconds=env_float(env, "DISPATCH_RETRY_BASE_SECONDS", 1.0, minimum=0.0),
            max_seconds=env_float(env, "DISPATCH_RETRY_MAX_SECONDS", 300.0, minimum=0.0),
            max_attempts=env_int(env, "DISPATCH_MAX_ATTEMPTS", 12, minimum=1),
            in_progress_seconds=env_float(env, "DISPATCH_IN_PROGRESS_SECONDS", 5.0, minimum=0.0),
        )
        write = env.get("KIRIM_WRITE_PER_MINUTE", "").strip()
        read = env.get("KIRIM_READ_PER_MINUTE", "").strip()
        tier = parse_tier(env.get("DISPATCH_DEFAULT_TIER", "250"))
        if tier is None:
            raise SettingsError("DISPATCH_DEFAULT_TIER must be a tier such as 250 or TIER_1K")
        return cls(
            kirim_base_url=env_str(env, "KIRIM_BASE_URL", defaults.KIRIM_BASE_URL),
            kirim_api_key=env_str(env, "KIRIM_API_KEY", defaults.KIRIM_API_KEY),
            request_timeout_seconds=env_float(env, "KIRIM_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            write_per_minute=env_int(env, "KIRIM_WRITE_PER_MINUTE", 0, minimum=1)
            if write
            else None,
            read_per_minute=env_int(env, "KIRIM_READ_PER_MINUTE", 0, minimum=1) if read else None,
            quota_window_seconds=env_float(
                env, "QUOTA_WINDOW_SECONDS", defaults.QUOTA_WINDOW_SECONDS, minimum=1.0
            ),
            quota_margin_seconds=env_float(env, "QUOTA_MARGIN_SECONDS", 5.0, minimum=0.0),
            default_tier=tier,
            concurrency=_concurrency_table(
                env.get("DISPATCH_CONCURRENCY", "") or f"250:5,2000:10,10000:20,{UNLIMITED}:50"
            ),
            budget_groups=_budget_groups(env.get("QUOTA_BUDGET_GROUPS", "")),
            batch_max=env_int(env, "DISPATCH_BATCH_MAX", 500, minimum=1),
            bulk_min_share=_bulk_min_share(env),
            retry=retry,
            idempotency_ttl_seconds=env_float(
                env, "KIRIM_IDEMPOTENCY_TTL_SECONDS", 23 * 3600.0, minimum=1.0
            ),
            ownership_interval_seconds=env_float(
                env, "DISPATCH_OWNERSHIP_INTERVAL_SECONDS", 1.0, minimum=0.05
            ),
            instance_timeout_seconds=env_float(
                env, "DISPATCH_INSTANCE_TIMEOUT_SECONDS", 3.0, minimum=0.1
            ),
            reconcile_interval_seconds=env_float(
                env, "DISPATCH_RECONCILE_INTERVAL_SECONDS", 2.0, minimum=0.05
            ),
            failure_recheck_seconds=env_float(
                env, "DISPATCH_FAILURE_RECHECK_SECONDS", 30.0, minimum=0.0
            ),
            accounts_refresh_seconds=env_float(
                env, "DISPATCH_ACCOUNTS_REFRESH_SECONDS", 10.0, minimum=0.1
            ),
            drain_seconds=env_float(env, "SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0.0),
            quality_guard=quality_guard_from_env(env),
            only_senders=frozenset(
                p.strip() for p in env.get("DISPATCH_SENDERS", "").split(",") if p.strip()
            ),
        )

    def budget_key(self, phone_number_id: str) -> str:
        return self.budget_groups.get(phone_number_id, number_budget_key(phone_number_id))


def quality_guard_from_env(env: Mapping[str, str]) -> Guard:
    """The template-health breaker's defaults, from `DISPATCH_QUALITY_GUARD_*`."""
    rate = env_float(env, "DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE", 0.1)
    if not 0.0 < rate <= 1.0:
        raise SettingsError(
            f"DISPATCH_QUALITY_GUARD_MAX_FAILURE_RATE must be in (0, 1], got {rate}"
        )
    quality = env_str(env, "DISPATCH_QUALITY_GUARD_PAUSE_AT_QUALITY", "YELLOW").upper()
    rating = next((r for r in RATINGS if r == quality), None)
    if rating is None:
        raise SettingsError(
            f"DISPATCH_QUALITY_GUARD_PAUSE_AT_QUALITY must be GREEN, YELLOW or RED, got {quality!r}"
        )
    return Guard(
        enabled=env_bool(env, "DISPATCH_QUALITY_GUARD_ENABLED", True),
        window_seconds=env_int(
            env, "DISPATCH_QUALITY_GUARD_WINDOW_SECONDS", 3600, minimum=60, maximum=7 * 86_400
        ),
        min_sends=env_int(env, "DISPATCH_QUALITY_GUARD_MIN_SENDS", 100, minimum=1),
        max_failure_rate=rate,
        pause_at_quality=rating,
    )
