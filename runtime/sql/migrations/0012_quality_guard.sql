-- The template-health breaker (issue 13; docs/dispatch.md "Template-health breaker").
--
-- Per campaign and minute, the messages the API accepted and how many of them were
-- reported failed for engagement reasons (131049, 1013, spam_rate_limited). Both the
-- sender's worker (accepted sends, once per result flush) and the reconciler (late
-- failures, once per pass, possibly on another instance) add to it, so every instance
-- judges the same window. A failure counts in the minute of its message's send, so the
-- share is of the messages sent in the window. A row holds at most a minute, so the
-- window is one range of the primary key (60 rows for an hour).
CREATE TABLE quality_counts (
    campaign_id      uuid NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    minute           timestamptz NOT NULL,
    sends            integer NOT NULL DEFAULT 0,
    health_failures  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, minute)
);

-- The failures counted, by message: the reconciler reads an entry again (a failure
-- waiting for its grace period, a pass cut short), and a message counts once.
CREATE TABLE quality_failures (
    message_id   text PRIMARY KEY,
    campaign_id  uuid NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    counted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quality_failures_campaign ON quality_failures (campaign_id);

-- The guard's last trip per campaign, with the figures it judged (shown by
-- `broadcast status`): the campaign itself is paused with state_reason 'quality_guard'.
CREATE TABLE quality_trips (
    campaign_id      uuid PRIMARY KEY REFERENCES campaigns ON DELETE CASCADE,
    tripped_at       timestamptz NOT NULL,
    rule             text NOT NULL CHECK (rule IN ('failure_rate', 'quality_rating')),
    window_seconds   integer NOT NULL,
    sends            integer NOT NULL,
    health_failures  integer NOT NULL,
    max_failure_rate double precision NOT NULL,
    quality_before   text,
    quality_after    text
);

-- The sender's quality rating as last read from GET /v1/accounts: a drop is seen once,
-- by the instance whose refresh recorded it, also when it happened while none ran.
ALTER TABLE senders ADD COLUMN quality_rating text;
