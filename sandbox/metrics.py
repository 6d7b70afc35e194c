"""The sandbox's Prometheus metrics, one registry per instance (tests run several).

Labels are bounded: an endpoint name from the router, the HTTP status, a
webhook verdict. Children are cached because `labels()` costs more than the
increment on the hot path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class SandboxMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "sandbox_requests",
            "API requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._webhooks = Counter(
            "sandbox_webhook_attempts",
            "Webhook delivery attempts, by verdict (done, retry, final).",
            ["verdict"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, int], Counter] = {}

    def request(self, endpoint: str, status: int) -> None:
        key = (endpoint, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self._requests.labels(endpoint, str(status))
        child.inc()

    def webhook_attempt(self, verdict: str) -> None:
        self._webhooks.labels(verdict).inc()
