"""The progress of a long `publish` on stderr: rows read, chunks published, rate, ETA.

On a terminal one line is redrawn in place (`\r`, at most ten times a second)
and left as it ended; anywhere else (a pipe, a CI log) a plain line is written
at most every `quiet_interval` seconds, so a quick run prints nothing and a
long one leaves a heartbeat in the log. stdout is never touched (`--json`
output stays one object per line). `progress_text` is the pure part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TextIO

from cli.output import PROGRAM, bar, duration, number

TTY_INTERVAL: Final = 0.1
QUIET_INTERVAL: Final = 10.0
_BAR_WIDTH: Final = 20


def progress_text(
    label: str,
    done: int,
    unit: str,
    elapsed: float,
    *,
    total: int | None = None,
    fraction: float | None = None,
    detail: str = "",
    unicode: bool = True,
) -> str:
    """`read  [████░░░░]  41%  82,000 rows  40,512/s  ETA 3s` (pure).

    `fraction` (how far through, e.g. bytes of a file) or `total` (of `done`) give
    the bar and the ETA; without either there is neither.
    """
    if fraction is None and total:
        fraction = done / total
    rate = done / elapsed if elapsed > 0 else None
    parts = [label]
    if fraction is not None:
        fraction = min(max(fraction, 0.0), 1.0)
        parts.append(f"[{bar(fraction, _BAR_WIDTH, unicode=unicode)}] {fraction * 100:3.0f}%")
    parts.append(f"{number(done)}/{number(total)} {unit}" if total else f"{number(done)} {unit}")
    if detail:
        parts.append(detail)
    parts.append(f"{number(round(rate))}/s" if rate is not None else "-/s")
    if fraction is not None:
        if fraction >= 1:
            parts.append(f"done in {duration(elapsed)}")
        elif fraction > 0:
            parts.append(f"ETA {duration(elapsed * (1 - fraction) / fraction)}")
    return "  ".join(parts)


@dataclass(slots=True)
class Meter:
    """Writes `progress_text` lines for one phase to `stream` (see the module docstring)."""

    stream: TextIO
    label: str
    unit: str
    clock: Callable[[], float] = time.monotonic
    quiet_interval: float = QUIET_INTERVAL
    _tty: bool = False
    _unicode: bool = True
    _started: float = 0.0
    _shown: float = 0.0
    _drawn: bool = False

    def __post_init__(self) -> None:
        isatty = getattr(self.stream, "isatty", None)
        self._tty = bool(isatty and isatty())
        encoding = (getattr(self.stream, "encoding", None) or "utf-8").lower()
        self._unicode = encoding.replace("-", "").startswith("utf")
        self._started = self._shown = self.clock()

    def update(
        self,
        done: int,
        *,
        total: int | None = None,
        fraction: float | None = None,
        detail: str = "",
        final: bool = False,
    ) -> None:
        now = self.clock()
        interval = TTY_INTERVAL if self._tty else self.quiet_interval
        if not final and now - self._shown < interval:
            return
        if final and not self._tty and not self._drawn:
            return  # a quick run in a log: the summary on stdout says it all
        self._shown = now
        text = progress_text(
            self.label,
            done,
            self.unit,
            now - self._started,
            total=total,
            fraction=fraction,
            detail=detail,
            unicode=self._unicode,
        )
        if self._tty:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(f"{PROGRAM}: {text}\n")
        self.stream.flush()
        self._drawn = True

    def finish(
        self,
        done: int,
        *,
        total: int | None = None,
        fraction: float | None = None,
        detail: str = "",
    ) -> None:
        """The phase's last state (on a terminal, the line is kept)."""
        self.update(done, total=total, fraction=fraction, detail=detail, final=True)

    def abandon(self) -> None:
        """End a redrawn line before an error is printed below it."""
        if self._tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
