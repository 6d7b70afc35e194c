"""Intake's Prometheus metrics, defined once (prefix `broadcast_intake_`).

Labels are small closed sets (event type, outcome, reason); never a phone, a
campaign id or a partition number.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

EVENTS: Final = Counter(
    "broadcast_intake_events_total",
    "Request events handled, by type (requested, paused, resumed, cancelled, invalid) and "
    "outcome (stored, redelivered, applied, unchanged, remembered, dead_lettered).",
    ["type", "outcome"],
)
DEAD_LETTERS: Final = Counter(
    "broadcast_intake_dead_letters_total",
    "Events written to the dead-letter topic, by reason code.",
    ["reason"],
)
RECIPIENTS: Final = Counter(
    "broadcast_intake_recipients_total",
    "Recipients expanded, by outcome (eligible, invalid_phone, not_opted_in, suppressed, "
    "duplicate, missing_variable). A phone seen again in a later chunk counts as duplicate.",
    ["outcome"],
)
EVENT_SECONDS: Final = Histogram(
    "broadcast_intake_event_seconds",
    "Time to handle one event, from dequeue to durable (ledger commit or DLQ ack).",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LAG: Final = Gauge(
    "broadcast_intake_consumer_lag",
    "Events on the assigned partitions not yet handled (fetched or not), summed.",
)
BUFFERED: Final = Gauge(
    "broadcast_intake_buffered_events",
    "Events fetched and waiting for a worker.",
)
BACKPRESSURE: Final = Gauge(
    "broadcast_intake_backpressure",
    "1 while the partitions are paused because the buffer is full.",
)
PROGRESS_AGE: Final = Gauge(
    "broadcast_intake_last_progress_age_seconds",
    "Seconds since the last event was handled (or since start).",
)
COMMITS: Final = Counter(
    "broadcast_intake_commits_total",
    "Offset commits, by outcome (ok, failed).",
    ["outcome"],
)
RETRIES: Final = Counter(
    "broadcast_intake_retries_total",
    "Waits before trying again, by cause (database, dead_letter_produce, accounts).",
    ["cause"],
)
ACCOUNTS_REQUESTS: Final = Counter(
    "broadcast_intake_accounts_requests_total",
    "GET /v1/accounts calls, by outcome (ok, unavailable, refused).",
    ["outcome"],
)
ACCOUNTS_WAITING: Final = Gauge(
    "broadcast_intake_accounts_wait_seconds",
    "How long intake has been waiting for the accounts API (0 when not waiting).",
)
CAMPAIGNS: Final = Counter(
    "broadcast_intake_campaigns_total",
    "Campaigns created, by initial state (active, paused, cancelled).",
    ["state"],
)
LEDGER_ANALYZES: Final = Counter(
    "broadcast_intake_ledger_analyzes_total",
    "ANALYZE ledger runs started by intake after many new pending rows (statistics.py).",
)
