-- Named queries of the `broadcast` command (loaded by cli/database.py). The CLI reads
-- the public views; its only writes are retry, suppressions and sender resume.

-- name: campaign_overview
SELECT campaign_id, state, state_reason, phone_number_id, template_name, chunk_count,
       chunks_received, recipients, in_progress, terminal, created_at, updated_at
FROM campaign_overview
WHERE campaign_id = $1;

-- name: campaign_progress
SELECT status, count, pct
FROM campaign_progress
WHERE campaign_id = $1
ORDER BY array_position(
    ARRAY['pending', 'queued', 'sent', 'delivered', 'read', 'failed', 'skipped'], status);

-- name: campaign_reasons
-- Why recipients are pending (deferred_quota, paused, scheduled, retry_backoff) or
-- skipped (not_opted_in, invalid_phone, suppressed, duplicate, missing_variable, cancelled).
SELECT status, reason, count(*) AS count
FROM campaign_recipient_status
WHERE campaign_id = $1 AND reason IS NOT NULL
GROUP BY status, reason
ORDER BY status, count(*) DESC, reason;

-- name: failure_buckets
SELECT coalesce(error_code, 'unknown_error') AS error_code, count(*) AS count
FROM campaign_recipient_status
WHERE campaign_id = $1 AND status = 'failed'
GROUP BY 1
ORDER BY count(*) DESC, 1;

-- name: failed_rows
SELECT phone, status, error_code, error_message, message_id, updated_at
FROM campaign_recipient_status
WHERE campaign_id = $1 AND status = 'failed'
ORDER BY error_code, phone;

-- name: requeue_failed
-- `broadcast retry`, in one statement. Targets exactly the rows the read model shows as
-- failed (the ledger says failed and no later delivered/read overrides it) whose code is
-- in $2. A row whose message was accepted (message_id known) and then failed goes out
-- under the next key generation; one the API never accepted keeps its key.
WITH target AS (
    SELECT l.campaign_id, l.phone, l.message_id IS NOT NULL AS accepted,
           coalesce(ms.error_code, l.error_code, 'unknown_error') AS error_code
    FROM ledger AS l
    LEFT JOIN message_statuses AS ms ON ms.message_id = l.message_id
    WHERE l.campaign_id = $1
      AND l.status = 'failed'
      AND coalesce(message_status_of(ms), 'failed') = 'failed'
      AND coalesce(ms.error_code, l.error_code, 'unknown_error') = ANY($2::text[])
    FOR UPDATE OF l
), requeued AS (
    UPDATE ledger AS l
    SET status = 'pending', reason = NULL, attempts = 0, next_attempt_at = NULL,
        error_code = NULL, error_message = NULL, uncertain_since = NULL, claim_token = NULL,
        generation = l.generation + (CASE WHEN l.message_id IS NOT NULL THEN 1 ELSE 0 END),
        message_id = NULL, updated_at = now()
    FROM target AS t
    WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone
    RETURNING t.error_code, t.accepted
)
SELECT error_code, count(*) AS requeued, count(*) FILTER (WHERE accepted) AS new_key
FROM requeued
GROUP BY error_code
ORDER BY error_code;

-- name: notify_campaign_state
-- Wakes a running dispatcher (it LISTENs on campaign_state); delivered on commit.
SELECT pg_notify('campaign_state', $1::text);

-- name: suppressed_phones
SELECT phone FROM suppressions WHERE phone = ANY($1::text[]);

-- name: suppression_count
SELECT count(*) FROM suppressions;

-- name: suppression_list
SELECT phone, reason, source, created_at
FROM suppressions
ORDER BY created_at DESC, phone
LIMIT $1;

-- name: suppression_add
INSERT INTO suppressions (phone, reason, source)
VALUES ($1, $2, 'operator')
ON CONFLICT (phone) DO NOTHING
RETURNING phone, reason, source, created_at;

-- name: suppression_get
SELECT phone, reason, source, created_at FROM suppressions WHERE phone = $1;

-- name: suppression_remove
DELETE FROM suppressions WHERE phone = $1
RETURNING phone, reason, source, created_at;

-- name: senders_list
SELECT phone_number_id, state, state_reason, tier, quota_hold_until, updated_at
FROM senders
ORDER BY state DESC, phone_number_id;

-- name: sender_resume
-- Returns the state before the change, so the caller can tell "resumed" from "was active".
WITH before AS (
    SELECT phone_number_id, state, state_reason FROM senders
    WHERE phone_number_id = $1
    FOR UPDATE
), resumed AS (
    UPDATE senders AS s
    SET state = 'active', state_reason = NULL, state_changed_at = now(), updated_at = now()
    FROM before AS b
    WHERE s.phone_number_id = b.phone_number_id AND b.state = 'stopped'
    RETURNING s.phone_number_id
)
SELECT b.phone_number_id, b.state, b.state_reason,
       EXISTS (SELECT 1 FROM resumed) AS resumed
FROM before AS b;

-- name: applied_migrations
SELECT version, name, checksum FROM schema_migrations ORDER BY version;
