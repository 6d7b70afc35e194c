-- Named queries of the `broadcast` command (loaded by cli/database.py). The CLI reads
-- the public views; its only writes are retry, suppressions, sender resume and prune.

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
-- Why recipients are pending (deferred_quota, paused, scheduled, retry_backoff, quiet_hours) or
-- skipped (not_opted_in, invalid_phone, suppressed, duplicate, missing_variable, cancelled).
SELECT status, reason, count(*) AS count
FROM campaign_recipient_status
WHERE campaign_id = $1 AND reason IS NOT NULL
GROUP BY status, reason
ORDER BY status, count(*) DESC, reason;

-- name: quality_trip
-- The template-health breaker's last trip of the campaign, with the figures it judged
-- (0012; one row per campaign, by its key).
SELECT tripped_at, rule, window_seconds, sends, health_failures, max_failure_rate,
       quality_before, quality_after
FROM quality_trips
WHERE campaign_id = $1;

-- name: quiet_openings
-- When the recipients waiting out their quiet hours may go, and how many at each instant
-- (the dispatcher gives every recipient of a zone set the same one: a handful of rows).
-- One range of ledger_due, read in its order.
SELECT next_attempt_at AS opens_at, count(*) AS count
FROM ledger
WHERE campaign_id = $1 AND status = 'pending' AND reason = 'quiet_hours'
GROUP BY next_attempt_at
ORDER BY next_attempt_at
LIMIT 100;

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

-- name: campaign_state
-- Whether the campaign exists, without counting its recipients (campaign_overview does).
SELECT state FROM campaigns WHERE campaign_id = $1;

-- name: recipient_rows
-- `broadcast recipients`: every recipient of campaign $1 (only those whose read-model
-- status is $2, unless NULL), in phone order. The status, reason, message id and error
-- code are the view's, as `status` and `failed` show them; the ledger row (the same
-- primary key) adds its own status, the consent it relied on and when it was accepted.
-- Both sides are read in primary-key order, so the join streams (docs/cli.md).
SELECT s.phone, s.status, l.status AS ledger_status, s.reason, s.message_id, s.error_code,
       l.opted_in_at, l.opt_in_source, l.queued_at
FROM campaign_recipient_status AS s
JOIN ledger AS l ON l.campaign_id = s.campaign_id AND l.phone = s.phone
WHERE s.campaign_id = $1 AND ($2::text IS NULL OR s.status = $2::text)
ORDER BY s.phone;

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

-- Retention: `broadcast prune` (cli/prune.py, docs/design.md "Retention"). Every
-- delete is a batch of at most $n rows in a statement of its own (autocommit), so no
-- transaction holds locks or a snapshot for long; none touches a row a dispatcher
-- may still write.

-- name: try_prune_lock
-- One prune at a time; a session lock, released by release_prune_lock or on disconnect.
SELECT pg_try_advisory_lock(hashtextextended('broadcast.prune', 0));

-- name: release_prune_lock
SELECT pg_advisory_unlock(hashtextextended('broadcast.prune', 0));

-- name: prune_candidates
-- Campaigns past retention: terminal as campaign_overview says (nothing pending, queued
-- or sent) or cancelled, and unchanged since $1: neither the campaign's row nor any
-- recipient's row or status event is newer. Only campaigns whose own row is older than
-- $1 are looked into (each through the ledger's primary key), so the cost is the
-- history being pruned, not the whole ledger.
SELECT c.campaign_id, c.state, c.phone_number_id, r.recipients, r.statuses,
       GREATEST(c.updated_at, r.last_change) AS terminal_at
FROM campaigns AS c
CROSS JOIN LATERAL (
    SELECT count(*) AS recipients,
           count(*) FILTER (WHERE s.status IN ('pending', 'queued', 'sent')) AS in_progress,
           count(ms.message_id) AS statuses,
           max(s.updated_at) AS last_change
    FROM campaign_recipient_status AS s
    LEFT JOIN message_statuses AS ms ON ms.message_id = s.message_id
    WHERE s.campaign_id = c.campaign_id
) AS r
WHERE c.updated_at < $1
  AND (c.state = 'cancelled' OR r.in_progress = 0)
  AND GREATEST(c.updated_at, r.last_change) < $1
ORDER BY terminal_at, c.campaign_id;

-- name: row_bytes
-- Average bytes per row of a table, its indexes and TOAST included, from the planner's
-- statistics (no scan); NULL before the table was first analysed.
SELECT CASE WHEN c.reltuples > 0 THEN pg_total_relation_size(c.oid) / c.reltuples END
FROM pg_class AS c
WHERE c.oid = $1::regclass;

-- name: lock_campaign
-- Intake's per-campaign lock (consumer/intake/sql/queries.sql, same keys).
SELECT pg_advisory_xact_lock($1::integer, $2::integer);

-- name: prune_campaign_start
-- Recorded before the first row goes; a campaign resumed after an interrupted prune keeps
-- its first record.
INSERT INTO pruned_campaigns (campaign_id, phone_number_id, state, recipients, terminal_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (campaign_id) DO NOTHING;

-- name: prune_ledger_batch
-- Up to $3 of the campaign's recipients after phone $2 (keyset: never re-reads the dead
-- rows of earlier batches), with their statuses; their message ids become tombstones in
-- the same transaction. A pending row is left alone: only a retry makes one, and it is
-- then the dispatcher's again. The keys go through arrays so that every delete is a
-- probe of its table's index (a join with the batch would be planned as a hash join
-- over the whole table, once per batch).
WITH batch AS MATERIALIZED (
    SELECT phone, message_id
    FROM ledger
    WHERE campaign_id = $1 AND phone > $2 AND status <> 'pending'
    ORDER BY phone
    LIMIT $3
    FOR UPDATE
), keys AS MATERIALIZED (
    SELECT ARRAY(SELECT phone FROM batch) AS phones,
           ARRAY(SELECT message_id FROM batch WHERE message_id IS NOT NULL) AS message_ids,
           (SELECT max(phone) FROM batch) AS last_phone
), tombstones AS (
    INSERT INTO pruned_messages (message_id, campaign_id)
    SELECT unnest(message_ids), $1 FROM keys
    ON CONFLICT (message_id) DO NOTHING
), statuses AS (
    DELETE FROM message_statuses
    WHERE message_id = ANY ((SELECT message_ids FROM keys)::text[])
    RETURNING 1
), failures AS (
    -- The reconciler's backlog entries (migration 0006): nothing is left to reconcile.
    DELETE FROM status_failures
    WHERE message_id = ANY ((SELECT message_ids FROM keys)::text[])
), gone AS (
    DELETE FROM ledger
    WHERE campaign_id = $1 AND phone = ANY ((SELECT phones FROM keys)::text[])
    RETURNING 1
)
SELECT (SELECT last_phone FROM keys) AS last_phone,
       (SELECT count(*) FROM gone) AS ledger_rows,
       (SELECT count(*) FROM statuses) AS status_rows;

