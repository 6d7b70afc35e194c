-- Named queries of the dispatcher (loaded by consumer/dispatch/store.py).
--
-- Statements that update recipients by key, (campaign_id, phone) from unnest(), test
-- `l.status || '' = 'pending'` rather than `l.status = 'pending'`. Both mean the same;
-- the first keeps the planner off the partial index ledger_due. While the statistics
-- still say that there are no pending rows (a million arrived since the last analyze),
-- that index looks empty, and the plan became a hash of every pending row of the
-- campaign for each batch of 500 keys: seconds per batch on a 10M-row ledger. By key,
-- through the primary key, a batch costs the same whatever the statistics say.

-- name: senders_with_work
-- Sender numbers that have an active campaign with recipients still to send (accepted
-- messages that fail later are the reconciler's, which needs no ownership).
SELECT DISTINCT c.phone_number_id
FROM campaigns AS c
WHERE c.state = 'active'
  AND c.phone_number_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM ledger AS l
              WHERE l.campaign_id = c.campaign_id AND l.status = 'pending')
  AND NOT EXISTS (SELECT 1 FROM senders AS s
                  WHERE s.phone_number_id = c.phone_number_id AND s.state = 'stopped');

-- name: sender_campaigns
SELECT campaign_id, template_name, template_language, template_components, send_at, state,
       priority, quiet_hours, quality_guard
FROM campaigns
WHERE phone_number_id = $1 AND state = 'active'
ORDER BY created_at, campaign_id;

-- name: campaign_states
SELECT campaign_id, state FROM campaigns WHERE campaign_id = ANY($1::uuid[]);

-- name: due_rows_plan
-- Run before due_rows, in its transaction. Where the planner expects a few hundred
-- pending rows it prefers a bitmap scan and a sort to reading ledger_due in order, and
-- the few hundred are really a million (statistics lag a big campaign's arrival), so
-- the "cheap" sort reads every pending row of the campaign for each batch. In index
-- order the scan stops after the batch, whatever the statistics say.
SET LOCAL enable_bitmapscan = off;

-- name: due_rows
-- Up to $2 due recipients of each campaign, skipping the ones this session holds: due
-- retries first (oldest first), then fresh rows by phone. Each half is the head of one
-- range of ledger_due (0009), read in index order, so a batch costs the same at 10,000
-- pending rows as at 1,000,000; one ORDER BY over the OR would sort them all.
SELECT l.campaign_id, l.phone, l.components, l.generation, l.attempts, l.uncertain_since
FROM unnest($1::uuid[]) AS c(id)
CROSS JOIN LATERAL (
    SELECT * FROM (
        (SELECT campaign_id, phone, components, generation, attempts, uncertain_since,
                next_attempt_at
         FROM ledger
         WHERE campaign_id = c.id AND status = 'pending' AND next_attempt_at <= $3
           AND claim_token IS DISTINCT FROM $4
         ORDER BY next_attempt_at, phone
         LIMIT $2)
        UNION ALL
        (SELECT campaign_id, phone, components, generation, attempts, uncertain_since,
                next_attempt_at
         FROM ledger
         WHERE campaign_id = c.id AND status = 'pending' AND next_attempt_at IS NULL
           AND claim_token IS DISTINCT FROM $4
         -- By phone, said as the index's own order: the planner does not treat IS NULL
         -- as fixing the column, and would sort every fresh row for "ORDER BY phone".
         ORDER BY next_attempt_at, phone
         LIMIT $2)
    ) AS due
    ORDER BY next_attempt_at, phone
    LIMIT $2
) AS l;

-- name: next_due_at
SELECT min(next_attempt_at)
FROM ledger
WHERE campaign_id = ANY($1::uuid[]) AND status = 'pending';

-- name: lock_budget
SELECT pg_advisory_xact_lock(hashtextextended('quota:' || $1, 0));

-- name: budget_usage
SELECT count(*) AS used, min(last_contact_at) AS oldest
FROM quota_contacts
WHERE budget_key = $1 AND last_contact_at >= $2;

-- name: budget_freeing_contact
-- The window's contact at offset $3, oldest first (after a tier fell below its usage:
-- the one whose ageing out makes room); an index range scan of $3 + 1 entries.
SELECT last_contact_at FROM quota_contacts
WHERE budget_key = $1 AND last_contact_at >= $2
ORDER BY last_contact_at
OFFSET $3 LIMIT 1;

-- name: budget_known_phones
SELECT phone FROM quota_contacts
WHERE budget_key = $1 AND phone = ANY($2::text[]) AND last_contact_at >= $3;

