"""The console's ASGI application: its routing table, and the services behind it.

`build(settings)` returns the app and what must run beside it (the snapshot refresher
and the dead-letter tail), so `console.service` owns their lifetimes; tests build
the same app in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from console.actions import Actions
from console.context import Console
from console.deadletters import DeadLetterTail
from console.kirim import KirimView
from console.pages import campaigns, deadletters, recipients, senders, session
from console.quota import QuotaGauges
from console.render import templates
from console.settings import ConsoleSettings
from console.snapshots import THROUGHPUT_BUCKETS, Snapshots
from console.store import ConsoleStore, ThroughputBucket
from console.tally import Tally
from console.web import Authenticate, SecurityHeaders
from consumer.kirim.client import KirimClient
from runtime.asgi import ASGIApp
from runtime.observe import Health, observability_app

STATIC = Path(__file__).with_name("static")


async def home(request: Request) -> Response:
    return RedirectResponse("/campaigns", status_code=303)


ROUTES = [
    Route("/", home),
    Route("/login", session.login_form, methods=["GET"]),
    Route("/login", session.login, methods=["POST"]),
    Route("/logout", session.logout, methods=["POST"]),
    Route("/campaigns", campaigns.campaigns),
    Route("/campaigns/{campaign_id}", campaigns.campaign),
    Route("/campaigns/{campaign_id}/live", campaigns.live),
    Route("/campaigns/{campaign_id}/failures.csv", campaigns.failures_csv),
    Route("/campaigns/{campaign_id}/{action}", campaigns.confirm, methods=["GET"]),
    Route("/campaigns/{campaign_id}/{action}", campaigns.act, methods=["POST"]),
    Route("/recipients", recipients.search),
    Route("/dead-letters", deadletters.listing),
    Route("/dead-letters/{partition:int}/{offset:int}", deadletters.detail, methods=["GET"]),
    Route("/dead-letters/{partition:int}/{offset:int}", deadletters.republish, methods=["POST"]),
    Route("/senders", senders.listing),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def build(
    settings: ConsoleSettings,
    pool: asyncpg.Pool,
    stopping: asyncio.Event,
    health: Health | None = None,
) -> tuple[ASGIApp, Console]:
    """The app and its services; `stopping` is the server's stop event."""
    store = ConsoleStore(pool)

    async def count(campaign_id: uuid.UUID) -> tuple[Tally, list[ThroughputBucket]]:
        tally = await store.tally(campaign_id)
        return tally, await store.throughput(campaign_id, THROUGHPUT_BUCKETS)

    async def quota_used(budget_key: str, now: float) -> int:
        at = datetime.fromtimestamp(now, UTC)
        return await store.quota_used(budget_key, settings.quota_window_seconds, at)

    console = Console(
        settings=settings,
        store=store,
        snapshots=Snapshots(count, settings.live_interval_seconds),
        quota=QuotaGauges(quota_used, settings.live_interval_seconds),
        actions=Actions(settings, store),
        kirim=KirimView(
            KirimClient(
                settings.kirim_base_url,
                settings.kirim_api_key,
                timeout_seconds=min(settings.timeout_seconds, 5.0),
                max_connections=4,
            )
        ),
        dead_letters=DeadLetterTail(settings.bootstrap_servers, settings.requests_dlq_topic),
        templates=templates(),
        stopping=stopping,
    )
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(Authenticate, credentials=settings.credentials, secret=settings.secret),
        ],
    )
    app.state.console = console
    if health is not None:
        # /healthz, /readyz and /metrics in front of everything (runtime/observe.py).
        return observability_app(health, fallback=app), console
    return app, console


@contextlib.asynccontextmanager
async def background(console: Console) -> AsyncIterator[None]:
    """The snapshot and quota refreshers and the dead-letter tail, while the app serves."""
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(console.snapshots.run(stop))
            tasks.create_task(console.quota.run(stop))
            tasks.create_task(console.dead_letters.run(stop))
            try:
                yield
            finally:
                stop.set()
    finally:
        await console.kirim.close()
