"""`publish`'s campaign options: `--priority` and `--quality-guard`, parsed and shown (pure).

Both go into every chunk's event (`BroadcastRequested.priority`, `.quality_guard`), so
they are checked here with the schema's own types: a value the flags accept is one
intake accepts. `--quiet-hours` is parsed in cli/quiet_plan.py; `options_line` and
`options_json` show all three as the events carry them.

`--quality-guard`:

- absent: no `quality_guard` in the event; the dispatcher's defaults apply
  (`DISPATCH_QUALITY_GUARD_*`, which may turn the guard off for every campaign);
- `off`: `{"enabled": false}`, this campaign is never paused by the guard;
- `on`: `{}`, guarded even where the dispatcher's default is off, with its thresholds;
- `KEY=VALUE[,KEY=VALUE...]` with the keys of `GUARD_KEYS`: guarded, each given
  threshold replacing the dispatcher's (e.g. `max_failure_rate=0.05,min_sends=200`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, get_args

import msgspec

from cli.errors import UsageError
from cli.output import duration, number
from schemas.requests import Priority, QualityGuard, QualityRating, QuietHours


def _rating(value: str) -> str:
    return value.upper()


# Each key's text -> the JSON value the schema then checks (ranges, the ratings).
GUARD_KEYS: Final[dict[str, Callable[[str], Any]]] = {
    "window_seconds": int,
    "min_sends": int,
    "max_failure_rate": float,
    "pause_at_quality": _rating,
}
_EXPECTED: Final = "off, on, or KEY=VALUE[,KEY=VALUE...] with keys " + ", ".join(GUARD_KEYS)


def quality_guard_flag(raw: str | None) -> QualityGuard | None:
    """`--quality-guard` as the request's `quality_guard` (module docstring);
    `UsageError` naming the flag for anything intake would refuse."""
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() == "off":
        return QualityGuard(enabled=False)
    if text.lower() == "on":
        return QualityGuard()
    given: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for pair in text.split(","):
        key, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or not key or not value:
            raise UsageError(f"--quality-guard {raw!r}: expected {_EXPECTED}")
        parse = GUARD_KEYS.get(key)
        if parse is None:
            raise UsageError(
                f"--quality-guard: unknown key {key!r} (keys: {', '.join(GUARD_KEYS)})"
            )
        if key in given:
            raise UsageError(f"--quality-guard: {key} given twice")
        texts[key] = value
        try:
            given[key] = parse(value)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise UsageError(f"--quality-guard {key}={value}: expected {kind}") from None
    try:
        # convert() applies the schema's constraints, which building the Struct does not.
        return msgspec.convert(given, QualityGuard)
    except msgspec.ValidationError as error:
        # msgspec says "Expected `int` >= 60 - at `$.window_seconds`".
        message, _, key = str(error).replace("`", "").partition(" - at $.")
        if key == "pause_at_quality":
            *others, last = get_args(QualityRating)
            message = f"expected {', '.join(others)} or {last}"
        shown = f"{key}={texts[key]}" if key in texts else text
        raise UsageError(f"--quality-guard {shown}: {message[:1].lower()}{message[1:]}") from None


def quality_guard_text(guard: QualityGuard | None) -> str:
    """How the preview says what the guard will do."""
    if guard is None:
        return "quality guard: the dispatcher's defaults"
    if not guard.enabled:
        return "quality guard off"
    parts = []
    if guard.window_seconds is not None:
        parts.append(f"window {duration(guard.window_seconds)}")
    if guard.min_sends is not None:
        parts.append(f"at least {number(guard.min_sends)} sends")
    if guard.max_failure_rate is not None:
        parts.append(f"engagement failures over {guard.max_failure_rate * 100:g}%")
    if guard.pause_at_quality is not None:
        parts.append(f"pause at {guard.pause_at_quality} or below")
    if not parts:
        return "quality guard on (the dispatcher's thresholds)"
    rest = " (the rest: the dispatcher's)" if len(parts) < len(GUARD_KEYS) else ""
    return f"quality guard on: {', '.join(parts)}{rest}"


def options_line(
    priority: Priority, quiet_hours: QuietHours | None, guard: QualityGuard | None
) -> str:
    """The preview's `options` line: what every chunk's event carries."""
    lane = "transactional (sent before bulk)" if priority == "transactional" else "bulk"
    quiet = "no quiet hours"
    if quiet_hours is not None:
        zone = f", {quiet_hours.time_zone} if unknown" if quiet_hours.time_zone else ""
        quiet = f"quiet hours {quiet_hours.start}-{quiet_hours.end} local{zone}"
    return f"options     priority {lane}; {quiet}; {quality_guard_text(guard)}"


def options_json(
    priority: Priority, quiet_hours: QuietHours | None, guard: QualityGuard | None
) -> dict[str, Any]:
    """`--json`'s `options`: {priority, quiet_hours (null or {start, end, time_zone}),
    quality_guard (null: the dispatcher's defaults, else {enabled, window_seconds,
    min_sends, max_failure_rate, pause_at_quality}, null where the dispatcher's applies)}."""
    return {
        "priority": priority,
        "quiet_hours": None if quiet_hours is None else msgspec.structs.asdict(quiet_hours),
        "quality_guard": None if guard is None else msgspec.structs.asdict(guard),
    }
