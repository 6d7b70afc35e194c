"""The bridge's Prometheus metrics, defined once (prefix `broadcast_bridge_`).

Labels are small closed sets (outcome, reason, event type class); never ids or phones.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram

Outcome = Literal[
    "produced",
    "ignored",
    "unauthorized",
    "bad_request",
    "too_large",
    "unavailable",
    "not_found",
    "method_not_allowed",
]

REQUESTS: Final = Counter(
    "broadcast_bridge_requests_total",
    "Webhook requests answered, by outcome.",
    ["outcome"],
)
SIGNATURE_FAILURES: Final = Counter(
    "broadcast_bridge_signature_failures_total",
    "Deliveries refused with 401, by reason (missing, malformed, stale, future_dated, mismatch).",
    ["reason"],
)
UNREADABLE_STATUS_BODIES: Final = Counter(
    "broadcast_bridge_unreadable_status_bodies_total",
    "Signed status events whose JSON did not have the expected shape; stored anyway.",
)
PRODUCE_SECONDS: Final = Histogram(
    "broadcast_bridge_produce_seconds",
    "Time from send to the broker's acknowledgement (acks=all), successful produces only.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PRODUCE_FAILURES: Final = Counter(
    "broadcast_bridge_produce_failures_total",
    "Produces that ended in a 503, by cause (overloaded, timeout, kafka_error).",
    ["cause"],
)
IN_FLIGHT: Final = Gauge(
    "broadcast_bridge_in_flight",
    "Produces waiting for the broker's acknowledgement.",
)
KAFKA_UP: Final = Gauge(
    "broadcast_bridge_kafka_up",
    "1 when the last metadata probe or produce reached the broker, else 0.",
)


def count_request(outcome: Outcome) -> None:
    REQUESTS.labels(outcome).inc()
