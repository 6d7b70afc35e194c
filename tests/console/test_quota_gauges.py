"""The quota gauges: the same watched cache as the campaign snapshots, keyed by budget."""

from __future__ import annotations

import asyncio
import contextlib

from console.quota import Gauge, QuotaGauges


async def _until(check: object, within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_budget_is_counted_once_looked_at_and_a_failed_count_skips_a_round() -> None:
    calls: list[tuple[str, float]] = []
    fail = {"next": True}

    async def count(budget_key: str, now: float) -> int:
        calls.append((budget_key, now))
        if fail["next"]:
            fail["next"] = False
            raise OSError("connection reset")  # transient: this round is skipped
        return 42

    gauges = QuotaGauges(count, interval=0.05, clock=lambda: 1_000.0)
    stop = asyncio.Event()
    task = asyncio.create_task(gauges.run(stop))
    try:
        assert gauges.get("number:1") is None
        await _until(lambda: gauges.get("number:1") is not None)
        gauge = gauges.get("number:1")
        assert isinstance(gauge, Gauge)
        assert (gauge.used, gauge.taken_at) == (42, 1_000.0)
        assert gauge.took >= 0
        assert [key for key, _ in calls] == ["number:1", "number:1"]
        assert gauges.get("number:2") is None  # another budget: not counted before a look
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
