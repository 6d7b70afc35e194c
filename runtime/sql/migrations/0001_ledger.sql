-- Campaigns, the per-recipient ledger, delivery statuses, suppressions, senders and
-- quota contacts. Append-only: change the schema with a new numbered file.

CREATE TABLE campaigns (
    campaign_id          uuid PRIMARY KEY,
    -- What the request asked for ('auto' or a phone_number_id) and what it resolved to.
    sender_spec          text NOT NULL,
    phone_number_id      text,
    template_name        text NOT NULL,
    template_language    text NOT NULL,
    template_components  jsonb NOT NULL,
    -- sha256 over sender and template: every chunk of a campaign must agree on it.
    header_fingerprint   text NOT NULL,
    send_at              timestamptz,
    chunk_count          integer NOT NULL CHECK (chunk_count >= 1),
    state                text NOT NULL DEFAULT 'active'
                         CHECK (state IN ('active', 'paused', 'cancelled', 'stopped')),
    state_reason         text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_sender ON campaigns (phone_number_id) WHERE state = 'active';

CREATE TABLE campaign_chunks (
    campaign_id     uuid NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    chunk_index     integer NOT NULL CHECK (chunk_index >= 0),
    recipient_count integer NOT NULL,
    source_topic    text,
    source_partition integer,
    source_offset   bigint,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, chunk_index)
);

-- One row per (campaign, recipient): the dispatcher's source of truth. Delivery
-- statuses live in message_statuses and are joined by message_id, so the projector
-- never writes here and a status may arrive before the message id is recorded.
CREATE TABLE ledger (
    campaign_id      uuid NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    phone            text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('pending', 'queued', 'failed', 'skipped')),
    -- Why skipped (not_opted_in, invalid_phone, suppressed, duplicate, missing_variable,
    -- cancelled) or why still pending (deferred_quota, retry_backoff).
    reason           text,
    -- Rendered template components for this recipient; NULL = the campaign's as they are.
    components       jsonb,
    opted_in_at      timestamptz,
    chunk_index      integer NOT NULL,
    -- Bumped only after a message is known to have failed asynchronously and is sent
    -- again; part of the idempotency key from the second generation on.
    generation       integer NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    -- The dispatcher ownership session that holds this row in memory; another
    -- session may take it (same key, so the API replays a send that landed).
    claim_token      uuid,
    -- Since when a send of this generation may have landed without our knowing
    -- (claimed, timed out, dropped). Past the API's 24 h key window such a row is
    -- not re-sent blindly: it fails as outcome_unknown for an operator to decide.
    uncertain_since  timestamptz,
    message_id       text,
    error_code       text,
    error_message    text,
    queued_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, phone)
);
CREATE INDEX ledger_pending ON ledger (campaign_id, next_attempt_at) WHERE status = 'pending';
CREATE UNIQUE INDEX ledger_message_id ON ledger (message_id) WHERE message_id IS NOT NULL;

-- The fold of every status webhook, keyed by Kirim's message id (or 'wamid:<id>' when an
-- event names no message id). Each status is a seen-flag with its earliest timestamp, so
-- the fold is a union: order-insensitive and idempotent. updated_at is the newest event's
-- own timestamp, never the fold's clock, so a replay rebuilds identical rows.
CREATE TABLE message_statuses (
    message_id       text PRIMARY KEY,
    wamid            text,
    phone_number_id  text,
    recipient_id     text,
    sent_at          timestamptz,
    delivered_at     timestamptz,
    read_at          timestamptz,
    failed_at        timestamptz,
    error_code       text,
    provider_code    integer,
    error_message    text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Failures the dispatcher still has to act on are found through this small index.
CREATE INDEX message_statuses_failed ON message_statuses (message_id)
    WHERE failed_at IS NOT NULL AND delivered_at IS NULL AND read_at IS NULL;

CREATE TABLE suppressions (
    phone       text PRIMARY KEY,
    reason      text NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE senders (
    phone_number_id  text PRIMARY KEY,
    state            text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'stopped')),
    state_reason     text,
    -- When `state` last changed: a failure reported late for a message accepted before
    -- an operator's resume must not stop the sender again.
    state_changed_at timestamptz,
    tier             bigint,
    -- After a quota_exceeded from the API, no new first contacts before this instant.
    quota_hold_until timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- First contacts per quota budget (a number, or a group of numbers sharing a budget):
-- reserved before the send, so a crash can never under-count the rolling window.
CREATE TABLE quota_contacts (
    budget_key       text NOT NULL,
    phone            text NOT NULL,
    last_contact_at  timestamptz NOT NULL,
    PRIMARY KEY (budget_key, phone)
);
CREATE INDEX quota_contacts_recent ON quota_contacts (budget_key, last_contact_at);

-- Live dispatcher instances (heartbeats), so each takes a fair share of the senders.
CREATE TABLE dispatcher_instances (
    instance_id  uuid PRIMARY KEY,
    seen_at      timestamptz NOT NULL
);
