"""Chromium, Playwright and the vendored htmx work end to end, before any console exists.

A tiny Starlette app, served in-process by the repo's uvicorn wrapper, serves a page
that loads console/static/vendor/ as the console will; the browser clicks an htmx button
and receives a server-sent event through the SSE extension.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from runtime.httpserve import EmbeddedServer
from tests.console.browser import REPO_ROOT

STATIC_DIR = REPO_ROOT / "console" / "static"

INDEX = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>smoke</title>
  <script src="/static/vendor/htmx.min.js"></script>
  <script src="/static/vendor/htmx-ext-sse.js"></script>
</head>
<body>
  <button hx-get="/clicked" hx-target="#out">Click</button>
  <div id="out">not yet</div>
  <div hx-ext="sse" sse-connect="/events" sse-swap="progress" id="progress">waiting</div>
</body>
</html>
"""


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(INDEX)


async def clicked(request: Request) -> PlainTextResponse:
    return PlainTextResponse("clicked, answered by the server")


async def events(request: Request) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        # One event, then the end of the stream; `retry` keeps EventSource from
        # reconnecting while the test runs.
        yield "retry: 60000\nevent: progress\ndata: <b>42 of 42 sent</b>\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def smoke_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", index),
            Route("/clicked", clicked),
            Route("/events", events),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )


@pytest_asyncio.fixture(loop_scope="session")
async def site() -> AsyncIterator[str]:
    """The smoke app on a free loopback port (port 0: the kernel picks, no race)."""
    server = EmbeddedServer(smoke_app(), "127.0.0.1", 0)
    server.bind()
    stop = asyncio.Event()
    serving = asyncio.create_task(server.serve(stop))
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.bound_port()}"
    finally:
        stop.set()
        await serving


async def test_htmx_click_swaps_in_the_server_fragment(site: str, page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{site}/")
    assert await page.evaluate("window.htmx.version") == "2.0.11"

    await page.get_by_role("button", name="Click").click()

    await expect(page.locator("#out")).to_have_text("clicked, answered by the server")
    await expect(page.locator("#progress b")).to_have_text("42 of 42 sent")
    assert errors == []