-- name: record_contacts
INSERT INTO quota_contacts (budget_key, phone, last_contact_at)
SELECT $1, phone, $3 FROM unnest($2::text[]) AS t(phone)
ON CONFLICT (budget_key, phone)
DO UPDATE SET last_contact_at = GREATEST(quota_contacts.last_contact_at, excluded.last_contact_at);

-- name: claim_rows
UPDATE ledger AS l
SET claim_token = $3, uncertain_since = COALESCE(l.uncertain_since, $4), updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS t(campaign_id, phone)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone AND l.status || '' = 'pending';

-- name: defer_rows
UPDATE ledger AS l
SET reason = 'deferred_quota', next_attempt_at = $3, claim_token = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS t(campaign_id, phone)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone AND l.status || '' = 'pending';

-- name: defer_quiet
-- Recipients inside their campaign's quiet hours, each until its window opens ($3).
UPDATE ledger AS l
SET reason = 'quiet_hours', next_attempt_at = t.until, claim_token = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS t(campaign_id, phone, until)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone AND l.status || '' = 'pending';

-- name: fail_unknown_outcome
-- Rows whose last send may have landed more than a key window ago: never re-sent blindly.
UPDATE ledger AS l
SET status = 'failed', error_code = 'outcome_unknown',
    error_message = 'a send may have landed; its idempotency key has expired',
    claim_token = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS t(campaign_id, phone)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone AND l.status || '' = 'pending';

-- name: record_results
-- One statement per flush. An acceptance is always recorded (it happened, even if the
-- campaign was cancelled meanwhile); anything else only while this session holds the row.
UPDATE ledger AS l
SET status = t.status,
    reason = t.reason,
    message_id = COALESCE(t.message_id, l.message_id),
    attempts = l.attempts + t.attempted,
    next_attempt_at = t.next_attempt_at,
    last_attempt_at = COALESCE(t.attempted_at, l.last_attempt_at),
    queued_at = CASE WHEN t.status = 'queued' THEN t.attempted_at ELSE l.queued_at END,
    error_code = t.error_code,
    error_message = t.error_message,
    uncertain_since = t.uncertain_since,
    claim_token = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
            $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::timestamptz[])
     AS t(campaign_id, phone, status, reason, message_id, attempted,
          next_attempt_at, attempted_at, error_code, error_message, uncertain_since)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone
  AND (
      (t.status = 'queued' AND (l.status = 'pending'
                                OR (l.status = 'skipped' AND l.reason = 'cancelled')))
      OR (l.status = 'pending' AND l.claim_token = $12)
  );

-- name: message_id_holders
-- Recipients that already hold one of these message ids (ledger_message_id is unique).
SELECT message_id, campaign_id, phone FROM ledger WHERE message_id = ANY($1::text[]);

-- name: take_message_from_holder
-- The API says this message is another recipient's: the holder fails as an anomaly.
UPDATE ledger
SET status = 'failed', message_id = NULL, error_code = 'api_anomaly', error_message = $4,
    updated_at = now()
WHERE campaign_id = $1 AND phone = $2 AND message_id = $3 AND status = 'queued'
RETURNING true;

-- name: give_message_to_rightful
UPDATE ledger
SET status = 'queued', message_id = $3, queued_at = $4, error_code = NULL,
    error_message = NULL, updated_at = now()
WHERE campaign_id = $1 AND phone = $2 AND status = 'failed' AND error_code = 'api_anomaly'
  AND message_id IS NULL
RETURNING true;

-- name: release_rows
UPDATE ledger AS l
SET claim_token = NULL, uncertain_since = t.uncertain_since, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS t(campaign_id, phone, uncertain_since)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone
  AND l.status || '' = 'pending' AND l.claim_token = $4;

-- name: try_reconcile_lock
-- One reconciler pass at a time across instances: a session lock on the connection the
-- pass reads and settles its backlog with (released at the end, or with the connection).
SELECT pg_try_advisory_lock(hashtextextended('reconciler', 0));

-- name: release_reconcile_lock
SELECT pg_advisory_unlock(hashtextextended('reconciler', 0));

-- name: failure_cursor
SELECT seq FROM failure_cursor;

