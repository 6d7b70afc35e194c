"""A lean async client for the Kirim endpoints the consumer uses.

Built on aiohttp rather than httpx: the send path must sustain thousands of requests
a second on one core, and httpx's request/response layer costs several times more
CPU per call even with an aiohttp transport (figures in docs/benchmarks.md). The
client never retries by itself: every answer goes back to the dispatcher's policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from multidict import CIMultiDictProxy

from consumer.kirim.answers import SendAnswer, printable, read_send_answer
from consumer.kirim.resources import (
    Account,
    MessageState,
    SkippedAccounts,
    parse_accounts,
    parse_message,
    parse_rate_limits,
)
from runtime.logs import get_logger

__all__ = ["Account", "KirimClient", "KirimTransportError", "MessageState"]

log = get_logger(__name__)


class KirimTransportError(Exception):
    """The request got no usable HTTP answer; `code` is `timeout` or `network_error`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


# A send's answer is read up to max_answer_bytes; listings (accounts) up to this.
_MAX_LISTING_BYTES = 8 * 1024 * 1024
_T = TypeVar("_T")


def _decode(parse: Callable[[bytes], _T], what: str, raw: bytes) -> _T:
    try:
        return parse(raw)
    except msgspec.DecodeError as error:
        raise KirimTransportError("network_error", f"{what}: unreadable answer ({error})") from None


async def _rest_of_body(content: aiohttp.StreamReader, first: bytes, limit: int) -> bytes:
    """`first` and what follows it up to EOF, or until more than `limit` bytes are in."""
    chunks, size = [first], len(first)
    while size <= limit:
        chunk = await content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    # Past the limit the rest stays unread, and aiohttp closes the connection.
    return b"".join(chunks)


class KirimClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 10.0,
        max_connections: int = 200,
        max_answer_bytes: int = 64 * 1024,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_connections = max_connections
        # A send's answer is a few hundred bytes; reading more only costs memory.
        self._max_answer_bytes = max_answer_bytes
        self._session: aiohttp.ClientSession | None = None
        self._skipped_accounts = SkippedAccounts()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=30, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, connector=connector
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> tuple[int, bytes, bool, CIMultiDictProxy[str]]:
        """(status, at most `limit` bytes of the body, whether it was longer, headers).
        Redirects are not followed: a redirected POST would turn into a GET."""
        limit = limit or _MAX_LISTING_BYTES
        headers = {"Idempotency-Key": key} if key else None
        try:
            async with self._open().request(
                method, self._base + path, data=body, headers=headers, allow_redirects=False
            ) as response:
                # Not `read(limit + 1)`: that returns whatever is buffered, only a prefix
                # of a body that arrives in pieces (chunked, flushed in parts, larger than
                # a TCP segment). The common case is one piece: the whole body, EOF seen.
                content = response.content
                raw = await content.readany()
                if len(raw) <= limit and not content.at_eof():
                    raw = await _rest_of_body(content, raw, limit)
                if len(raw) > limit:
                    return response.status, raw[:limit], True, response.headers
                return response.status, raw, False, response.headers
        except TimeoutError as error:
            raise KirimTransportError("timeout", str(error) or "request timed out") from error
        except aiohttp.ClientError as error:
            raise KirimTransportError("network_error", type(error).__name__) from error

    async def send_template(self, phone_number_id: str, key: str, body: bytes) -> SendAnswer:
        """POST one message. Any HTTP answer is returned; no answer raises KirimTransportError."""
        status, raw, truncated, headers = await self._request(
            "POST", f"/{phone_number_id}/messages", body=body, key=key, limit=self._max_answer_bytes
        )
        return read_send_answer(status, raw, truncated, headers.get)

    async def message(self, phone_number_id: str, message_id: str) -> MessageState | None:
        """The message as the API knows it now; None when it does not know the id."""
        status, raw, truncated, _ = await self._request(
            "GET", f"/{phone_number_id}/messages/{quote(message_id, safe='')}"
        )
        if status == 404:
            return None
        if status != 200 or truncated:
            raise KirimTransportError("network_error", f"GET message answered {status}")
        return _decode(parse_message, "GET message", raw)

    async def accounts(self) -> list[Account]:
        """Every account the API could describe; items it could not are logged and left out."""
        status, raw, truncated, _ = await self._request("GET", "/accounts?status=all")
        if status != 200 or truncated:
            raise KirimTransportError("network_error", f"GET /accounts answered {status}")
        listing = _decode(parse_accounts, "GET /accounts", raw)
        if skipped := self._skipped_accounts.news(listing):
            log.warning("kirim_accounts_skipped", count=len(skipped), first=printable(skipped[0]))
        return listing.accounts

    async def rate_limits(self) -> tuple[int | None, int | None]:
        """(write, read) requests per minute from `GET /v1/me`; None where not reported."""
        status, raw, truncated, _ = await self._request("GET", "/me")
        if status == 401:
            return None, None
        if status != 200 or truncated:
            raise KirimTransportError("network_error", f"GET /me answered {status}")
        return _decode(parse_rate_limits, "GET /me", raw)
