"""The organisation's write tokens handed out by lane (priority lanes, `lanes.py`).

One gate per dispatcher instance, shared by the workers of all its numbers. The
`RatePacer` inside says when the next token is there (its refill, the server's
re-syncs, a 429's hold); sends that find none wait in a `TurnQueue`, and each token
goes to the waiter whose turn it is, so a transactional send overtakes the bulk sends
already waiting while bulk keeps its minimum share. A send that finds a token and no
one waiting takes it at once (always, while the rate does not bind and no probe is out).

A token is taken when it is granted, not when it is asked for: a waiter that gives up
(halted) costs nothing, and the pacer's in-flight count holds only requests that are
really on their way. Every change to the bucket (an answer's headers, a 429, a token
given back) hands out what has become available at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from consumer.dispatch.lanes import Lane, TurnQueue
from consumer.dispatch.pacing import RatePacer

# A wait shorter than this is float noise in the refill, not a token still to come.
_EPSILON = 1e-6


class PacerGate:
    def __init__(
        self, bucket: RatePacer, bulk_min_share: float, clock: Callable[[], float]
    ) -> None:
        self.bucket = bucket
        self._clock = clock
        self._queue: TurnQueue[asyncio.Future[int | None]] = TurnQueue(bulk_min_share)
        self._wakeup: asyncio.Handle | None = None

    def waiting(self, lane: Lane) -> int:
        return self._queue.waiting(lane)

    async def acquire(self, lane: Lane, *stop: asyncio.Event) -> int | None:
        """Wait for a token: its sequence number for `observe` and the others, or None
        when one of `stop` was set first (nothing taken)."""
        if any(event.is_set() for event in stop):
            return None
        now = self._clock()
        if not self._queue and self.bucket.ready_in(now) <= _EPSILON:
            return self.bucket.reserve(now)[0]
        granted: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.push(lane, granted)
        watchers = [asyncio.ensure_future(event.wait()) for event in stop]

        def stopped(watcher: asyncio.Future[Any]) -> None:
            if not watcher.cancelled():
                self._give_up(granted)

        for watcher in watchers:
            watcher.add_done_callback(stopped)
        self._hand_out()
        try:
            return await granted
        except asyncio.CancelledError:
            if self._queue.remove(granted):
                granted.cancel()
            elif granted.done() and not granted.cancelled():
                seq = granted.result()
                if seq is not None:
                    self.release(seq)  # granted as it was cancelled: the token goes back
            raise
        finally:
            for watcher in watchers:
                watcher.cancel()

    def _give_up(self, granted: asyncio.Future[int | None]) -> None:
        """A stop came while waiting: withdraw (a token already granted is the caller's,
        who finds itself halted and gives it back)."""
        if self._queue.remove(granted) and not granted.done():
            granted.set_result(None)

    def release(self, seq: int) -> None:
        self.bucket.release(seq)
        self._changed()

    def forget(self, seq: int) -> None:
        self.bucket.forget(seq)
        self._changed()

    def observe(self, seq: int, now: float, limit: float | None, remaining: float | None) -> None:
        self.bucket.observe(seq, now, limit, remaining)
        self._changed()

    def throttle(self, seq: int, now: float, retry_after: float) -> None:
        self.bucket.throttle(seq, now, retry_after)
        self._changed()

    def _changed(self) -> None:
        """The bucket changed (an answer, a token given back): hand out on the next pass,
        not now. A sender granted a token in this pass has not asked for its next one
        yet; handing out now would give a token that a re-sync just made available to
        the other lane without it having its turn."""
        if self._queue:
            if self._wakeup is not None:
                self._wakeup.cancel()
            self._wakeup = asyncio.get_running_loop().call_soon(self._hand_out)

    def _hand_out(self) -> None:
        """Grant the next token if it is there, else wake up when it will be.

        One grant per pass of the event loop: the sender just served runs before the
        next pass and asks again for its next send, so when several tokens come at once
        (a re-sync, a late timer) it competes for them too instead of leaving them all
        to whoever else was waiting."""
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        if not self._queue:
            return
        loop = asyncio.get_running_loop()
        now = self._clock()
        wait = self.bucket.ready_in(now)
        if wait > _EPSILON:
            self._wakeup = loop.call_later(wait, self._hand_out)
            return
        granted = self._queue.pop()
        if granted is not None and not granted.done():
            granted.set_result(self.bucket.reserve(now)[0])
        if self._queue:
            self._wakeup = loop.call_soon(self._hand_out)
