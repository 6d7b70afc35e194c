"""Reading one message's current state from the API, paced to the organisation's read
budget (`read_per_minute`), so settling never competes with sends for the write one."""

from __future__ import annotations

import asyncio

from consumer.dispatch.context import DispatchContext
from consumer.kirim.client import MessageState


async def message_state(
    ctx: DispatchContext, phone_number_id: str, message_id: str
) -> MessageState | None:
    """The message as the API knows it (None: unknown id); raises KirimTransportError."""
    seq, wait = ctx.read_pacer.reserve(ctx.clock())
    try:
        if wait > 0:
            await asyncio.sleep(wait)
        return await ctx.client.message(phone_number_id, message_id)
    finally:
        ctx.read_pacer.forget(seq)
