"""Everything the CLI prints: plain text tables, progress bars, durations and JSON.

Text output is meant for a plain terminal and for a captured log alike: no
colours, no cursor tricks except in `status --watch` on a TTY. `--json` output
is one JSON object per line with stable keys (docs/cli.md lists them). Errors
are one line on stderr: `broadcast: <what went wrong>`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TextIO

import msgspec

PROGRAM: Final = "broadcast"
# Text that reads as a number ("40.00%", "1,234") is right-aligned like one.
_NUMBER: Final = re.compile(r"-?[0-9][0-9,]*(\.[0-9]+)?%?")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_json: Final = msgspec.json.Encoder(enc_hook=_json_default, order="deterministic")


@dataclass(slots=True)
class Console:
    """Where output goes, and in which form."""

    out: TextIO
    err: TextIO
    json: bool = False

    @property
    def is_tty(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    @property
    def unicode(self) -> bool:
        encoding = (getattr(self.out, "encoding", None) or "utf-8").lower()
        return encoding.replace("-", "").startswith("utf")

    def line(self, text: str = "") -> None:
        """A line of human-readable output (suppressed in `--json` mode)."""
        if not self.json:
            self.out.write(text + "\n")
            self.out.flush()

    def lines(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.line(text)

    def emit(self, payload: dict[str, Any]) -> None:
        """One JSON object on one line (only in `--json` mode)."""
        if self.json:
            self.out.write(_json.encode(payload).decode() + "\n")
            self.out.flush()

    def note(self, text: str) -> None:
        """A remark on stderr, in every mode: `broadcast: <text>`."""
        self.err.write(f"{PROGRAM}: {text}\n")
        self.err.flush()

    def warn(self, text: str) -> None:
        self.note(f"warning: {text}")


def number(value: int | float) -> str:
    """`12345` -> `12,345`."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def duration(seconds: float | None) -> str:
    """`93784` -> `1d 2h`, `86400` -> `1d`, `950` -> `15m 50s`, `42.3` -> `42s`.

    None (not known) -> `unknown`.
    """
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        return "unknown"
    total = max(0, round(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def bar(fraction: float, width: int, *, unicode: bool = True) -> str:
    """A fixed-width bar, e.g. `██████░░░░` (or `######....` without Unicode)."""
    fraction = min(max(fraction, 0.0), 1.0)
    full = round(fraction * width)
    filled, empty = ("█", "░") if unicode else ("#", ".")
    return filled * full + empty * (width - full)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: int = 0
) -> list[str]:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        bool(rows) and all(_numeric(row[i]) for row in rows if row[i] is not None)
        for i in range(len(headers))
    ]

    def render(values: Sequence[str]) -> str:
        parts = [
            value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i])
            for i, value in enumerate(values)
        ]
        return (" " * indent + "  ".join(parts)).rstrip()

    return [render(list(headers)), *(render(row) for row in cells)]


class StreamedTable:
    """`table` for more rows than memory should hold (a million recipients).

    The columns are sized (and their alignment chosen) from the header and the first
    `sample` rows, which are held until then; every later row is written at once. A
    later cell wider than its column widens only its own row: nothing is cut.
    """

    def __init__(self, out: TextIO, headers: Sequence[str], *, sample: int = 500) -> None:
        self._out = out
        self._headers = list(headers)
        self._sample = sample
        self._held: list[Sequence[object]] | None = []
        self._widths: list[int] = []
        self._numeric: list[bool] = []

    def add(self, row: Sequence[object]) -> None:
        if self._held is None:
            self._write(row)
            return
        self._held.append(row)
        if len(self._held) >= self._sample:
            self._release()

    def finish(self) -> None:
        """Write what is still held (a table shorter than its sample) and flush."""
        if self._held is not None:
            self._release()
        self._out.flush()

    def _release(self) -> None:
        held, self._held = self._held or [], None
        lines = table(self._headers, held)
        self._widths = [len(h) for h in self._headers]
        for row in held:
            for i, value in enumerate(row):
                self._widths[i] = max(self._widths[i], len(_cell(value)))
        self._numeric = [
            bool(held) and all(_numeric(row[i]) for row in held if row[i] is not None)
            for i in range(len(self._headers))
        ]
        self._out.write("".join(line + "\n" for line in lines))

    def _write(self, row: Sequence[object]) -> None:
        parts = [
            text.rjust(self._widths[i]) if self._numeric[i] else text.ljust(self._widths[i])
            for i, text in enumerate(_cell(value) for value in row)
        ]
        self._out.write("  ".join(parts).rstrip() + "\n")


def _numeric(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value) is not None
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    return str(value)
