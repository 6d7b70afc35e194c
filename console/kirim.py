"""What the Kirim API says about the senders, kept for a minute.

The Senders page shows each number's tier, quality rating and status as the API
reports them (`GET /v1/accounts`), and the fit plan needs the write budget
(`GET /v1/me`). Both are read at most once per `CACHE_SECONDS` whatever the page
traffic, so the console's share of the read budget stays negligible, and in the
background: a page waits at most `WAIT_SECONDS` for them. When the API cannot be
reached the last answer is shown with its age, or nothing with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Final

from consumer.kirim.client import Account, KirimClient, KirimTransportError
from runtime.logs import get_logger

log = get_logger(__name__)

CACHE_SECONDS: Final = 60.0
WAIT_SECONDS: Final = 0.5


@dataclass(frozen=True, slots=True)
class ApiView:
    accounts: dict[str, Account] = field(default_factory=dict)
    write_per_minute: int | None = None
    read_at: float | None = None  # time.time() of the answer; None: never answered
    problem: str | None = None  # why the last read failed, if it did

    def tier_of(self, phone_number_id: str | None, recorded: int | None) -> int | None:
        """The number's tier as the API reports it, else the one the dispatcher recorded."""
        account = self.accounts.get(phone_number_id or "")
        return (account.tier if account else None) or recorded


class KirimView:
    def __init__(self, client: KirimClient) -> None:
        self._client = client
        self._view = ApiView(problem="not read yet")
        self._refreshing: asyncio.Task[None] | None = None
        self._tried_at: float | None = None

    async def current(self) -> ApiView:
        """The cached view. When it is older than CACHE_SECONDS a refresh starts in the
        background, and is waited for at most WAIT_SECONDS: a page never waits for an
        API that is slow or down longer than that."""
        stale = self._tried_at is None or time.monotonic() - self._tried_at >= CACHE_SECONDS
        if stale and (self._refreshing is None or self._refreshing.done()):
            self._tried_at = time.monotonic()
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        if self._refreshing is not None and not self._refreshing.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._refreshing), WAIT_SECONDS)
        return self._view

    async def _refresh(self) -> None:
        try:
            accounts = await self._client.accounts()
            write, _ = await self._client.rate_limits()
        except KirimTransportError as error:
            log.warning("console_kirim_unavailable", error=str(error))
            old = self._view
            self._view = ApiView(old.accounts, old.write_per_minute, old.read_at, str(error))
        else:
            self._view = ApiView({a.phone_number_id: a for a in accounts}, write, time.time())

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing
        await self._client.close()
