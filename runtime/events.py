"""Waiting on several asyncio events at once."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, within: float | None = None) -> bool:
    """Return True as soon as one event is set, False when `within` seconds pass first."""
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
