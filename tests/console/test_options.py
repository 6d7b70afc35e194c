"""console.options: a campaign's issue-13 options as the campaign page words them (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from console.options import Option, campaign_options, paused_by_guard

DEFAULTS = [
    Option("priority", "bulk (the default)", default=True),
    Option("quiet hours", "none (the default): messaged at any hour", default=True),
    Option("quality guard", "defaults (the dispatcher's configuration)", default=True),
]


def test_absent_options_read_as_their_defaults() -> None:
    assert campaign_options("bulk", None, None) == DEFAULTS


@pytest.mark.parametrize(
    ("quiet", "text"),
    [
        (
            {"start": "21:00", "end": "08:00", "time_zone": "Asia/Jakarta"},
            "21:00-08:00 in each recipient's local time; fallback zone Asia/Jakarta",
        ),
        (
            {"start": "22:30", "end": "06:00"},
            "22:30-06:00 in each recipient's local time; fallback zone UTC (default)",
        ),
        (
            {"start": "22:30", "end": "06:00", "time_zone": None},
            "22:30-06:00 in each recipient's local time; fallback zone UTC (default)",
        ),
    ],
)
def test_quiet_hours_name_the_window_and_the_fallback_zone(
    quiet: dict[str, Any], text: str
) -> None:
    assert campaign_options("bulk", quiet, None)[1] == Option("quiet hours", text, default=False)


@pytest.mark.parametrize(
    ("guard", "text", "default"),
    [
        ({}, "on, with the defaults", True),
        ({"enabled": True}, "on, with the defaults", True),
        ({"enabled": False, "min_sends": 10}, "off for this campaign", False),
        (
            {
                "window_seconds": 3600,
                "min_sends": 1000,
                "max_failure_rate": 0.05,
                "pause_at_quality": "YELLOW",
            },
            "on; window 1h; at least 1,000 sends; pauses above 5% engagement failures; "
            "pauses at quality YELLOW or worse",
            False,
        ),
        (
            {"max_failure_rate": 0.125, "window_seconds": 90, "min_sends": None},
            "on; window 90s; pauses above 12.5% engagement failures; "
            "min sends, quality rating: default",
            False,
        ),
        (
            {"window_seconds": 600},
            "on; window 10m; min sends, failure rate, quality rating: default",
            False,
        ),
    ],
)
def test_a_quality_guard_shows_what_was_set_and_what_is_default(
    guard: dict[str, Any], text: str, default: bool
) -> None:
    assert campaign_options("bulk", None, guard)[2] == Option("quality guard", text, default)


def test_transactional_priority() -> None:
    assert campaign_options("transactional", None, None)[0] == Option(
        "priority", "transactional: sent before bulk campaigns", default=False
    )


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        ("paused", "quality_guard", True),
        ("paused", "requested", False),
        ("paused", None, False),
        ("active", "quality_guard", False),  # resumed: the reason is history
        ("stopped", "quality_guard", False),
        ("cancelled", "quality_guard", False),
    ],
)
def test_paused_by_the_guard_only_while_paused_for_it(
    state: str, reason: str | None, expected: bool
) -> None:
    assert paused_by_guard(state, reason) is expected
