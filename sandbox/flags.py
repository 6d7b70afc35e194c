"""Command-line flags of `python -m sandbox`, each an override of one environment variable.

`overrides(argv)` returns `{ENV_NAME: value}` for the flags given; `__main__`
lays it over `os.environ` and builds `SandboxSettings.from_env` from the
result, so flags and variables share one parser and one set of checks.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Final

# (flag, environment variable, help); defaults are documented in docs/sandbox.md.
OPTIONS: Final = (
    ("--host", "SANDBOX_HOST", "address to bind (default 127.0.0.1)"),
    ("--port", "SANDBOX_PORT", "port to bind, 0 picks a free one (default 8090)"),
    ("--log-level", "SANDBOX_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    ("--api-key", "KIRIM_API_KEY", "the accepted bearer key"),
    ("--expired-api-keys", "SANDBOX_EXPIRED_API_KEYS", "comma-separated keys answered 401 expired"),
    ("--config", "SANDBOX_CONFIG", "whole config document: JSON text or a file path"),
    ("--accounts", "SANDBOX_ACCOUNTS", "accounts by phone_number_id: JSON text or a file path"),
    ("--templates", "SANDBOX_TEMPLATES", "templates by name: JSON text or a file path"),
    ("--faults", "SANDBOX_FAULTS", "fault injection document: JSON text or a file path"),
    ("--plan", "SANDBOX_PLAN", "rate-limit plan: free, pro or enterprise (default pro)"),
    ("--write-per-minute", "SANDBOX_WRITE_PER_MINUTE", "write bucket per minute"),
    ("--read-per-minute", "SANDBOX_READ_PER_MINUTE", "read bucket per minute"),
    ("--quota-window-seconds", "SANDBOX_QUOTA_WINDOW_SECONDS", "tier quota window"),
    ("--quota-exceeded-mode", "SANDBOX_QUOTA_EXCEEDED_MODE", "async (default) or sync (429)"),
    ("--param-mismatch", "SANDBOX_PARAM_MISMATCH", "async (default) or sync (400)"),
    ("--tier-encoding", "SANDBOX_TIER_ENCODING", "messaging_tier as int, string or label"),
    ("--accept-status", "SANDBOX_ACCEPT_STATUS", "HTTP status of an accepted send (200)"),
    ("--idempotency-ttl-seconds", "SANDBOX_IDEMPOTENCY_TTL_SECONDS", "key memory (86400)"),
    ("--idempotency-wait-seconds", "SANDBOX_IDEMPOTENCY_WAIT_SECONDS", "in-progress wait (30)"),
    ("--time-scale", "SANDBOX_TIME_SCALE", "lifecycle and webhook retries run N times faster"),
    ("--seed", "SANDBOX_SEED", "seed of the outcome draws (default 0)"),
    ("--outcome-mix", "SANDBOX_OUTCOME_MIX", "failure shares: code=share,... or JSON"),
    ("--forced-outcomes", "SANDBOX_FORCED_OUTCOMES", "by prefix: +62800=code,... or JSON"),
    ("--read-share", "SANDBOX_READ_SHARE", "share of delivered messages read (default 1)"),
    ("--delays", "SANDBOX_DELAYS", "sent=0.2,delivered=0.5,read=1,failed=0.3 (sandbox s)"),
    ("--max-messages", "SANDBOX_MAX_MESSAGES", "messages kept in memory (200000)"),
    ("--webhook-url", "SANDBOX_WEBHOOK_URL", "where webhooks go; empty: none"),
    ("--webhook-secrets", "KIRIM_WEBHOOK_SECRETS", "comma-separated signing secrets"),
    ("--webhook-signature-header", "SANDBOX_WEBHOOK_SIGNATURE_HEADER", "or X-Kirim-Signature-256"),
    ("--webhook-timeout-seconds", "SANDBOX_WEBHOOK_TIMEOUT_SECONDS", "per attempt (10)"),
    ("--webhook-schedule", "SANDBOX_WEBHOOK_SCHEDULE", "seconds before each attempt, comma list"),
    ("--webhook-jitter", "SANDBOX_WEBHOOK_JITTER", "+- share on each retry delay (0.2)"),
    ("--webhook-concurrency", "SANDBOX_WEBHOOK_CONCURRENCY", "parallel deliveries (16)"),
    ("--webhook-queue-size", "SANDBOX_WEBHOOK_QUEUE_SIZE", "due deliveries buffered (1024)"),
    ("--webhook-backlog-max", "SANDBOX_WEBHOOK_BACKLOG_MAX", "scheduled deliveries kept"),
    (
        "--webhook-duplicate-probability",
        "SANDBOX_WEBHOOK_DUPLICATE_PROBABILITY",
        "deliver an event twice",
    ),
    (
        "--webhook-reorder-probability",
        "SANDBOX_WEBHOOK_REORDER_PROBABILITY",
        "hold an earlier status back",
    ),
    (
        "--webhook-reorder-delay-seconds",
        "SANDBOX_WEBHOOK_REORDER_DELAY_SECONDS",
        "how long it is held (5)",
    ),
    (
        "--webhook-skip-delivered-probability",
        "SANDBOX_WEBHOOK_SKIP_DELIVERED_PROBABILITY",
        "omit delivered when read follows",
    ),
    (
        "--webhook-clock-skew-seconds",
        "SANDBOX_WEBHOOK_CLOCK_SKEW_SECONDS",
        "added to the signature's t",
    ),
)


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=(
            "A local, wire-compatible simulator of the Kirim messaging API. Every flag "
            "overrides the environment variable named in brackets; see docs/sandbox.md."
        ),
    )
    for flag, env_name, text in OPTIONS:
        built.add_argument(flag, dest=env_name, metavar="VALUE", help=f"{text} [{env_name}]")
    built.add_argument(
        "--no-webhooks",
        action="store_true",
        help="send no webhooks (same as an empty --webhook-url)",
    )
    return built


def overrides(argv: Sequence[str]) -> dict[str, str]:
    """The environment variables the given flags set."""
    namespace = vars(parser().parse_args(list(argv)))
    no_webhooks = namespace.pop("no_webhooks")
    chosen = {name: str(value) for name, value in namespace.items() if value is not None}
    if no_webhooks:
        chosen["SANDBOX_WEBHOOK_URL"] = ""
    return chosen
