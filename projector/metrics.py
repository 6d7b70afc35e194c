"""The projector's Prometheus metrics, defined once (prefix `broadcast_projector_`)."""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram

EventOutcome = Literal["folded", "invalid", "ignored", "rejected"]

EVENTS: Final = Counter(
    "broadcast_projector_events_total",
    "Status updates read from the topic, by outcome: folded; invalid (a record that is "
    "not a readable status body, or a status that cannot be stored); ignored (another "
    "event type); rejected (in a record set aside in status_rejects).",
    ["outcome"],
)
REJECTED_RECORDS: Final = Counter(
    "broadcast_projector_rejected_records_total",
    "Records set aside in status_rejects, by reason (timestamp_out_of_range: a value "
    "the fold cannot store; database_refused: PostgreSQL refused the record's fold). "
    "Counted once per record, when first recorded.",
    ["reason"],
)
CONSUMER_RESTARTS: Final = Counter(
    "broadcast_projector_consumer_restarts_total",
    "Kafka consumers replaced in-process because records waited and none arrived for "
    "PROJECTOR_STALL_SECONDS (aiokafka issue 1037).",
)
BATCHES: Final = Counter(
    "broadcast_projector_batches_total",
    "Batches committed to PostgreSQL (one transaction each).",
)
BATCH_SECONDS: Final = Histogram(
    "broadcast_projector_batch_seconds",
    "Time to decode, fold and store one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ROWS: Final = Counter(
    "broadcast_projector_rows_upserted_total",
    "message_statuses rows written (one per message per batch).",
)
SUPPRESSIONS: Final = Counter(
    "broadcast_projector_suppressions_total",
    "Permanent recipient errors sent to the suppression list (new or already there).",
)
LAG: Final = Gauge(
    "broadcast_projector_lag_records",
    "Records behind the high watermark, summed over the assigned partitions.",
)
COMMIT_FAILURES: Final = Counter(
    "broadcast_projector_commit_failures_total",
    "Offset commits refused by the group (rebalance); the records are folded again.",
)

LAST_PROGRESS_AGE: Final = Gauge(
    "broadcast_projector_last_progress_age_seconds",
    "Seconds since the projector last committed a batch or found nothing to do "
    "(bound to the running loop with set_function).",
)
