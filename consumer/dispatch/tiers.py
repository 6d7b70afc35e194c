"""Messaging tiers: parsing the API's many encodings, and the in-flight bound per tier."""

from __future__ import annotations

from collections.abc import Mapping

# Unlimited tiers are represented by a number no window will reach, so that quota
# arithmetic needs no special case.
UNLIMITED = 10**12

_NAMED = {
    "TIER_250": 250,
    "TIER_1K": 1_000,
    "TIER_2K": 2_000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": UNLIMITED,
    "UNLIMITED": UNLIMITED,
}

DEFAULT_CONCURRENCY: Mapping[int, int] = {250: 5, 2_000: 10, 10_000: 20, UNLIMITED: 50}


def parse_tier(raw: object) -> int | None:
    """An account's `messaging_tier` as a recipient limit; None when absent or unreadable.
    A limit beyond any real tier is unlimited (and still fits the ledger's bigint)."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        named = _NAMED.get(text.upper())
        if named is not None:
            return named
        # float(), not int(): "1000.0" is a tier too, and int() refuses digits other
        # than ASCII ones ("²".isdigit() holds) and strings past 4,300 digits.
        try:
            raw = float(text)
        except ValueError:
            return None
    number: int | None = None
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    if number is None or number <= 0:
        return None
    return min(number, UNLIMITED)


def tier_limit(tier: int | None, default: int) -> int:
    """The recipient limit planned with: the account's tier, else the configured default."""
    return tier if tier else default


def concurrency_for(limit: int, table: Mapping[int, int] = DEFAULT_CONCURRENCY) -> int:
    """The in-flight bound of the smallest tier ceiling at or above `limit`."""
    for ceiling in sorted(table):
        if limit <= ceiling:
            return table[ceiling]
    return table[max(table)]
