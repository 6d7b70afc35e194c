"""A lean async client for the Kirim endpoints the consumer uses.

Built on aiohttp rather than httpx: the send path must sustain thousands of requests
a second on one core, and httpx's request/response layer costs several times more
CPU per call even with an aiohttp transport (figures in docs/benchmarks.md). The
client never retries by itself: every answer goes back to the dispatcher's policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from multidict import CIMultiDictProxy

from consumer.dispatch.tiers import parse_tier
from consumer.kirim.answers import SendAnswer, read_send_answer


class KirimTransportError(Exception):
    """The request got no usable HTTP answer; `code` is `timeout` or `network_error`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Account:
    phone_number_id: str
    status: str
    # Unique recipients per rolling window; None when the API does not say.
    tier: int | None
    quality_rating: str | None


@dataclass(frozen=True, slots=True)
class MessageState:
    """`GET /v1/{phone_number_id}/messages/{id}`: where the API says a message is."""

    status: str | None
    error_code: str | None
    provider_code: int | None
    # The recipient, when the API says (E.164).
    to: str | None = None


class _MessageError(msgspec.Struct):
    code: str | None = None
    provider_code: int | None = None


class _MessageData(msgspec.Struct):
    status: str | None = None
    to: str | None = None
    error: _MessageError | None = None


class _MessageBody(msgspec.Struct):
    data: _MessageData


class _AccountItem(msgspec.Struct):
    phone_number_id: str
    status: str = "unknown"
    messaging_tier: int | str | None = None
    quality_rating: str | None = None


class _Accounts(msgspec.Struct):
    data: list[_AccountItem]


class _RateLimits(msgspec.Struct):
    write_per_minute: int | None = None
    read_per_minute: int | None = None


class _MeData(msgspec.Struct):
    rate_limits: _RateLimits | None = None


class _Me(msgspec.Struct):
    data: _MeData


# A send's answer is read up to max_answer_bytes; listings (accounts) up to this.
_MAX_LISTING_BYTES = 8 * 1024 * 1024
_PHONE_NUMBER_ID = re.compile(r"^[0-9]{6,20}$")
_accounts_decoder = msgspec.json.Decoder(_Accounts)
_me_decoder = msgspec.json.Decoder(_Me)
_message_decoder = msgspec.json.Decoder(_MessageBody)
_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], what: str, raw: bytes) -> _T:
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise KirimTransportError("network_error", f"{what}: unreadable answer ({error})") from None


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
                raw = await response.content.read(limit + 1)
                truncated = len(raw) > limit
                return response.status, raw[:limit], truncated, response.headers
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
        data = _decode(_message_decoder, "GET message", raw).data
        error = data.error
        return MessageState(
            status=data.status,
            error_code=error.code if error else None,
            provider_code=error.provider_code if error else None,
            to=data.to,
        )

    async def accounts(self) -> list[Account]:
        status, raw, truncated, _ = await self._request("GET", "/accounts?status=all")
        if status != 200 or truncated:
            raise KirimTransportError("network_error", f"GET /accounts answered {status}")
        return [
            Account(
                phone_number_id=item.phone_number_id,
                status=item.status,
                tier=parse_tier(item.messaging_tier),
                quality_rating=item.quality_rating,
            )
            for item in _decode(_accounts_decoder, "GET /accounts", raw).data
            # Meta's numeric id: anything else cannot be sent from, stored or put in a URL.
            if _PHONE_NUMBER_ID.match(item.phone_number_id)
        ]

    async def rate_limits(self) -> tuple[int | None, int | None]:
        """(write, read) requests per minute from `GET /v1/me`; None where not reported."""
        status, raw, truncated, _ = await self._request("GET", "/me")
        if status == 401:
            return None, None
        if status != 200 or truncated:
            raise KirimTransportError("network_error", f"GET /me answered {status}")
        limits = _decode(_me_decoder, "GET /me", raw).data.rate_limits
        return (limits.write_per_minute, limits.read_per_minute) if limits else (None, None)
