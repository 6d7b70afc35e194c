"""Send results, written to the ledger in batches by a background task.

A result that is lost with the process is harmless: its row is still pending, the
next owner sends it again with the same key, and the API replays the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from consumer.dispatch import metrics
from consumer.dispatch.store import DispatchStore, RowResult
from runtime.db import retrying


class ResultWriter:
    def __init__(
        self, store: DispatchStore, token: uuid.UUID, flush_seconds: float, max_batch: int = 1000
    ) -> None:
        self._store = store
        self._token = token
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._pending: list[RowResult] = []
        self._wake = asyncio.Event()

    def add(self, result: RowResult) -> None:
        self._pending.append(result)
        if len(self._pending) >= self._max_batch:
            self._wake.set()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            try:
                await retrying(self._store.record_results, batch, self._token)
            except BaseException:
                self._pending[:0] = batch  # keep them for the next try or the final flush
                raise
            metrics.LAST_PROGRESS.set(time.time())

    async def run(self, done: asyncio.Event) -> None:
        """Flush every `flush_seconds` until `done` is set, then once more."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            await self.flush()
        await self.flush()