-- name: failure_backlog
-- Up to $3 entries past the cursor $1 (in seq order) and up to $3 waiting ones due by $2,
-- each with what decides it: whether the fold still says failed, the ledger row holding
-- the message id (if any) and, for a row still queued and not yet checked, the columns of
-- the policy. The state-change times let a late failure of a message accepted before a
-- resume be re-sent without stopping the campaign (campaigns.updated_at moves only with
-- its state). Every lookup is by key, so a pass costs its batch, not the history.
WITH fresh AS (
    SELECT seq FROM status_failures WHERE seq > $1 ORDER BY seq LIMIT $3
), due AS (
    SELECT seq FROM failure_waits WHERE check_at <= $2 ORDER BY check_at LIMIT $3
), picked AS (
    SELECT seq, bool_or(fresh) AS fresh
    FROM (SELECT seq, true AS fresh FROM fresh UNION ALL SELECT seq, false FROM due) AS u
    GROUP BY seq
)
SELECT p.seq, p.fresh, f.message_id, f.recorded_at,
       COALESCE(ms.failed_at IS NOT NULL AND ms.delivered_at IS NULL AND ms.read_at IS NULL,
                false) AS failed,
       l.campaign_id IS NOT NULL AS held,
       COALESCE(l.status = 'queued' AND l.failure_checked_at IS NULL, false) AS actionable,
       l.campaign_id, l.phone, l.generation, l.queued_at, c.phone_number_id,
       ms.error_code, ms.provider_code, ms.error_message, ms.failed_at,
       c.updated_at AS campaign_changed_at, s.state_changed_at AS sender_changed_at
FROM picked AS p
JOIN status_failures AS f ON f.seq = p.seq
LEFT JOIN message_statuses AS ms ON ms.message_id = f.message_id
LEFT JOIN ledger AS l ON l.message_id = f.message_id
LEFT JOIN campaigns AS c ON c.campaign_id = l.campaign_id
LEFT JOIN senders AS s ON s.phone_number_id = c.phone_number_id
ORDER BY p.seq;

-- name: keep_waiting
INSERT INTO failure_waits (seq, check_at)
SELECT * FROM unnest($1::bigint[], $2::timestamptz[]) AS t (seq, check_at)
ON CONFLICT (seq) DO UPDATE SET check_at = excluded.check_at;

-- name: stop_waiting
DELETE FROM failure_waits WHERE seq = ANY($1::bigint[]);

-- name: advance_failure_cursor
-- Only forward: a pass that lost its lock (connection dropped) and ran beside another
-- can leave the cursor where the further of the two got, never move it back.
UPDATE failure_cursor SET seq = GREATEST(seq, $1), updated_at = now();

-- name: watch_failures_of
-- Message ids the ledger has just taken (an in-doubt send adopting the message it became,
-- a message moved to its rightful recipient), possibly long after their failure was read
-- past: the reconciler looks at such a failure again.
INSERT INTO failure_waits (seq, check_at)
SELECT seq, now() FROM status_failures WHERE message_id = ANY($1::text[])
ON CONFLICT (seq) DO UPDATE SET check_at = LEAST(failure_waits.check_at, excluded.check_at);

-- name: delivered_after_failure
UPDATE ledger SET failure_checked_at = now(), updated_at = now()
WHERE message_id = ANY($1::text[]) AND status = 'queued';

-- name: unknown_sightings
-- Messages of one sender to some recipients that webhooks reported and the ledger
-- does not hold (statuses without a Kirim message id cannot be asked about), nor held
-- before a prune.
SELECT ms.phone_number_id, ms.recipient_id, ms.message_id,
       LEAST(ms.sent_at, ms.delivered_at, ms.read_at, ms.failed_at) AS first_seen_at
FROM message_statuses AS ms
WHERE ms.phone_number_id = $1 AND ms.recipient_id = ANY($2::text[])
  AND ms.message_id NOT LIKE 'wamid:%'
  AND NOT EXISTS (SELECT 1 FROM ledger AS l WHERE l.message_id = ms.message_id)
  -- A late status of a pruned campaign's message is no send's in doubt.
  AND NOT EXISTS (SELECT 1 FROM pruned_messages AS p WHERE p.message_id = ms.message_id);

-- name: adopt_messages
-- In-doubt sends matched to the message they became: accepted, as if answered.
UPDATE ledger AS l
SET status = 'queued', message_id = t.message_id, reason = NULL, next_attempt_at = NULL,
    queued_at = now(), error_code = NULL, error_message = NULL,
    uncertain_since = NULL, claim_token = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(campaign_id, phone, message_id)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone AND l.status || '' = 'pending'
  AND NOT EXISTS (SELECT 1 FROM ledger AS o WHERE o.message_id = t.message_id);

-- name: resend_after_failure
-- A failed message's recipient goes back to pending under a new key generation.
UPDATE ledger AS l
SET status = 'pending', generation = l.generation + 1, message_id = NULL,
    reason = t.reason, next_attempt_at = t.next_attempt_at,
    error_code = t.error_code, error_message = t.error_message,
    uncertain_since = NULL, claim_token = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
            $7::text[])
     AS t(campaign_id, phone, message_id, next_attempt_at, reason, error_code, error_message)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone
  AND l.message_id = t.message_id AND l.status = 'queued';

