"""The write tokens by lane: transactional overtakes the bulk sends waiting, bulk keeps its
share, and the pacer's own rules (refill, re-sync, a 429's hold) still decide when."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from consumer.dispatch.gate import PacerGate
from consumer.dispatch.lanes import BULK, TRANSACTIONAL, Lane
from consumer.dispatch.pacing import RatePacer

T: Final = TRANSACTIONAL
B: Final = BULK


def gate(per_minute: float, tokens: float = 0.0, share: float = 0.05) -> PacerGate:
    clock = time.monotonic
    return PacerGate(
        RatePacer(limit_per_minute=per_minute, tokens=tokens, updated_at=clock()), share, clock
    )


async def _granted(g: PacerGate, lane: Lane, name: str, order: list[str]) -> int | None:
    seq = await g.acquire(lane)
    order.append(name)
    return seq


async def test_a_token_there_and_no_one_waiting_is_taken_at_once() -> None:
    g = gate(60, tokens=3.0)
    started = time.monotonic()
    assert [await g.acquire(B) for _ in range(3)] == [0, 1, 2]
    assert time.monotonic() - started < 0.05


async def test_transactional_sends_overtake_bulk_ones_already_waiting() -> None:
    g = gate(6000, share=0.25)  # a token every 10 ms
    order: list[str] = []
    tasks = [asyncio.create_task(_granted(g, B, f"b{i}", order)) for i in range(6)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(_granted(g, T, f"t{i}", order)) for i in range(6)]
    await asyncio.gather(*tasks)
    # Bulk asked first: it is served one turn in four while transactional waits too.
    assert order == ["t0", "t1", "t2", "b0", "t3", "t4", "t5", "b1", "b2", "b3", "b4", "b5"]


async def test_tokens_are_granted_at_the_refill_rate() -> None:
    g = gate(6000)  # 100 a second
    started = time.monotonic()
    seqs = await asyncio.gather(*(g.acquire(T if i % 2 else B) for i in range(30)))
    elapsed = time.monotonic() - started
    assert sorted(s for s in seqs if s is not None) == list(range(30))
    # 30 tokens at 100/s from an empty bucket: never faster than the bucket allows (0.3 s).
    assert 0.29 <= elapsed < 3.0


async def test_a_waiter_that_gives_up_takes_no_token() -> None:
    g = gate(60)  # one token a second, none yet
    halt = asyncio.Event()
    waiting = asyncio.create_task(g.acquire(B, halt))
    await asyncio.sleep(0.01)
    assert g.waiting(B) == 1
    halt.set()
    assert await waiting is None
    assert g.waiting(B) == 0
    assert g.bucket.tokens < 1.0
    assert not g.bucket._in_flight  # nothing was taken

    cancelled = asyncio.create_task(g.acquire(T))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert g.waiting(T) == 0
    assert await g.acquire(B, halt) is None  # a stop already set: nothing asked


async def test_an_answer_with_tokens_to_spare_wakes_the_waiters_at_once() -> None:
    g = gate(60)  # the next token would be a second away
    first = await asyncio.wait_for(asyncio.create_task(g.acquire(B)), 1.5)
    assert first is not None
    waiting = asyncio.create_task(g.acquire(T))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    # The server says it has plenty left (another instance's view was too low).
    g.observe(first, time.monotonic(), limit=60, remaining=30)
    assert await waiting is not None
    assert time.monotonic() - started < 0.05


async def test_a_429_holds_every_waiter_until_retry_after() -> None:
    g = gate(60_000, tokens=100.0)
    seq = await g.acquire(B)
    assert seq is not None
    g.throttle(seq, time.monotonic(), retry_after=0.3)
    started = time.monotonic()
    await asyncio.gather(g.acquire(T), g.acquire(B))
    assert time.monotonic() - started >= 0.29


async def test_tokens_that_come_at_once_are_shared_by_turn_between_sending_loops() -> None:
    """Each lane's sender asks for its next token as soon as it got one; when twenty
    come at once (a re-sync), the one just served competes for the next one too."""
    g = gate(60, tokens=1.0, share=0.25)  # refill too slow to matter here
    first = await g.acquire(B)
    assert first is not None

    granted: dict[int, Lane] = {}

    async def sender(lane: Lane) -> None:
        while len(granted) < 20:
            seq = await g.acquire(lane)
            if seq is not None:
                granted[seq] = lane

    loops = [asyncio.create_task(sender(B)), asyncio.create_task(sender(T))]
    await asyncio.sleep(0.01)
    g.observe(first, time.monotonic(), limit=60, remaining=20)
    async with asyncio.timeout(2):
        while len(granted) < 20:
            await asyncio.sleep(0.001)
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    order = [granted[seq] for seq in sorted(granted)]  # tokens are numbered as granted
    assert order[:20].count(B) == 5  # exactly its share of the 20
    assert "".join("B" if lane == B else "T" for lane in order[:8]) == "TTTBTTTB"


async def test_a_resync_right_after_a_grant_waits_for_the_sender_just_served() -> None:
    """An answer can re-sync the bucket upward in the very pass that granted a
    transactional send its token, before that sender asks for the next one: the tokens
    it brings are handed out on the next pass, by turn, not all to bulk."""
    g = gate(60, tokens=1.0, share=0.25)
    first = await g.acquire(B)
    assert first is not None

    granted: dict[int, Lane] = {}

    async def sender(lane: Lane) -> None:
        while len(granted) < 5:
            seq = await g.acquire(lane)
            if seq is not None:
                granted[seq] = lane

    loops = [asyncio.create_task(sender(B)), asyncio.create_task(sender(T))]
    await asyncio.sleep(0.01)
    now = time.monotonic()
    g.bucket.tokens, g.bucket.updated_at = 1.0, now
    g._hand_out()  # a token due now: transactional's turn
    g.observe(first, now, limit=60, remaining=4)  # four more, in the same pass
    async with asyncio.timeout(2):
        while len(granted) < 5:
            await asyncio.sleep(0.001)
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    order = [granted[seq] for seq in sorted(granted)]
    assert "".join("B" if lane == B else "T" for lane in order[:5]) == "TTTBT"
