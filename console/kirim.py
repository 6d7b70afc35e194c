"""What the Kirim API says about the senders, kept for a minute.

The Senders page shows each number's tier, quality rating and status as the API
reports them (`GET /v1/accounts`), and the fit plan needs the write budget
(`GET /v1/me`). Both are read at most once per `CACHE_SECONDS` whatever the page
traffic, so the console's share of the read budget stays negligible; when the API
cannot be reached the last answer is shown with its age, or nothing with the reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final

from consumer.kirim.client import Account, KirimClient, KirimTransportError
from runtime.logs import get_logger

log = get_logger(__name__)

CACHE_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class ApiView:
    accounts: dict[str, Account] = field(default_factory=dict)
    write_per_minute: int | None = None
    read_at: float | None = None  # time.time() of the answer; None: never answered
    problem: str | None = None  # why the last read failed, if it did


class KirimView:
    def __init__(self, client: KirimClient) -> None:
        self._client = client
        self._view = ApiView()
        self._lock = asyncio.Lock()
        self._tried_at = 0.0

    async def current(self) -> ApiView:
        """The cached view, refreshed first when older than CACHE_SECONDS."""
        if time.monotonic() - self._tried_at < CACHE_SECONDS and self._tried_at:
            return self._view
        async with self._lock:
            if time.monotonic() - self._tried_at < CACHE_SECONDS and self._tried_at:
                return self._view
            self._tried_at = time.monotonic()
            try:
                accounts = await self._client.accounts()
                write, _ = await self._client.rate_limits()
            except KirimTransportError as error:
                log.warning("console_kirim_unavailable", error=str(error))
                self._view = ApiView(
                    self._view.accounts,
                    self._view.write_per_minute,
                    self._view.read_at,
                    problem=str(error),
                )
            else:
                self._view = ApiView(
                    {a.phone_number_id: a for a in accounts}, write, time.time(), None
                )
        return self._view

    async def close(self) -> None:
        await self._client.close()
