"""The in-flight bound follows the tier: resized while sends hold slots."""

from __future__ import annotations

import asyncio

from consumer.dispatch.slots import Slots


async def _started(slots: Slots, count: int) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(slots.acquire()) for _ in range(count)]
    await asyncio.sleep(0)
    return tasks


async def test_a_rise_starts_waiting_sends_at_once() -> None:
    slots = Slots(2)
    tasks = await _started(slots, 5)
    assert (slots.held, sum(t.done() for t in tasks)) == (2, 2)
    slots.resize(4)
    await asyncio.sleep(0)
    assert (slots.held, sum(t.done() for t in tasks)) == (4, 4)
    slots.release()
    await asyncio.sleep(0)
    assert all(t.done() for t in tasks)
    assert slots.held == 4


async def test_a_fall_lets_sends_in_flight_finish_and_admits_none_until_below() -> None:
    slots = Slots(4)
    await _started(slots, 4)
    slots.resize(1)
    waiting = await _started(slots, 1)
    for _ in range(3):
        slots.release()
        await asyncio.sleep(0)
        assert not waiting[0].done()  # 3, 2, then 1 in flight: still at the new bound
    slots.release()
    await asyncio.sleep(0)
    assert waiting[0].done()
    assert slots.held == 1


async def test_a_cancelled_waiter_passes_its_wake_up_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    first, second = await _started(slots, 2)
    slots.release()  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert second.done()
    assert slots.held == 1
