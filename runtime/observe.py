"""`/metrics` (Prometheus text format) and `/healthz` for every service.

Health is a list of named checks, each a plain function returning `(ok, detail)`;
`/healthz` answers 200 with every check's detail when all pass, 503 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from runtime.asgi import ASGIApp, Receive, Scope, Send, respond

HealthCheck = Callable[[], tuple[bool, str]]

_encoder = msgspec.json.Encoder()


def health_report(checks: Mapping[str, HealthCheck]) -> tuple[bool, dict[str, Any]]:
    results = {name: check() for name, check in checks.items()}
    healthy = all(ok for ok, _ in results.values())
    return healthy, {
        "status": "ok" if healthy else "unhealthy",
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in results.items()},
    }


def observability_app(
    checks: Mapping[str, HealthCheck],
    registry: CollectorRegistry = REGISTRY,
    fallback: ASGIApp | None = None,
) -> ASGIApp:
    """An ASGI app for `/metrics` and `/healthz`; other paths go to `fallback` or get 404."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics" and scope["method"] == "GET":
            await respond(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode())
        elif path == "/healthz" and scope["method"] == "GET":
            healthy, report = health_report(checks)
            await respond(send, 200 if healthy else 503, _encoder.encode(report))
        elif fallback is not None:
            await fallback(scope, receive, send)
        else:
            await respond(send, 404, b'{"error":"not found"}')

    return app
