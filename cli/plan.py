"""The fit plan of a publish: quota windows and an ETA, as a pure function of numbers.

A sender may reach `tier` unique recipients per rolling window (`window_seconds`,
24 h in production); the organisation may send `write_per_minute` messages. So
an audience of `eligible` recipients needs `ceil(eligible / tier)` windows; each
window's share goes out at the write rate, and a window's capacity comes back
`window_seconds` after the first contacts it counted. The ETA is therefore

    max(eligible / rate, (windows - 1) * window_seconds + last_share / rate)

where `last_share` is what is left for the final window. It is a best case: the
write budget is shared with every other campaign of the organisation, and
recipients already contacted in the current window do not count again (so the
real number of windows may be lower).

With quiet hours (`quiet`, cli/quiet_plan.py) the ETA is simulated instead: each group
of recipients is sent only outside its quiet hours, within the same rate and windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cli.quiet_plan import QuietPlan, quiet_eta
from consumer.dispatch.tiers import UNLIMITED, concurrency_for


@dataclass(frozen=True, slots=True)
class FitPlan:
    eligible: int
    # Unique recipients per window; None when unknown (API unreachable, no --tier).
    tier: int | None
    window_seconds: int
    write_per_minute: int | None
    windows: int | None
    # The dispatcher's in-flight bound for this tier.
    concurrency: int | None
    # Time to send everything at the write rate, ignoring the quota.
    send_seconds: float | None
    # Until the last eligible recipient is sent, from the campaign's start.
    eta_seconds: float | None
    # Who is inside their quiet hours at the start, and when they open (None: no quiet hours).
    quiet: QuietPlan | None = None

    @property
    def unlimited(self) -> bool:
        return self.tier is not None and self.tier >= UNLIMITED


def fit_plan(
    eligible: int,
    *,
    tier: int | None,
    write_per_minute: int | None,
    window_seconds: int,
    quiet: QuietPlan | None = None,
) -> FitPlan:
    """How many quota windows and how long `eligible` recipients take (module docstring)."""
    windows: int | None = None
    if tier is not None:
        windows = 0 if eligible == 0 else (1 if tier >= UNLIMITED else math.ceil(eligible / tier))
    send_seconds: float | None = None
    if write_per_minute:
        send_seconds = eligible * 60.0 / write_per_minute
    eta: float | None = None
    if windows is not None and tier is not None and send_seconds is not None:
        if windows <= 1:
            eta = send_seconds
        else:
            last_share = eligible - (windows - 1) * tier
            assert write_per_minute  # send_seconds is known only with a rate
            last_seconds = last_share * 60.0 / write_per_minute
            eta = max(send_seconds, (windows - 1) * window_seconds + last_seconds)
        if quiet is not None and write_per_minute:
            eta = quiet_eta(
                quiet, tier=tier, write_per_minute=write_per_minute, window_seconds=window_seconds
            )
    return FitPlan(
        eligible=eligible,
        tier=tier,
        window_seconds=window_seconds,
        write_per_minute=write_per_minute,
        windows=windows,
        concurrency=None if tier is None else concurrency_for(tier),
        send_seconds=send_seconds,
        eta_seconds=eta,
        quiet=quiet,
    )
