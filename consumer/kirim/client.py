"""A lean async client for the Kirim endpoints the consumer uses.

Built on aiohttp rather than httpx: the send path must sustain thousands of requests
a second on one core, and httpx's request/response layer costs several times more
CPU per call even with an aiohttp transport (figures in docs/benchmarks.md). The
client never retries by itself: every answer goes back to the dispatcher's policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import msgspec
from multidict import CIMultiDictProxy

from consumer.dispatch.tiers import parse_tier


class KirimTransportError(Exception):
    """The request got no HTTP answer; `code` is `timeout` or `network_error`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@dataclass(frozen=True, slots=True)
class SendAnswer:
    status: int
    message_id: str | None
    error_code: str | None
    error_message: str | None
    retry_after: float | None
    rate_limit: float | None
    rate_remaining: float | None
    replayed: bool


@dataclass(frozen=True, slots=True)
class Account:
    phone_number_id: str
    status: str
    # Unique recipients per rolling window; None when the API does not say.
    tier: int | None
    quality_rating: str | None


class _Error(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class _Message(msgspec.Struct):
    id: str | None = None


class _SendBody(msgspec.Struct):
    data: _Message | None = None
    error: _Error | None = None


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


_send_decoder = msgspec.json.Decoder(_SendBody)
_accounts_decoder = msgspec.json.Decoder(_Accounts)
_me_decoder = msgspec.json.Decoder(_Me)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class KirimClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 10.0,
        max_connections: int = 200,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_connections = max_connections
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
        self, method: str, path: str, *, body: bytes | None = None, key: str | None = None
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        headers = {"Idempotency-Key": key} if key else None
        try:
            async with self._open().request(
                method, self._base + path, data=body, headers=headers
            ) as response:
                return response.status, await response.read(), response.headers
        except TimeoutError as error:
            raise KirimTransportError("timeout", str(error) or "request timed out") from error
        except aiohttp.ClientError as error:
            raise KirimTransportError("network_error", type(error).__name__) from error

    async def send_template(self, phone_number_id: str, key: str, body: bytes) -> SendAnswer:
        """POST one message. Any HTTP answer is returned; no answer raises KirimTransportError."""
        status, raw, headers = await self._request(
            "POST", f"/{phone_number_id}/messages", body=body, key=key
        )
        try:
            parsed = _send_decoder.decode(raw) if raw else _SendBody()
        except msgspec.DecodeError:
            parsed = _SendBody()  # a proxy's HTML error page: the status alone decides
        get = headers.get
        return SendAnswer(
            status=status,
            message_id=parsed.data.id if parsed.data else None,
            error_code=parsed.error.code if parsed.error else None,
            error_message=parsed.error.message if parsed.error else None,
            retry_after=_number(get("Retry-After")),
            rate_limit=_number(get("X-RateLimit-Limit")),
            rate_remaining=_number(get("X-RateLimit-Remaining")),
            replayed=get("Idempotent-Replayed", "").lower() == "true",
        )

    async def accounts(self) -> list[Account]:
        status, raw, _ = await self._request("GET", "/accounts?status=all")
        if status != 200:
            raise KirimTransportError("network_error", f"GET /accounts answered {status}")
        return [
            Account(
                phone_number_id=item.phone_number_id,
                status=item.status,
                tier=parse_tier(item.messaging_tier),
                quality_rating=item.quality_rating,
            )
            for item in _accounts_decoder.decode(raw).data
        ]

    async def write_per_minute(self) -> int | None:
        """The organisation's write budget from `GET /v1/me`; None when not reported."""
        status, raw, _ = await self._request("GET", "/me")
        if status == 401:
            return None
        if status != 200:
            raise KirimTransportError("network_error", f"GET /me answered {status}")
        limits = _me_decoder.decode(raw).data.rate_limits
        return limits.write_per_minute if limits else None
