"""`broadcast status` with recipients waiting out their quiet hours: the reason, when they
may go, and an ETA that waits for them (cli/progress.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from cli.errors import OK
from cli.progress import RateTracker
from tests.cli.conftest import Row, new_phone, run_cli, seed


def _sending(tracker: RateTracker, pending: int, per_second: float) -> None:
    """Two samples ten seconds apart draining (and completing) at `per_second`."""
    tracker.add(0.0, 0, pending + int(10 * per_second))
    tracker.add(10.0, int(10 * per_second), pending)


@pytest.mark.parametrize(
    ("in_progress", "pending", "quiet", "eta"),
    [
        # 100 awake at 10/s (10 s), then 50 whose night ends in a minute (5 s more).
        (150, 150, [(60.0, 50)], 65.0),
        # The awake ones take longer than the wait: the quiet ones go after them.
        (1_050, 1_050, [(60.0, 50)], 105.0),
        # Two openings, the second after the first is done.
        (40, 40, [(30.0, 20), (31.0, 20)], 34.0),
        # A window that has opened already (not claimed yet).
        (20, 20, [(-5.0, 20)], 2.0),
    ],
)
def test_the_eta_waits_for_the_quiet_hours(
    in_progress: int, pending: int, quiet: list[tuple[float, int]], eta: float
) -> None:
    tracker = RateTracker(window=60)
    _sending(tracker, pending, 10.0)
    assert tracker.eta(in_progress, pending, quiet) == pytest.approx(eta)


def test_while_everyone_left_is_asleep_the_last_pace_seen_is_used() -> None:
    tracker = RateTracker(window=60)
    assert tracker.eta(50, 50, [(600.0, 50)]) is None  # no pace seen yet
    _sending(tracker, 50, 10.0)
    tracker.add(20.0, 100, 50)  # the rest were deferred: nothing drains now
    tracker.add(30.0, 100, 50)
    assert tracker.eta(50, 50, [(600.0, 50)]) == pytest.approx(605.0)
    fresh = RateTracker(window=60)
    fresh.add(0.0, 0, 50)
    fresh.add(10.0, 0, 50)
    assert fresh.eta(50, 50, [(600.0, 50)]) is None


def test_awake_recipients_that_do_not_drain_leave_the_eta_unknown() -> None:
    tracker = RateTracker(window=60)
    tracker.add(0.0, 10, 90)
    tracker.add(10.0, 20, 90)  # 40 awake held for the quota window, 50 asleep
    assert tracker.eta(90, 90, [(60.0, 50)]) is None


def test_messages_awaiting_their_reports_count_at_the_completion_pace() -> None:
    tracker = RateTracker(window=60)
    _sending(tracker, 50, 10.0)  # 10/s completing and draining
    # 50 asleep for 10 s more (5 s to send), 300 sent and waiting for reports (30 s).
    assert tracker.eta(350, 50, [(10.0, 50)]) == pytest.approx(30.0)


async def test_status_shows_the_quiet_hours_reason_and_when_they_end(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    asleep = [new_phone() for _ in range(3)]
    campaign = await seed(
        db_pool,
        [*(Row(p, reason="quiet_hours") for p in asleep), Row(new_phone(), "queued")],
    )
    first = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
    second = first + timedelta(hours=1)
    for phone, at in zip(asleep, (first, first, second), strict=True):
        await db_pool.execute(
            "UPDATE ledger SET next_attempt_at = $3 WHERE campaign_id = $1 AND phone = $2",
            campaign,
            phone,
            at,
        )
    result = await run_cli(["status", str(campaign)], cli_env)
    assert result.code == OK, result.err
    assert "  pending: quiet_hours 3" in result.out
    assert f"  quiet hours end: 2 at {first:%Y-%m-%d %H:%M}Z, 1 at " in result.out
    report = (await run_cli(["status", str(campaign), "--json"], cli_env)).json()
    assert {"status": "pending", "reason": "quiet_hours", "count": 3} in report["reasons"]
    assert report["quiet"] == [
        {"opens_at": first.isoformat(), "count": 2},
        {"opens_at": second.isoformat(), "count": 1},
    ]