-- name: fail_after_failure
UPDATE ledger AS l
SET status = 'failed', error_code = t.error_code, error_message = t.error_message,
    updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
     AS t(campaign_id, phone, message_id, error_code, error_message)
WHERE l.campaign_id = t.campaign_id AND l.phone = t.phone
  AND l.message_id = t.message_id AND l.status = 'queued';

-- name: suppress_phones
INSERT INTO suppressions (phone, reason, source)
SELECT phone, reason, 'dispatcher' FROM unnest($1::text[], $2::text[]) AS t(phone, reason)
ON CONFLICT (phone) DO NOTHING;

-- name: stop_campaign
UPDATE campaigns SET state = 'stopped', state_reason = $2, updated_at = now()
WHERE campaign_id = $1 AND state = 'active';

-- name: stop_sender
INSERT INTO senders (phone_number_id, state, state_reason, state_changed_at, updated_at)
VALUES ($1, 'stopped', $2, now(), now())
ON CONFLICT (phone_number_id)
DO UPDATE SET state = 'stopped', state_reason = excluded.state_reason,
              state_changed_at = now(), updated_at = now();

-- name: resume_sender
UPDATE senders
SET state = 'active', state_reason = NULL, state_changed_at = now(), updated_at = now()
WHERE phone_number_id = $1 AND state = 'stopped' AND state_reason = ANY($2::text[]);

-- name: sender_state
SELECT state, state_reason, quota_hold_until FROM senders WHERE phone_number_id = $1;

-- name: hold_sender
INSERT INTO senders (phone_number_id, quota_hold_until, updated_at) VALUES ($1, $2, now())
ON CONFLICT (phone_number_id) DO UPDATE
SET quota_hold_until = GREATEST(senders.quota_hold_until, excluded.quota_hold_until),
    updated_at = now();

-- name: stopped_senders
SELECT phone_number_id, state_reason FROM senders WHERE state = 'stopped';

-- name: record_tier
-- Returns the tier recorded before (NULL: none), so a change made while no instance ran
-- is noticed too, and by the one instance whose statement saw the old value.
WITH before AS (SELECT tier FROM senders WHERE phone_number_id = $1)
INSERT INTO senders (phone_number_id, tier, updated_at) VALUES ($1, $2, now())
ON CONFLICT (phone_number_id) DO UPDATE SET tier = excluded.tier, updated_at = now()
RETURNING (SELECT tier FROM before);

-- name: undefer_quota
-- The number's tier rose: rows deferred for the old tier's window are due at $2 (up to
-- $3, the new limit, per campaign, soonest first); the planner defers again what still
-- does not fit. Each campaign's rows are one range of ledger_due.
UPDATE ledger AS l
SET next_attempt_at = $2, updated_at = now()
FROM campaigns AS c
CROSS JOIN LATERAL (
    SELECT d.phone FROM ledger AS d
    WHERE d.campaign_id = c.campaign_id AND d.status = 'pending' AND d.next_attempt_at > $2
      AND d.reason = 'deferred_quota'
    ORDER BY d.next_attempt_at
    LIMIT $3
) AS t
WHERE c.phone_number_id = $1 AND c.state = 'active'
  AND l.campaign_id = c.campaign_id AND l.phone = t.phone AND l.status || '' = 'pending';

-- name: lift_quota_hold
-- The tier rose: a hold set after the API's quota_exceeded was for the old tier.
UPDATE senders SET quota_hold_until = NULL, updated_at = now()
WHERE phone_number_id = $1 AND quota_hold_until > $2;

-- name: heartbeat
INSERT INTO dispatcher_instances (instance_id, seen_at) VALUES ($1, now())
ON CONFLICT (instance_id) DO UPDATE SET seen_at = now();

-- name: live_instances
SELECT count(*) FROM dispatcher_instances WHERE seen_at > now() - make_interval(secs => $1);

-- name: forget_instance
DELETE FROM dispatcher_instances WHERE instance_id = $1 OR seen_at < now() - interval '1 hour';

-- name: try_own_sender
SELECT pg_try_advisory_lock(hashtextextended('sender:' || $1, 0));

-- name: disown_sender
SELECT pg_advisory_unlock(hashtextextended('sender:' || $1, 0));

-- name: has_pending
SELECT EXISTS (SELECT 1 FROM ledger WHERE campaign_id = ANY($1::uuid[]) AND status = 'pending');
