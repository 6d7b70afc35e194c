"""Send results, written to the ledger in batches by a background task.

A result that is lost with the process is harmless: its row is still pending, the
next owner sends it again with the same key, and the API replays the answer. A
result the database refuses (not a passing outage: a value it cannot store, a
constraint) fails only its own recipient: the batch is split until the refused
result is alone, and that one is recorded as an `api_anomaly`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import asyncpg

from consumer.dispatch import metrics
from consumer.dispatch.outcome import (
    DUPLICATE_ID,
    LEDGER_REFUSED,
    IdConflict,
    anomalous,
    without_duplicate_ids,
)
from consumer.dispatch.store import DispatchStore, RowResult
from consumer.kirim.answers import printable
from runtime.db import TRANSIENT_ERRORS, retrying
from runtime.logs import get_logger, mask_phone

log = get_logger(__name__)


# message id -> the recipient (E.164) the API says it is to, None when it cannot say.
RecipientOf = Callable[[str], Awaitable[str | None]]
# Told each batch once it is written (the template-health breaker counts its sends).
Written = Callable[[Sequence[RowResult]], Awaitable[None]]


class ResultWriter:
    def __init__(
        self,
        store: DispatchStore,
        token: uuid.UUID,
        flush_seconds: float,
        max_batch: int = 1000,
        recipient_of: RecipientOf | None = None,
        *,
        on_written: Written | None = None,
    ) -> None:
        self._store = store
        self._on_written = on_written
        self._recipient_of = recipient_of
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
                await self._write(batch)
            except BaseException:
                self._pending[:0] = batch  # keep them for the next try or the final flush
                raise
            if self._on_written is not None:
                await self._on_written(batch)
            metrics.LAST_PROGRESS.set(time.time())

    async def _write(self, batch: Sequence[RowResult]) -> None:
        try:
            with metrics.STATEMENT_SECONDS.labels("record_results").time():
                conflicts = await retrying(
                    self._store.record_results, batch, self._token, without_duplicate_ids
                )
        except asyncpg.PostgresError as error:
            if isinstance(error, TRANSIENT_ERRORS):
                raise
            if len(batch) == 1:
                await self._refused(batch[0], error)
                return
            middle = len(batch) // 2
            await self._write(batch[:middle])
            await self._write(batch[middle:])
            return
        for conflict in conflicts:
            await self._settle_conflict(conflict)

    async def _settle_conflict(self, conflict: IdConflict) -> None:
        """Two recipients answered with one message id: the API, asked whose it is, may
        say it is the newcomer's, which then takes it from the earlier holder."""
        loser = conflict.failed
        recipient = await self._recipient_of(conflict.message_id) if self._recipient_of else None
        if conflict.newcomer_is_rightful(recipient):
            detail = printable(
                f"{DUPLICATE_ID}: the API answered {conflict.message_id}, which it says is "
                "another recipient's"
            )
            if await retrying(
                self._store.reassign_message,
                conflict.message_id,
                conflict.holder,
                conflict.original,
                detail,
            ):
                loser = replace(
                    conflict.original,
                    campaign_id=conflict.holder[0],
                    phone=conflict.holder[1],
                    error_message=detail,
                )
        _report(loser, DUPLICATE_ID)

    async def _refused(self, result: RowResult, error: asyncpg.PostgresError) -> None:
        detail = f"the ledger refused the result (SQLSTATE {error.sqlstate}: {error})"
        bad = anomalous(result, LEDGER_REFUSED, detail)
        # Only the key columns and constants are left, which the ledger already holds.
        await retrying(self._store.record_results, [bad], self._token, without_duplicate_ids)
        _report(bad, LEDGER_REFUSED)

    async def run(self, done: asyncio.Event) -> None:
        """Flush every `flush_seconds` until `done` is set, then once more."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            await self.flush()
        await self.flush()


def _report(result: RowResult, kind: str) -> None:
    metrics.API_ANOMALIES.labels(kind).inc()
    log.warning(
        "api_anomaly",
        kind=kind,
        campaign_id=str(result.campaign_id),
        phone=mask_phone(result.phone),
        detail=result.error_message,
    )
