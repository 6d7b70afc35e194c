"""The dispatcher's metrics. Sender number ids may be labels (few, not personal); phones never."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "broadcast_dispatch_sends_total",
    "Send attempts by outcome (accepted, retry, deferred, failed, stopped) and error code.",
    ["outcome", "code"],
)
IN_FLIGHT = Gauge("broadcast_dispatch_in_flight", "Sends awaiting an answer.", ["sender"])
QUOTA_USED = Gauge(
    "broadcast_dispatch_quota_used", "Unique recipients in the rolling window.", ["sender"]
)
QUOTA_LIMIT = Gauge(
    "broadcast_dispatch_quota_limit", "The sender's unique-recipient tier limit.", ["sender"]
)
DUE = Gauge(
    "broadcast_dispatch_due_recipients",
    "Recipients due now that the last round found for the sender (capped at one batch).",
    ["sender"],
)
DEFERRED = Counter(
    "broadcast_dispatch_deferred_total",
    "Recipients deferred to a later quota window.",
    ["sender"],
)
QUIET_DEFERRED = Counter(
    "broadcast_dispatch_quiet_deferred_total",
    "Recipients deferred because they were inside their campaign's quiet hours.",
    ["sender"],
)
RATE_LIMIT_WAIT = Counter(
    "broadcast_dispatch_rate_limit_wait_seconds_total",
    "Seconds sends waited for the organisation's write budget.",
)
RATE_LIMITED = Counter("broadcast_dispatch_rate_limited_total", "429 rate_limit_exceeded answers.")
RETRIES = Counter("broadcast_dispatch_retries_total", "Sends scheduled for a retry.", ["code"])
STOPS = Counter(
    "broadcast_dispatch_stops_total",
    "Campaigns, senders or the organisation stopped, by scope and code.",
    ["scope", "code"],
)
STOPPED_SENDERS = Gauge("broadcast_dispatch_stopped_senders", "Sender numbers stopped now.")
OWNED_SENDERS = Gauge("broadcast_dispatch_owned_senders", "Sender numbers this instance owns.")
ASYNC_FAILURES = Counter(
    "broadcast_dispatch_async_failures_total",
    "Accepted messages that failed later, by code and action.",
    ["code", "action"],
)
API_ANOMALIES = Counter(
    "broadcast_dispatch_anomalies_total",
    "Sends that met something unexpected, by kind: an answer that could not be taken at "
    "its word (no or a reused message id, an unreadable or oversized body, an unknown "
    "error code), a result the ledger refused, or an error of our own. Each affects one "
    "recipient.",
    ["kind"],
)
WORKER_CRASHES = Counter(
    "broadcast_dispatch_worker_crashes_total",
    "Sender workers or dispatcher loops that failed unexpectedly and were restarted, by part.",
    ["part"],
)
DELIVERED_AFTER_FAILURE = Counter(
    "broadcast_dispatch_delivered_after_failure_total",
    "Messages reported failed that the API, asked after the grace period, called delivered "
    "(multi-device): not sent again.",
)
IN_DOUBT_SETTLED = Counter(
    "broadcast_dispatch_in_doubt_settled_total",
    "Sends whose answer was lost and whose key expired, by outcome: adopted (matched to the "
    "message they became) or unknown (left to an operator as outcome_unknown).",
    ["outcome"],
)
QUALITY_GUARD_TRIPS = Counter(
    "broadcast_dispatch_quality_guard_trips_total",
    "Campaigns the template-health breaker paused (reason quality_guard), by rule: "
    "failure_rate (engagement failures over the window's max) or quality_rating (the "
    "sender's rating fell).",
    ["rule"],
)
STATEMENT_SECONDS = Histogram(
    "broadcast_dispatch_statement_seconds",
    "Duration of the send path's database work per batch: due_rows (find due recipients), "
    "reserve (plan the quota and claim them, one transaction), record_results (write a "
    "batch of answers).",
    ["statement"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SEND_SECONDS = Histogram(
    "broadcast_dispatch_send_seconds",
    "Latency of one send request.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAST_PROGRESS = Gauge(
    "broadcast_dispatch_last_progress_timestamp_seconds",
    "Unix time of the last recorded send result (the start time before the first).",
)

_PER_SENDER = (IN_FLIGHT, QUOTA_USED, QUOTA_LIMIT, DUE)


def forget_sender(sender: str) -> None:
    """Stop exporting a number's gauges once another instance may own it."""
    for gauge in _PER_SENDER:
        with contextlib.suppress(KeyError):
            gauge.remove(sender)
