"""Keep the planner's picture of the ledger current while big campaigns arrive.

The send path's statements pick their plans from the ledger's statistics. On a ledger
with a long history, a million fresh pending rows are a small share of the table, so
autovacuum's analyze (after 10% of the table changes) comes late or never: the planner
then believes there are no pending rows at all and plans the claim of 500 rows as a hash
of every pending row of the campaign, per batch, which made sending 20x slower over a
10M-row history (docs/benchmarks.md). Intake knows when it added many pending rows:
after every `every_rows` of them (`INTAKE_ANALYZE_EVERY_ROWS`) it runs one
`ANALYZE ledger` (a sample of ~30,000 rows, a fraction of a second), in the
background and never two at once.
`SKIP_LOCKED` gives way to an autovacuum already working on the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg

from consumer.intake import metrics
from runtime.db import TRANSIENT_ERRORS
from runtime.logs import get_logger

log = get_logger(__name__)


class LedgerStatistics:
    def __init__(self, pool: asyncpg.Pool, every_rows: int) -> None:
        self._pool = pool
        self._every_rows = every_rows
        self._unanalyzed = 0
        self._running: asyncio.Task[None] | None = None

    def added(self, pending_rows: int) -> None:
        """`pending_rows` were committed; analyze once enough have come in."""
        self._unanalyzed += pending_rows
        if self._every_rows <= 0 or self._unanalyzed < self._every_rows:
            return
        if self._running is not None and not self._running.done():
            return  # the running one will see them, or the next batch starts another
        self._unanalyzed = 0
        self._running = asyncio.get_running_loop().create_task(self._analyze())

    async def _analyze(self) -> None:
        started = time.monotonic()
        try:
            await self._pool.execute("ANALYZE (SKIP_LOCKED) ledger")
        except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as error:  # type: ignore[misc]
            log.warning("ledger_analyze_failed", error=repr(error))
            return
        metrics.LEDGER_ANALYZES.inc()
        log.info("ledger_analyzed", seconds=round(time.monotonic() - started, 3))

    async def close_when_idle(self) -> None:
        """Wait for a running analyze to end (tests; a stop uses `close`)."""
        if self._running is not None:
            await self._running

    async def close(self) -> None:
        if self._running is not None and not self._running.done():
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
