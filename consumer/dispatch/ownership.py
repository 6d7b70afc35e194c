"""Which instance sends for which number: a PostgreSQL session advisory lock per number.

The locks live on one dedicated connection. When the process dies the server drops
the connection and with it every lock, so another instance takes the number over on
its next ownership round (about a second). Losing the connection means losing every
number at once: `alive()` reports it and the dispatcher stops its workers.
"""

from __future__ import annotations

import asyncpg

from consumer.dispatch.store import Q
from runtime.db import TRANSIENT_ERRORS

_CONNECTION_LOST: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)


class SenderOwnership:
    def __init__(self, database_url: str, instance: str = "consumer") -> None:
        self._url = database_url
        # The lock connection's application_name: who holds a number, as pg_stat_activity
        # (and the console's Senders page) shows it.
        self._name = instance[:63]
        self._connection: asyncpg.Connection | None = None
        self.owned: set[str] = set()

    async def _conn(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self.owned.clear()
            self._connection = await asyncpg.connect(
                self._url, timeout=10, server_settings={"application_name": self._name}
            )
        return self._connection

    async def alive(self) -> bool:
        """False, once, when the locks' connection turns out dead: every number is lost
        with it. The next call starts clean and the next `try_own` reconnects."""
        if self._connection is None or self._connection.is_closed():
            had_numbers = bool(self.owned)
            await self.close()
            return not had_numbers
        try:
            await self._connection.fetchval("SELECT 1", timeout=5)
        except _CONNECTION_LOST:
            await self.close()
            return False
        return True

    async def try_own(self, phone_number_id: str) -> bool:
        connection = await self._conn()
        if await connection.fetchval(Q["try_own_sender"], phone_number_id):
            self.owned.add(phone_number_id)
            return True
        return False

    async def disown(self, phone_number_id: str) -> None:
        if phone_number_id in self.owned:
            self.owned.discard(phone_number_id)
            if self._connection is not None and not self._connection.is_closed():
                await self._connection.fetchval(Q["disown_sender"], phone_number_id)

    async def close(self) -> None:
        self.owned.clear()
        if self._connection is not None:
            self._connection.terminate()
            self._connection = None
