"""A campaign's sending options as the campaign page shows them (issue 13): pure, no I/O.

The options are the request's, as intake stored them on the campaign (migration 0011):
`priority`, `quiet_hours` and `quality_guard` (the request's objects, NULL when the
request had none). Nothing is filled in here: an absent option is shown as the default it
stands for (`bulk`; no quiet hours; the dispatcher's configured guard,
`DISPATCH_QUALITY_GUARD_*`), a field left out of an object as "default".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# The guard's reason on a campaign it paused (docs/dispatch.md, "Template-health breaker").
QUALITY_GUARD_REASON: Final = "quality_guard"
# The guard's fields in the order the page names them, and what a default one is called.
_GUARD_FIELDS: Final = {
    "window_seconds": "window",
    "min_sends": "min sends",
    "max_failure_rate": "failure rate",
    "pause_at_quality": "quality rating",
}


@dataclass(frozen=True, slots=True)
class Option:
    """One line of the page's options: what it is, as text, and whether it is the default."""

    name: str
    text: str
    default: bool


def campaign_options(
    priority: str, quiet_hours: Mapping[str, Any] | None, quality_guard: Mapping[str, Any] | None
) -> list[Option]:
    return [
        _priority(priority),
        _quiet_hours(quiet_hours),
        _quality_guard(quality_guard),
    ]


def paused_by_guard(state: str, state_reason: str | None) -> bool:
    """Whether the template-health breaker paused the campaign (an operator resumes it)."""
    return state == "paused" and state_reason == QUALITY_GUARD_REASON


def _priority(priority: str) -> Option:
    if priority == "transactional":
        return Option("priority", "transactional: sent before bulk campaigns", default=False)
    if priority == "bulk":
        return Option("priority", "bulk (the default)", default=True)
    return Option("priority", priority, default=False)


def _quiet_hours(quiet: Mapping[str, Any] | None) -> Option:
    if quiet is None:
        return Option("quiet hours", "none (the default): messaged at any hour", default=True)
    zone = quiet.get("time_zone")
    fallback = f"fallback zone {zone}" if zone else "fallback zone UTC (default)"
    return Option(
        "quiet hours",
        f"{quiet.get('start')}-{quiet.get('end')} in each recipient's local time; {fallback}",
        default=False,
    )


def _quality_guard(guard: Mapping[str, Any] | None) -> Option:
    if guard is None:
        return Option("quality guard", "defaults (the dispatcher's configuration)", default=True)
    if guard.get("enabled") is False:
        return Option("quality guard", "off for this campaign", default=False)
    given = [
        _guard_field(name, value)
        for name in _GUARD_FIELDS
        if (value := guard.get(name)) is not None
    ]
    if not given:
        return Option("quality guard", "on, with the defaults", default=True)
    left = [label for name, label in _GUARD_FIELDS.items() if guard.get(name) is None]
    parts = given + ([f"{', '.join(left)}: default"] if left else [])
    return Option("quality guard", "on; " + "; ".join(parts), default=False)


def _guard_field(name: str, value: Any) -> str:
    if name == "window_seconds":
        return f"window {_seconds(int(value))}"
    if name == "min_sends":
        return f"at least {int(value):,} sends"
    if name == "max_failure_rate":
        return f"pauses above {100 * float(value):g}% engagement failures"
    return f"pauses at quality {value} or worse"


def _seconds(value: int) -> str:
    if value % 3600 == 0:
        return f"{value // 3600}h"
    if value % 60 == 0:
        return f"{value // 60}m"
    return f"{value}s"
