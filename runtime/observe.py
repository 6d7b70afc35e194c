"""`/metrics` (Prometheus text format), `/healthz` and `/readyz`, the same for every service.

Health is a list of named checks, each a plain function returning `(ok, detail)`.
Each endpoint answers 200 with every check's detail when all of its checks pass,
503 otherwise:

- `/healthz`: is the process alive and not wedged (a supervisor may restart it
  when this fails). It answers as soon as the service listens, during start too.
- `/readyz`: can it do its job now: started (`startup`), its dependencies
  reachable, and everything `/healthz` checks. Load balancers, `depends_on`
  and the demo wait for this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from runtime.asgi import ASGIApp, Receive, Scope, Send, respond

HealthCheck = Callable[[], tuple[bool, str]]

_encoder = msgspec.json.Encoder()


class Startup:
    """Where a service is in its start, as a readiness check: failing until `done()`."""

    def __init__(self, step: str = "starting") -> None:
        self._step = step
        self._done = False

    def step(self, detail: str) -> None:
        """What the start is doing now (shown by `/readyz` while it is not done)."""
        self._step = detail

    def done(self) -> None:
        self._done = True

    @property
    def is_done(self) -> bool:
        return self._done

    def check(self) -> tuple[bool, str]:
        return (True, "started") if self._done else (False, self._step)


class Health:
    """The checks behind `/healthz` (live) and `/readyz` (live + ready); parts of a
    service add theirs as they start."""

    def __init__(
        self,
        live: Mapping[str, HealthCheck] | None = None,
        ready: Mapping[str, HealthCheck] | None = None,
    ) -> None:
        self.live: dict[str, HealthCheck] = dict(live or {})
        self.ready: dict[str, HealthCheck] = dict(ready or {})

    def readiness(self) -> dict[str, HealthCheck]:
        return {**self.ready, **self.live}


def health_report(checks: Mapping[str, HealthCheck]) -> tuple[bool, dict[str, Any]]:
    results = {name: check() for name, check in checks.items()}
    healthy = all(ok for ok, _ in results.values())
    return healthy, {
        "status": "ok" if healthy else "unhealthy",
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in results.items()},
    }


def observability_app(
    health: Health | Mapping[str, HealthCheck],
    registry: CollectorRegistry = REGISTRY,
    fallback: ASGIApp | None = None,
) -> ASGIApp:
    """An ASGI app for `/metrics`, `/healthz` and `/readyz`; other paths go to `fallback`
    or get 404. A plain mapping of checks serves both health endpoints."""
    checks = health if isinstance(health, Health) else Health(live=health)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in ("/metrics", "/healthz", "/readyz") and scope["method"] == "GET":
            if path == "/metrics":
                await respond(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode())
                return
            ok, report = health_report(checks.live if path == "/healthz" else checks.readiness())
            await respond(send, 200 if ok else 503, _encoder.encode(report))
        elif fallback is not None:
            await fallback(scope, receive, send)
        else:
            await respond(send, 404, b'{"error":"not found"}')

    return app
