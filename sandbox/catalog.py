"""Names the sandbox speaks: asynchronous failure codes, outcomes, tiers.

The failure table is kirim-api.md's "Asynchronous failure codes" (Kirim code,
Meta `provider_code`, Meta title). Outcome names are what `outcomes.mix` and
`outcomes.forced` accept.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Failure(NamedTuple):
    """One asynchronous failure: Kirim's `code`, Meta's numeric code and title."""

    code: str
    provider_code: int
    title: str


FAILURES: Final[dict[str, Failure]] = {
    failure.code: failure
    for failure in (
        Failure("recipient_not_on_whatsapp", 131026, "Message undeliverable"),
        Failure("recipient_blocked", 1013, "User is blocked"),
        Failure("template_paused", 132015, "Template is paused"),
        Failure("template_disabled", 132016, "Template is disabled"),
        Failure("template_param_count_mismatch", 132000, "Template param count mismatch"),
        Failure("template_param_format_mismatch", 132012, "Parameter format mismatch"),
        Failure("outside_24h_window", 131047, "Re-engagement message"),
        Failure("quota_exceeded", 131048, "Spam rate limit hit"),
        Failure("spam_rate_limited", 131048, "Spam rate limit hit"),
        Failure("ecosystem_engagement", 131049, "Message not delivered to maintain ecosystem"),
        Failure("marketing_experiment", 130472, "User's number is part of an experiment"),
        Failure("pair_rate_limited", 131056, "Pair rate limit hit"),
        Failure("throughput_limited", 130429, "Rate limit hit"),
        Failure("payment_required", 131042, "Business eligibility payment issue"),
        Failure("whatsapp_upstream_error", 131000, "Something went wrong"),
    )
}

# Successful lifecycles, named by the last status reached.
SUCCESS_OUTCOMES: Final[frozenset[str]] = frozenset({"sent", "delivered", "read"})

# Forced outcomes answered synchronously (nothing is queued): code -> HTTP status.
SYNC_OUTCOMES: Final[dict[str, int]] = {
    "invalid_phone_number": 400,
    "internal_error": 500,
    "whatsapp_upstream_error_sync": 502,
}

ASYNC_OUTCOMES: Final[frozenset[str]] = SUCCESS_OUTCOMES | frozenset(FAILURES)
FORCEABLE_OUTCOMES: Final[frozenset[str]] = ASYNC_OUTCOMES | frozenset(SYNC_OUTCOMES)

ACCOUNT_STATUSES: Final = ("connected", "disconnected", "degraded", "onboarding", "pending")

TIER_LABELS: Final[dict[int, str]] = {
    250: "TIER_250",
    1000: "TIER_1K",
    2000: "TIER_2K",
    10000: "TIER_10K",
    100000: "TIER_100K",
}


def tier_label(tier: int | None) -> str:
    """`TIER_...` label of a tier; None (unlimited) is `TIER_UNLIMITED`."""
    if tier is None:
        return "TIER_UNLIMITED"
    return TIER_LABELS.get(tier, f"TIER_{tier}")
