"""The Kirim accounts list (`GET /v1/accounts?status=all`), cached, and sender decisions.

`AccountDirectory.decide(sender_spec, resolved)` answers from a list at most
`cache_seconds` old; an answer that would pause a campaign is checked once more
against a fresh list, so a number that just connected is not missed. When the
API is unreachable a list up to `stale_seconds` old is used; with none, the call
waits and retries with capped exponential backoff until the API answers (or the
caller is cancelled), and `waiting_seconds()` says for how long (metrics, health).
A 401, 408 or 429 is waited out the same way (health shows the wait). A refusal
(403, 404, other 4xx) raises `AccountsRefused`: that is configuration, and
retrying would not fix it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from consumer.intake import metrics
from consumer.intake.errors import AccountsRefused, AccountsUnavailable
from consumer.intake.sender import SenderAccount, SenderDecision, decide_sender
from consumer.kirim.answers import printable
from consumer.kirim.resources import SkippedAccounts, parse_accounts
from runtime.logs import get_logger

log = get_logger(__name__)

_FIRST_RETRY_SECONDS: Final = 0.2
# Waited out like an outage, not refused: 408 and 429 pass; a 401 (an expired or revoked
# key) can end without a restart (the key is renewed at Kirim), and exiting would take the
# dispatcher down with intake, although it stops every sender on a 401 by itself and
# resumes them once the accounts call authenticates again.
_WAITED_OUT: Final = frozenset({401, 408, 429})


class AccountsClient:
    """One call: the organisation's accounts. Speaks httpx over the aiohttp transport."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout_seconds,
            transport=transport or AiohttpTransport(),
        )
        self._skipped = SkippedAccounts()

    async def fetch(self) -> list[SenderAccount]:
        try:
            response = await self._client.get("accounts", params={"status": "all"})
        except httpx.TransportError as error:
            raise AccountsUnavailable(f"{type(error).__name__}: {error}") from error
        status = response.status_code
        if status in _WAITED_OUT or status >= 500:
            raise AccountsUnavailable(f"HTTP {status}: {_code(response)}")
        if status >= 400:
            # Branch on the envelope's code only for the message; never log the key.
            raise AccountsRefused(f"GET /v1/accounts answered HTTP {status}: {_code(response)}")
        try:
            listing = parse_accounts(response.content)
        except msgspec.DecodeError as error:
            raise AccountsUnavailable(f"unreadable accounts body: {error}") from error
        if skipped := self._skipped.news(listing):
            log.warning("accounts_skipped", count=len(skipped), first=printable(skipped[0]))
        return listing.accounts

    async def aclose(self) -> None:
        await self._client.aclose()


def _code(response: httpx.Response) -> str:
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return "no error envelope"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else "no error envelope"


class AccountDirectory:
    """The accounts list behind a TTL cache, with a bounded-backoff wait when unreachable."""

    def __init__(
        self,
        client: AccountsClient,
        *,
        cache_seconds: float = 60.0,
        stale_seconds: float = 600.0,
        retry_max_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._stale_seconds = stale_seconds
        self._retry_max_seconds = retry_max_seconds
        self._clock = clock
        self._accounts: list[SenderAccount] | None = None
        self._fetched_at = 0.0
        self._waiting_since: float | None = None
        self._lock = asyncio.Lock()
        metrics.ACCOUNTS_WAITING.set_function(self.waiting_seconds)

    def waiting_seconds(self) -> float:
        """How long the current wait for the API has lasted; 0 when not waiting."""
        since = self._waiting_since
        return 0.0 if since is None else self._clock() - since

    async def _refresh(self) -> list[SenderAccount]:
        accounts = await self._client.fetch()
        self._accounts, self._fetched_at = accounts, self._clock()
        return accounts

    async def accounts(self, *, max_age: float | None = None) -> list[SenderAccount]:
        """A list at most `max_age` (default: the cache TTL) seconds old, if the API answers."""
        limit = self._cache_seconds if max_age is None else max_age
        # One caller fetches (or waits) at a time; the others then find the cache fresh.
        async with self._lock:
            try:
                return await self._fresh_enough(limit)
            finally:
                self._waiting_since = None

    async def _fresh_enough(self, limit: float) -> list[SenderAccount]:
        delay = _FIRST_RETRY_SECONDS
        while True:
            age = self._clock() - self._fetched_at
            if self._accounts is not None and age <= limit:
                return self._accounts
            try:
                accounts = await self._refresh()
            except AccountsRefused:
                metrics.ACCOUNTS_REQUESTS.labels(outcome="refused").inc()
                raise
            except AccountsUnavailable as error:
                metrics.ACCOUNTS_REQUESTS.labels(outcome="unavailable").inc()
                if self._accounts is not None and age <= self._stale_seconds:
                    log.warning("accounts_stale_used", error=str(error), age=round(age, 1))
                    return self._accounts
                if self._waiting_since is None:
                    self._waiting_since = self._clock()
                log.warning("accounts_unavailable", error=str(error), retry_in=delay)
                metrics.RETRIES.labels(cause="accounts").inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_seconds)
            else:
                metrics.ACCOUNTS_REQUESTS.labels(outcome="ok").inc()
                return accounts

    async def decide(self, sender_spec: str, resolved: str | None) -> SenderDecision:
        """The sender for a campaign (see `consumer.intake.sender`), rechecked fresh before
        it pauses anything."""
        decision = decide_sender(sender_spec, resolved, await self.accounts())
        if decision.problem is not None and self._clock() - self._fetched_at > 1.0:
            decision = decide_sender(sender_spec, resolved, await self.accounts(max_age=1.0))
        return decision
