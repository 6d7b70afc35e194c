"""Fixtures for the sandbox's tests: a fresh sandbox per test over loopback, a webhook receiver.

Nothing here needs Kafka or Postgres. `launch(config)` starts a sandbox with a
`RuntimeConfig` document (merged over the defaults) and returns an `Api`
bound to it; `receiver` is a scripted webhook endpoint that records requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
from httpx_aiohttp import AiohttpTransport

from runtime import defaults
from runtime.httpserve import EmbeddedServer
from sandbox.config import parse_config
from sandbox.settings import SandboxSettings
from sandbox.testing import RunningSandbox, running_sandbox

NUMBER_ID = defaults.DEFAULT_PHONE_NUMBER_ID
API_KEY = defaults.KIRIM_API_KEY
SECRET = defaults.KIRIM_WEBHOOK_SECRETS
WAIT_SECONDS = 10.0


def template_body(
    to: str = "+628111222333",
    *,
    name: str = "promo_flash_sale",
    params: tuple[str, ...] = ("Budi",),
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": "id_ID"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
            ],
        },
    }


@dataclass
class Api:
    """A client for one sandbox: the API with the right key, and its control endpoints."""

    sandbox: RunningSandbox
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    async def send(
        self,
        to: str = "+628111222333",
        *,
        key: str | None = None,
        body: Any = None,
        number_id: str = NUMBER_ID,
        wait_seconds: float | None = None,
    ) -> httpx.Response:
        headers = dict(self.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        payload = template_body(to) if body is None else body
        return await self.client.post(
            f"{self.sandbox.api_url}/{number_id}/messages",
            json=payload,
            headers=headers,
            timeout=wait_seconds if wait_seconds is not None else WAIT_SECONDS,
        )

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(
            self.sandbox.api_url + path, headers=self.auth, params=params or None
        )

    async def message(self, message_id: str, number_id: str = NUMBER_ID) -> dict[str, Any]:
        response = await self.get(f"/{number_id}/messages/{message_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def wait_status(self, message_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            data = await self.message(message_id)
            if data["status"] == status or time.monotonic() > deadline:
                assert data["status"] == status, data
                return data
            await asyncio.sleep(0.01)

    async def audit(self) -> dict[str, Any]:
        response = await self.client.get(self.sandbox.control_url + "/audit")
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()["data"]
        return report

    async def patch(self, patch: dict[str, Any]) -> httpx.Response:
        return await self.client.patch(
            self.sandbox.control_url + "/config",
            content=msgspec.json.encode(patch),
            headers={"Content-Type": "application/json"},
        )

    async def messages(self, **params: str) -> dict[str, Any]:
        response = await self.client.get(self.sandbox.control_url + "/messages", params=params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page


Launch = Callable[..., Awaitable[Api]]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The service's kind of client: httpx over the aiohttp transport."""
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=WAIT_SECONDS) as client:
        yield client


@pytest.fixture(scope="session")
async def shared_sandbox() -> AsyncIterator[RunningSandbox]:
    """One sandbox for the session; `launch` resets and reconfigures it per test."""
    async with running_sandbox(SandboxSettings(port=0)) as running:
        yield running


@pytest.fixture
async def launch(http: httpx.AsyncClient, shared_sandbox: RunningSandbox) -> AsyncIterator[Launch]:
    """`await launch(config)`: a sandbox running `config` (merged over the defaults).

    It is the shared sandbox, reset and patched over HTTP, unless the test asks
    for start-up settings or `dedicated=True` (a fresh server costs ~0.2 s to stop).
    """
    async with contextlib.AsyncExitStack() as stack:

        async def _launch(
            config: dict[str, Any] | None = None, *, dedicated: bool = False, **settings: Any
        ) -> Api:
            if dedicated or settings:
                built = SandboxSettings(port=0, config=parse_config(config or {}), **settings)
                running = await stack.enter_async_context(running_sandbox(built))
                return Api(running, http)
            api = Api(shared_sandbox, http)
            reset = await http.post(shared_sandbox.control_url + "/reset")
            assert reset.status_code == 200, reset.text
            if config:
                patched = await api.patch(config)
                assert patched.status_code == 200, patched.text
            return api

        yield _launch


@pytest.fixture
async def api(launch: Launch) -> Api:
    """A sandbox with the default config (no webhooks)."""
    return await launch()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = msgspec.json.decode(self.body)
        return document


@dataclass
class Receiver:
    """A webhook endpoint; `answer(delivery)` picks each HTTP status (default 200)."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    answer: Callable[[Delivery], int] = lambda _: 200

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        delivery = Delivery(headers, b"".join(chunks), time.monotonic())
        self.deliveries.append(delivery)
        status = self.answer(delivery)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, count: int) -> list[Delivery]:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.deliveries) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(self.deliveries) >= count, f"{len(self.deliveries)} of {count} deliveries"
        return self.deliveries


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    endpoint = Receiver()
    server = EmbeddedServer(endpoint, "127.0.0.1", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    async with asyncio.timeout(WAIT_SECONDS):
        while not server.started:
            await asyncio.sleep(0.005)
    endpoint.url = f"http://127.0.0.1:{server.bound_port()}/kirim-hook"
    yield endpoint
    stop.set()
    await task