-- name: prune_campaign_finish
-- The campaign row (its chunks follow by cascade) once no recipient row is left, and its
-- early control events; returns whether it went.
WITH gone AS (
    DELETE FROM campaigns AS c
    WHERE c.campaign_id = $1
      AND NOT EXISTS (SELECT 1 FROM ledger AS l WHERE l.campaign_id = $1)
    RETURNING c.campaign_id
), controls AS (
    DELETE FROM intake_early_controls AS e
    WHERE e.campaign_id IN (SELECT campaign_id FROM gone)
), done AS (
    UPDATE pruned_campaigns AS p SET completed_at = now()
    WHERE p.campaign_id IN (SELECT campaign_id FROM gone)
)
SELECT EXISTS (SELECT 1 FROM gone);

-- name: prune_sweep_statuses
-- Statuses the live projector folded for a pruned message after its campaign went (a
-- late receipt), $2 tombstones after $1 at a time. A message id a live ledger row holds
-- (adopted since) is not the pruned campaign's any more and is kept. Arrays again, for
-- index probes.
WITH batch AS MATERIALIZED (
    SELECT message_id FROM pruned_messages
    WHERE message_id > $1
    ORDER BY message_id
    LIMIT $2
), keys AS MATERIALIZED (
    SELECT ARRAY(SELECT b.message_id FROM batch AS b
                 WHERE NOT EXISTS (SELECT 1 FROM ledger AS l
                                   WHERE l.message_id = b.message_id)) AS message_ids,
           (SELECT max(message_id) FROM batch) AS last_id
), gone AS (
    DELETE FROM message_statuses
    WHERE message_id = ANY ((SELECT message_ids FROM keys)::text[])
    RETURNING 1
), failures AS (
    DELETE FROM status_failures
    WHERE message_id = ANY ((SELECT message_ids FROM keys)::text[])
)
SELECT (SELECT last_id FROM keys) AS last_id, (SELECT count(*) FROM gone) AS deleted;

-- name: prune_sweep_rejects
-- Status records set aside whose Kafka key (the message id, as the bridge produces it)
-- names a pruned message. The table is small; each of its rows is one probe of the
-- tombstones' key. A key that is not ASCII text matches nothing and is kept.
DELETE FROM status_rejects AS r
USING pruned_messages AS p
WHERE p.message_id = encode(r.message_key, 'escape')
  AND NOT EXISTS (SELECT 1 FROM ledger AS l WHERE l.message_id = p.message_id);

-- name: quota_budget_keys
-- Every budget key of quota_contacts, one index probe per key (a loose index scan: the
-- table holds many rows per key and few keys).
WITH RECURSIVE keys AS (
    (SELECT budget_key FROM quota_contacts ORDER BY budget_key LIMIT 1)
    UNION ALL
    SELECT (SELECT q.budget_key FROM quota_contacts AS q
            WHERE q.budget_key > k.budget_key ORDER BY q.budget_key LIMIT 1)
    FROM keys AS k
    WHERE k.budget_key IS NOT NULL
)
SELECT budget_key FROM keys WHERE budget_key IS NOT NULL;

-- name: quota_prunable
-- Quota contacts of budget $1 older than $2, which no rolling window counts any more.
SELECT count(*) FROM quota_contacts WHERE budget_key = $1 AND last_contact_at < $2;

-- name: prune_quota_batch
-- Up to $3 of them. A row a dispatcher is renewing is skipped (SKIP LOCKED), and the
-- age is checked again on the row deleted, so a contact renewed meanwhile stays.
WITH batch AS (
    SELECT phone FROM quota_contacts
    WHERE budget_key = $1 AND last_contact_at < $2
    ORDER BY last_contact_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM quota_contacts AS q
USING batch AS b
WHERE q.budget_key = $1 AND q.phone = b.phone AND q.last_contact_at < $2;
